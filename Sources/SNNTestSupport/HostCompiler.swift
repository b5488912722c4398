import Foundation

/// The host's C and C++ compilers, for tests that build stand-in libraries and run CUDA kernels
/// on the CPU.
public enum HostCompiler {
    /// Runs a command found on `PATH`, returning its status and its output and errors together.
    public static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try Subprocess.run(URL(fileURLWithPath: "/usr/bin/env"), arguments)
    }

    /// Compiles a C++ file that includes the launch-grid emulation (`Tests/SNNCUDATests/Emulation`)
    /// and kernel sources from `folder` into the shared library `output`.
    ///
    /// - Throws: an error holding the compiler's output when it fails.
    public static func emulatedCUDA(_ source: String, folder: String, output: String) throws {
        let emulation = "\(EmulatedCUDADriver.root)/Tests/SNNCUDATests/Emulation"
        let built = try run(["c++", "-std=c++20", "-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-pthread", "-I\(emulation)",
                             "-I\(folder)", "\(emulation)/\(source)", "-o", output])
        guard built.status == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(source): \(built.output)"])
        }
    }
}
