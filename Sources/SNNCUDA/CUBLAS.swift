import CCUDA
import Foundation
import SNNLibraries

/// cuBLAS's single-precision matrix product on a device's stream (the CUDA backend's `matmul`
/// where cuBLAS is found). Its default math mode: float32 products and sums, no TF32.
final class CUBLAS: @unchecked Sendable {
    let library: CUDAToolkit.Library
    private let device: CUDADevice
    private let handle: snn_cublasHandle_t
    private let sgemm: snn_cublasSgemm_v2_t
    private let gemmEx: snn_cublasGemmEx_t

    /// A handle bound to `device`'s stream.
    init(_ library: CUDAToolkit.Library, device: CUDADevice) throws {
        self.library = library
        self.device = device
        let symbols = library.symbols
        let create = try symbols.function("cublasCreate_v2", snn_cublasCreate_v2_t.self)
        let setStream = try symbols.function("cublasSetStream_v2", snn_cublasSetStream_v2_t.self)
        let setMathMode = try symbols.function("cublasSetMathMode", snn_cublasSetMathMode_t.self)
        sgemm = try symbols.function("cublasSgemm_v2", snn_cublasSgemm_v2_t.self)
        gemmEx = try symbols.function("cublasGemmEx", snn_cublasGemmEx_t.self)
        try device.makeCurrent()
        var handle: snn_cublasHandle_t?
        try CUBLAS.check(create(&handle), "cublasCreate")
        guard let handle else { throw LibraryError("[cublasCreate] returned no handle") }
        self.handle = handle
        try CUBLAS.check(setStream(handle, device.stream), "cublasSetStream")
        try CUBLAS.check(setMathMode(handle, 0), "cublasSetMathMode")   // CUBLAS_DEFAULT_MATH
    }

    /// The row-major `C[m×n] = op(A)·op(B)` (`C += op(A)·op(B)` when `accumulate`) at device
    /// addresses, with `A` stored `[m, k]` (or `[k, m]` when `transposeA`) and `B` stored
    /// `[k, n]` (or `[n, k]`), all contiguous.
    ///
    /// cuBLAS is column-major: a row-major matrix is its transpose there, so this computes
    /// `Cᵀ = op(B)ᵀ·op(A)ᵀ`, B first.
    func multiply(_ a: snn_CUdeviceptr, _ b: snn_CUdeviceptr, into c: snn_CUdeviceptr, m: Int, n: Int, k: Int,
                  transposeA: Bool, transposeB: Bool, accumulate: Bool = false) throws {
        guard [m, n, k].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw LibraryError("[cublasSgemm] a \(m)×\(k) by \(k)×\(n) product is beyond cuBLAS's 32-bit sizes")
        }
        try device.makeCurrent()   // cuBLAS works on the calling thread's current context
        var (one, beta): (Float, Float) = (1, accumulate ? 1 : 0)
        let pointer = { (address: snn_CUdeviceptr) in UnsafeMutablePointer<Float>(bitPattern: UInt(address)) }
        try CUBLAS.check(sgemm(handle, transposeB ? 1 : 0, transposeA ? 1 : 0, Int32(n), Int32(m), Int32(k), &one, pointer(b),
                               Int32(transposeB ? k : n), pointer(a), Int32(transposeA ? m : k), &beta, pointer(c), Int32(n)),
                         "cublasSgemm")
    }

    /// The operands' type of a mixed-precision product: `CUDA_R_16BF` (14) or `CUDA_R_16F` (2).
    enum HalfType: UInt32 {
        case bfloat16 = 14, float16 = 2
    }

    /// ``multiply(_:_:into:m:n:k:transposeA:transposeB:accumulate:)`` with `A` and `B` of a
    /// 16-bit type and `C` float32, products summed in float32 (`CUBLAS_COMPUTE_32F`): what
    /// `--amp` runs matrix products and convolutions with, on the tensor cores.
    func multiply(_ a: snn_CUdeviceptr, _ b: snn_CUdeviceptr, of type: HalfType, into c: snn_CUdeviceptr, m: Int, n: Int, k: Int,
                  transposeA: Bool, transposeB: Bool, accumulate: Bool = false) throws {
        guard [m, n, k].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw LibraryError("[cublasGemmEx] a \(m)×\(k) by \(k)×\(n) product is beyond cuBLAS's 32-bit sizes")
        }
        try device.makeCurrent()
        var (one, beta): (Float, Float) = (1, accumulate ? 1 : 0)
        let pointer = { (address: snn_CUdeviceptr) in UnsafeMutableRawPointer(bitPattern: UInt(address)) }
        try CUBLAS.check(gemmEx(handle, transposeB ? 1 : 0, transposeA ? 1 : 0, Int32(n), Int32(m), Int32(k), &one, pointer(b),
                                type.rawValue, Int32(transposeB ? k : n), pointer(a), type.rawValue, Int32(transposeA ? m : k), &beta,
                                pointer(c), 0, Int32(n), 68, -1),
                         "cublasGemmEx")
    }

    /// Throws a ``LibraryError`` naming `function` and cuBLAS's status unless it is success.
    static func check(_ status: snn_cublasStatus_t, _ function: String) throws {
        guard status != 0 else { return }
        let names: [snn_cublasStatus_t: String] = [
            1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
            8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
            14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
        ]
        throw LibraryError("[\(function)] \(names[status] ?? "cuBLAS status \(status)")")
    }
}
