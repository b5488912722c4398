import Foundation
import SNNCUDA

/// The emulated CUDA driver of `Tests/SNNCUDATests/Emulation/emulated_driver.cpp`, built once
/// per process into a temporary folder kept until exit: a `libcuda.so.1` with one GPU whose
/// memory is host memory and whose kernels run through the launch-grid emulation, a
/// `libcublas.so.13` whose SGEMM is computed on the host from cuBLAS's definition, and a
/// `libcudnn.so.9` whose convolutions are computed from cuDNN's (`emulated_cudnn.cpp`), and a
/// `libnccl.so.2` whose collectives between the processes of one machine go through files
/// (`emulated_nccl.cpp`). Pointing `SNN_CUDA_LIBRARY_PATH` at ``folder`` (and `SNN_NCCL_LIBRARY`
/// at its NCCL) runs SNNCUDA's host side end to end without a GPU.
public enum EmulatedCUDADriver {
    /// The repository root, from this file's path.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The folder holding `libcuda.so.1`, or the build's error.
    public static let folder: Result<String, Error> = Result {
        let folder = NSTemporaryDirectory() + "snn-emulated-driver-\(getpid())"
        removeFoldersOfEndedProcesses()
        try build(into: folder)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "snn-emulated-driver-\(getpid())") }
        return folder
    }

    /// Builds the four libraries into `folder` (made if missing), beside the kernel sources they
    /// include (`part_*.cu`).
    public static func build(into folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, source) in CUDAKernels.parts {
            try source.write(toFile: "\(folder)/part_\(name).cu", atomically: true, encoding: .utf8)
        }
        try HostCompiler.emulatedCUDA("emulated_driver.cpp", folder: folder, output: "\(folder)/libcuda.so.1")
        try HostCompiler.emulatedCUDA("emulated_cublas.cpp", folder: folder, output: "\(folder)/libcublas.so.13")
        try HostCompiler.emulatedCUDA("emulated_cudnn.cpp", folder: folder, output: "\(folder)/libcudnn.so.9")
        try HostCompiler.emulatedCUDA("emulated_nccl.cpp", folder: folder, output: "\(folder)/libnccl.so.2")
    }

    /// Removes the folders of test processes that ended without their exit handler (a process
    /// that stops on a failed precondition, as the exit tests' children do).
    private static func removeFoldersOfEndedProcesses() {
        let temporary = NSTemporaryDirectory()
        let prefix = "snn-emulated-driver-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = pid_t(name.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(atPath: temporary + name)
        }
    }

    /// The CUDA backend of the emulated GPU, opened once per process and registered, so that
    /// `Device.cuda(0)` computes on it. Its kernels are compiled by the real NVRTC into a kernel
    /// cache that test processes share (`$TMPDIR/snn-test-kernel-cache`; its files are written
    /// atomically and checked when read).
    public static let backend: Result<CUDABackend, Error> = Result {
        let environment = ProcessInfo.processInfo.environment.merging(try EmulatedCUDADriver.environment()) { $1 }
        let backend = try CUDABackend.open(0, environment: environment)
        CUDABackend.register()
        return backend
    }

    /// What a process needs in its environment to compute on the emulated GPU: the driver's
    /// folder (`SNN_CUDA_LIBRARY_PATH`), its NCCL (`SNN_NCCL_LIBRARY`, never a real NCCL found in a
    /// Python environment, which would look for a real driver) and the kernel cache test
    /// processes share.
    public static func environment() throws -> [String: String] {
        ["SNN_CUDA_LIBRARY_PATH": try folder.get(), "SNN_NCCL_LIBRARY": "\(try folder.get())/libnccl.so.2",
         "SNN_KERNEL_CACHE": NSTemporaryDirectory() + "snn-test-kernel-cache"]
    }
}
