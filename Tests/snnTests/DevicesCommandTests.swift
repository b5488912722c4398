import Foundation
import SNNTestSupport
import Testing

/// `snn devices` on this machine (no NVIDIA driver in CI) and with stand-in NVIDIA libraries.
@Suite("snn devices")
struct DevicesCommandTests {
    @Test("without an NVIDIA driver: the CPU, no GPU, where it looked, exit status 0")
    func noDriver() throws {
        let (status, output) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent"])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("CPU: ") == true && lines.first?.contains(" cores, oneDNN uses ") == true, "\(output)")
        if output.contains("GPU: none") {
            #expect(output.contains("[CUDA] no NVIDIA driver found: libcuda.so.1 is not in /nonexistent/libcuda.so.1, "), "\(output)")
        }
    }

    @Test("with a driver and the libraries: each GPU, then each library's version and file; --json")
    func stubDriver() throws {
        let folder = try CUDAStubLibraries.folder(["libcuda.so.1": CUDAStubLibraries.driverSource(initResult: 0),
                                                   "libnvrtc.so.13": CUDAStubLibraries.nvrtcSource,
                                                   "libcublas.so.13": CUDAStubLibraries.cublasSource])
        let (status, output) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": folder])
        #expect(status == 0, "\(output)")
        #expect(output.contains("GPU 0: SwiftSNN stub GPU 0, 80.0 GiB, sm_90, 132 multiprocessors\n"), "\(output)")
        #expect(output.contains("GPU 1: SwiftSNN stub GPU 1, 81.0 GiB, sm_91, 132 multiprocessors\n"), "\(output)")
        #expect(output.contains("CUDA driver 13.0: \(folder)/libcuda.so.1\n"), "\(output)")
        #expect(output.contains("NVRTC 13.0: \(folder)/libnvrtc.so.13\n"), "\(output)")
        #expect(output.contains("cuBLAS 13.1.0: \(folder)/libcublas.so.13\n"), "\(output)")
        // cuDNN is missing from the folder (and from this machine): named, with what to install.
        #expect(output.contains("[cuDNN] not found (tried \(folder)/libcudnn.so.9, libcudnn.so.9 (loader path), ")
                || output.contains("cuDNN 9."), "\(output)")
        let (jsonStatus, json) = try SNNBinary.run(["devices", "--json"], environment: ["SNN_CUDA_LIBRARY_PATH": folder])
        #expect(jsonStatus == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let gpus = try #require(object["gpus"] as? [[String: Any]])
        #expect(gpus.map { $0["architecture"] as? String } == ["sm_90", "sm_91"])
        #expect((object["cpu"] as? [String: Any])?["isa"] is String)
    }
}
