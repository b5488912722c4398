import CDNNL
import COpenBLAS
import COpenMP
import SNNTensor

/// The fast CPU backend: oneDNN for convolution, pooling and batch norm, OpenBLAS for GEMM,
/// and blocked Swift kernels over unsafe pointers for elementwise work, reductions and the
/// fused neuron.
///
/// Only `float32` is accelerated; other dtypes fall back to ``ReferenceBackend`` (they exist
/// for gradient checks and labels). oneDNN and OpenBLAS share one OpenMP pool (libgomp); Swift
/// kernels split work across the same OpenMP team (`OpenMP.parallel`) between library calls, never
/// inside them.
public final class CPUBackend: Backend, @unchecked Sendable {
    /// The process-wide instance.
    public static let shared = CPUBackend()
    public let device = Device.cpu

    /// The reference backend, for dtypes this backend does not accelerate.
    let reference = ReferenceBackend.shared

    private init() {}

    /// Makes `Device.cpu` compute with this backend. Call once at start-up (the `snn` tool and
    /// the tests do).
    public static func register() {
        BackendRegistry.cpu = shared
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
