import Foundation
import SNNCUDA
@testable import SNNDistributed
import SNNTensor
import SNNTestSupport
import Testing

extension EmulatedGPU {
    /// NCCL on the backend's GPU, with the emulated NCCL (`emulated_nccl.cpp`), which refuses
    /// what a real NCCL could not use: no current context, another stream, memory outside the
    /// device's allocations. One rank: what several ranks sum is `DistributedTrainTests`' part.
    @Suite("NCCL on the backend's context, stream and memory (emulated GPU, one rank)")
    struct NCCLCommunicatorTests {
        let backend: CUDABackend
        let library: NCCLLibrary

        init() throws {
            backend = try EmulatedCUDADriver.backend.get()
            library = try NCCLLibrary.load(environment: try EmulatedCUDADriver.environment())
        }

        private func communicator(stream: OpaquePointer?) throws -> NCCLCommunicator {
            try backend.gpu.makeCurrent()
            return try NCCLCommunicator(library: library, uniqueID: try library.uniqueID(), rank: 0, size: 1, device: backend.device,
                                        stream: stream, address: backend.deviceAddress(of:))
        }

        @Test("a tensor summed into another, in place, and broadcast, on the backend's stream")
        func collectives() throws {
            let nccl = try communicator(stream: backend.stream)
            let values = (0..<1000).map { Float($0) / 8 - 30 }
            let (input, output) = (Tensor(values, shape: [1000]).to(backend.device), Tensor.zeros([1000], device: backend.device))
            try nccl.allReduceSum(input, into: output)
            #expect(output.toFloats() == values)
            try nccl.allReduceSum(input)
            let bytes = Tensor(doubles: (0..<37).map { Double($0) }, shape: [37], dtype: .uint8).to(backend.device)
            try nccl.broadcast(bytes, root: 0)
            #expect(input.toFloats() == values && bytes.toDoubles() == (0..<37).map(Double.init))
        }

        @Test("refused: a communicator made where no CUDA context is current, a collective on another stream, a buffer past its allocation's end")
        func refusals() throws {
            // A thread of its own, on which no context was ever made current.
            let (library, id, device) = (self.library, try library.uniqueID(), backend.device)
            nonisolated(unsafe) var failure: Error?
            let done = DispatchSemaphore(value: 0)
            Thread {
                do { _ = try NCCLCommunicator(library: library, uniqueID: id, rank: 0, size: 1, device: device, stream: nil) { _ in 0 } }
                catch { failure = error }
                done.signal()
            }.start()
            done.wait()
            #expect("\(failure.map { "\($0)" } ?? "no error")".contains("ncclCommInitRank (rank 0 of 1)"))
            let input = Tensor.zeros([64], device: backend.device)
            #expect(throws: DistributedError.self) { try communicator(stream: nil).allReduceSum(input) }
            // Addresses 32 floats further on: the last half of the sum lies past the allocation.
            try backend.gpu.makeCurrent()
            let shifted = try NCCLCommunicator(library: library, uniqueID: try library.uniqueID(), rank: 0, size: 1, device: backend.device,
                                               stream: backend.stream) { [backend] in backend.deviceAddress(of: $0) + 128 }
            #expect(throws: DistributedError.self) { try shifted.allReduceSum(input) }
            try shifted.allReduceSum(input.sliced(axis: 0, 0..<32))   // within it: accepted
        }
    }
}
