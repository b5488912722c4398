import CDNNL
import CSNNKernels
import COpenBLAS
import COpenMP
import SNNTensor

/// The fast CPU backend: oneDNN for convolution, pooling and batch norm, OpenBLAS for GEMM,
/// and blocked Swift kernels over unsafe pointers for elementwise work, reductions and the
/// fused neuron.
///
/// The dtype policy: the CPU computes in `float32`. Integer tensors (labels, spike byte codes,
/// BN's batch counter) take ``ReferenceBackend``'s loops, their only use and cheap at their
/// sizes; any other floating-point dtype (`float64`, `float16`, `bfloat16`) is refused with a
/// message naming the op, never run through the reference's `Double` loops by accident: convert
/// once at the boundary (`cast(to: .float32)`) or compute on `.reference`. Copies and casts take
/// every dtype. oneDNN and OpenBLAS share one OpenMP pool (libgomp); Swift
/// kernels split work across the same OpenMP team (`OpenMP.parallel`) between library calls, never
/// inside them.
public final class CPUBackend: Backend, @unchecked Sendable {
    /// The process-wide instance.
    public static let shared = CPUBackend()
    public let device = Device.cpu

    /// The reference backend, for dtypes this backend does not accelerate.
    let reference = ReferenceBackend.shared

    private init() {}

    /// Whether `op` runs natively on these operands: `true` for float32, `false` for integer
    /// operands (they take the reference loops); traps for other floating-point dtypes.
    func computesNatively(_ op: String, _ operands: Tensor...) -> Bool { computesNatively(op, operands) }

    func computesNatively(_ op: String, _ operands: [Tensor]) -> Bool {
        var native = true
        for t in operands where t.dtype != .float32 {
            precondition(!t.dtype.isFloatingPoint,
                         "[\(op)] the cpu device computes in float32, got a \(t.dtype) operand: convert it once with cast(to: .float32), or compute on the reference device")
            native = false
        }
        return native
    }

    /// Makes `Device.cpu` compute with this backend. Call once at start-up (the `snn` tool and
    /// the tests do).
    /// Uses `threads` threads (oneDNN, OpenBLAS and SwiftSNN's kernels share libgomp's pool).
    /// Call before any work: several processes on one machine (a data-parallel run) each take
    /// their share of the cores instead of all of them.
    public static func limitThreads(_ threads: Int) {
        let n = max(1, threads)
        omp_set_num_threads(Int32(n))
        Parallel.threadCount = n
    }

    /// The threads a kernel or library call uses.
    public static var threads: Int { Parallel.threadCount }

    public static func register() {
        BackendRegistry.cpu = shared
    }

    /// The instruction-set variant SwiftSNN's own C kernels run on this CPU: `avx512`, `avx2` or
    /// `base`, capped by `SNN_MAX_CPU_ISA`.
    public static var kernelInstructionSet: String {
        switch Int(snn_kernel_isa()) {
        case Int(SNN_ISA_AVX512): "avx512"
        case Int(SNN_ISA_AVX2): "avx2"
        default: "base"
        }
    }

    /// The instruction set oneDNN's kernels use on this CPU (`avx2`, `avx512_core_bf16`, …).
    public static var instructionSet: String {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        // ISA values are nested bit masks, listed here richest first.
        let known: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"), (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"),
            (dnnl_cpu_isa_sse41, "sse41"),
        ]
        return known.first { isa & $0.0.rawValue == $0.0.rawValue && $0.0.rawValue != 0 }?.1 ?? "generic"
    }

    /// The libraries this backend computes with, for run records: oneDNN's version and ISA,
    /// OpenBLAS's build configuration and the OpenMP thread count.
    public static var libraryVersions: [String: String] {
        var out: [String: String] = ["openmp_threads": String(omp_get_max_threads())]
        if let v = dnnl_version()?.pointee { out["onednn"] = "\(v.major).\(v.minor).\(v.patch)" }
        if let c = openblas_get_config() { out["openblas"] = String(cString: c) }
        return out
    }
}
