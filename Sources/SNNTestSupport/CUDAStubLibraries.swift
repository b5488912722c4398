import Foundation

/// Stand-ins for the NVIDIA libraries, compiled from C by the test (`cc -shared`) into a
/// temporary folder: a driver that reports two GPUs (or none, or fails), and NVRTC, cuBLAS and
/// cuDNN that report their versions. They export the functions SwiftSNN calls, with the real
/// libraries' signatures, so finding, binding and reading them runs end to end on a machine
/// without a GPU.
public enum CUDAStubLibraries {
    /// `cuInit`'s result: 0 (two GPUs), 100 (`CUDA_ERROR_NO_DEVICE`) or 999 (`CUDA_ERROR_UNKNOWN`).
    public static func driverSource(initResult: Int) -> String {
        """
        #include <stddef.h>
        #include <stdio.h>
        int cuInit(unsigned int flags) { return flags == 0 ? \(initResult) : 1; }
        int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
        int cuDeviceGetCount(int *n) { *n = 2; return 0; }
        int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return ordinal < 2 ? 0 : 101; }
        int cuDeviceGetName(char *name, int len, int d) { snprintf(name, len, "SwiftSNN stub GPU %d", d); return 0; }
        int cuDeviceTotalMem_v2(size_t *bytes, int d) { *bytes = (size_t)(80 + d) << 30; return 0; }
        int cuDeviceGetAttribute(int *v, int attribute, int d) {
            switch (attribute) {
            case 16: *v = 132; return 0;
            case 75: *v = 9; return 0;
            case 76: *v = d; return 0;
            default: return 1;
            }
        }
        int cuGetErrorName(int e, const char **s) {
            *s = e == 999 ? "CUDA_ERROR_UNKNOWN" : e == 100 ? "CUDA_ERROR_NO_DEVICE" : "CUDA_ERROR_INVALID_VALUE";
            return 0;
        }
        int cuGetErrorString(int e, const char **s) { *s = e == 999 ? "unknown error" : "invalid argument"; return 0; }
        """
    }

    public static let nvrtcSource = "int nvrtcVersion(int *major, int *minor) { *major = 13; *minor = 0; return 0; }"
    public static let cublasSource = "int cublasGetProperty(int type, int *value) { static const int v[] = {13, 1, 0}; "
        + "if (type < 0 || type > 2) return 7; *value = v[type]; return 0; }"
    public static let cudnnSource = "#include <stddef.h>\nsize_t cudnnGetVersion(void) { return 91300; }"
    /// A file with a driver's name and none of its functions.
    public static let notADriverSource = "int somethingElse(void) { return 0; }"

    /// Compiles `files` (name → C source) as shared libraries into a new temporary folder and
    /// returns it. The folders stay until the process exits: a library deleted while loaded
    /// frees its inode, and a new library given the same inode would be taken by the loader
    /// for the one already open.
    public static func folder(_ files: [String: String]) throws -> String {
        let folder = parent + "/\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, source) in files {
            let c = "\(folder)/\(name).c"
            try source.write(toFile: c, atomically: true, encoding: .utf8)
            let built = try HostCompiler.run(["cc", "-shared", "-fPIC", "-o", "\(folder)/\(name)", c])
            guard built.status == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cc failed for \(name): \(built.output)"])
            }
        }
        return folder
    }

    /// This process's folder of stand-ins, removed at exit.
    private static let parent: String = {
        let parent = NSTemporaryDirectory() + "snn-cuda-stubs-\(getpid())"
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "snn-cuda-stubs-\(getpid())") }
        return parent
    }()
}
