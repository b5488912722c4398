import Foundation
@testable import SNNCUDA
import SNNTensor
import SNNTestSupport
import Testing

extension EmulatedGPU {
    /// What issuing an op on the GPU costs the host. A real GPU computes a ResNet-19 step faster
    /// than the host can issue its 843 calls if each one does more than a few microseconds of
    /// work, so every op's path to its launch stays free of anything that grows with the process
    /// (its environment) or with the kernel sources.
    @Suite("An op on the GPU finds its backend and kernel without work that a real GPU would wait for", .serialized)
    struct HostCostTests {
        @Test("a GPU already open is found again without reading the environment, which every op on it would copy")
        func openedGPUIsNotReopened() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            let backend = try EmulatedCUDADriver.backend.get()
            var reads = 0
            func environment() -> [String: String] {
                reads += 1
                return ProcessInfo.processInfo.environment
            }
            #expect(try CUDABackend.open(0, environment: environment()) === backend)
            #expect(reads == 0)
            #expect(Device.cuda(0).backend as? CUDABackend === backend)
        }

        @Test("every kernel of every program is found by its name, in the program NVRTC compiled it in")
        func everyKernelByName() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            let backend = try EmulatedCUDADriver.backend.get()
            var names: Set<String> = []
            for program in CUDAKernels.all {
                names.formUnion(CUDAKernels.kernelNames(in: program.source))
            }
            // Every `__global__` in the sources is a kernel the lookup knows.
            let declared = CUDAKernels.parts.map { $0.source.components(separatedBy: "__global__").count - 1 }.reduce(0, +)
            #expect(names.count == declared && declared > 30, "\(names.sorted())")
            for name in names {
                #expect(backend.function(name).name == name)
            }
            #expect(CUDAKernels.kernelNames(in: "extern \"C\" __global__ void a_1(int x) {}\n__device__ void b(int y) {}\n"
                + "extern \"C\" __global__ void snn_c(\n") == ["a_1", "snn_c"])
        }
    }
}
