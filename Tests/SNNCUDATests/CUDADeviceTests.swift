import Foundation
@testable import SNNCUDA
import SNNLibraries
import SNNTensor
import SNNTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension EmulatedGPU {
    /// SNNCUDA's host side end to end on a machine without a GPU: the real NVRTC compiles the
    /// kernels (through the kernel cache), and an emulated driver (`Emulation/emulated_driver.cpp`:
    /// host memory, the launch-grid emulation behind `cuLaunchKernel`) loads and runs them.
    /// Serialized: the tests share the emulated driver, whose allocation and launch counts one
    /// of them checks.
    @Suite("CUDA device: memory, modules and launches against an emulated driver", .serialized)
    struct CUDADeviceTests {
        @Test("snn selftest's checks pass on the emulated GPU; a difference over the tolerance fails")
        func selfTest() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            let driver = try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": try EmulatedCUDADriver.folder.get()])
            let device = try CUDADevice(driver: driver)
            let cacheFolder = NSTemporaryDirectory() + "snn-selftest-cache-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: cacheFolder) }
            let checks = try CUDASelfTest.run(device: device, architecture: "sm_90", nvrtc: try NVRTC(),
                                              cache: KernelCache(directory: cacheFolder))
            #expect(checks.count == 5 && checks.allSatisfy(\.passed), "\(checks)")
            #expect(CUDASelfTest.worst([1, 2, 3.5], [1, 2, 3]) == 0.5 / 3)
            #expect(!CUDASelfTest.Check(name: "x", worst: 2e-5, tolerance: 1e-5).passed)
            #expect(!CUDASelfTest.Check(name: "spikes", worst: 1, tolerance: 0).passed)
        }

        @Test("the LIF scan through NVRTC, the kernel cache, device memory and launches, against the reference backend; nothing leaks")
        func neuronScanEndToEnd() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            let folder = try EmulatedCUDADriver.folder.get()
            let driver = try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": folder])
            #expect(try driver.devices().map(\.name) == ["SwiftSNN emulated GPU"])
            let live = unsafeBitCast(try #require(dlsym(driver.handle, "snn_emulated_live_allocations")),
                                     to: (@convention(c) () -> Int32).self)
            let launches = unsafeBitCast(try #require(dlsym(driver.handle, "snn_emulated_launches")), to: (@convention(c) () -> Int32).self)
            let device = try CUDADevice(driver: driver)
            let threshold = unsafeBitCast(try #require(dlsym(driver.handle, "snn_emulated_release_threshold")),
                                          to: (@convention(c) () -> UInt64).self)
            #expect(threshold() == UInt64.max, "the pool keeps freed memory for reuse")
            let cacheFolder = NSTemporaryDirectory() + "snn-device-cache-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: cacheFolder) }
            let nvrtc = try NVRTC()
            let (cubin, _) = try KernelCache(directory: cacheFolder).cubin(for: CUDAKernels.neuronScan, name: "neuron_scan.cu",
                                                                          architecture: "sm_90", nvrtc: nvrtc)
            let module = try device.loadModule(cubin)
            let (forward, backward) = (try module.function("snn_neuron_scan_forward"), try module.function("snn_neuron_scan_backward"))
            #expect(throws: LibraryError("[cuModuleGetFunction(snn_missing)] CUDA_ERROR_NOT_FOUND: named symbol not found")) {
                try module.function("snn_missing")
            }
            let liveBefore = live(), launchesBefore = launches()
            let (steps, n) = (5, 777)
            let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .soft, surrogate: .sigmoid(alpha: 4))
            let r = RandomInputs(seed: 81)
            let x = r.normalValues(steps * n, mean: 0.7, std: 0.8).map(Float.init)
            let gs = r.normalValues(steps * n).map(Float.init)
            do {
                let scan = try CUDASelfTest.NeuronScanBuffers(device, forward: forward, backward: backward, x: x, gradSpikes: gs,
                                                               steps: steps, neuron)
                let (spikes, gradient) = (try device.download(scan.spikes, count: steps * n), try device.download(scan.gradient, count: steps * n))
                let reference = Device.reference.backend
                let (expectedSpikes, saved) = reference.neuronScan(Tensor(x, shape: [steps, n]).to(.reference), neuron)
                let expectedGradient = reference.neuronScanBackward(Tensor(gs, shape: [steps, n]).to(.reference), saved: saved).toDoubles()
                #expect(spikes.map(Double.init) == expectedSpikes.toDoubles())
                let scale = expectedGradient.map { Swift.abs($0) }.max()!
                #expect(zip(gradient, expectedGradient).map { Swift.abs(Double($0) - $1) }.max()! <= 1e-5 * scale)
                #expect(live() == liveBefore + 5 && launches() == launchesBefore + 2)
            }
            // The buffers are gone with their last reference, their memory given back.
            #expect(live() == liveBefore)
        }

        @Test("a module that is not a CUBIN is refused by the driver, named")
        func notACUBIN() throws {
            let folder = try EmulatedCUDADriver.folder.get()
            let device = try CUDADevice(driver: try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": folder]))
            #expect(throws: LibraryError("[cuModuleLoadData] CUDA_ERROR_UNKNOWN: emulated error")) {
                try device.loadModule(Array("not a cubin".utf8))
            }
        }
    }
}
