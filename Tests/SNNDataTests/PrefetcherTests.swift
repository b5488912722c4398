import SNNCPU
import SNNData
import SNNTensor
import Testing

/// Prefetched batches arrive in order and equal the synchronous ones, whatever the worker count.
@Suite("batch prefetcher")
struct PrefetcherTests {
    init() { CPUBackend.register() }

    @Test("0, 1, 3 and 8 workers give the same batches in the same order", arguments: [1, 3, 8])
    func workersDoNotChangeBatches(_ workers: Int) throws {
        let pixels = (0..<(40 * 3072)).map { UInt8($0 % 251) }
        let data = CIFARDataset(variant: .cifar10, pixels: pixels, labels: (0..<40).map { $0 % 10 }, augment: true, cutout: true, seed: 5)
        let batches = data.batchIndices(epoch: 2, batchSize: 6, shuffle: true, seed: 5)
        let reference = BatchPrefetcher(dataset: data, batches: batches, epoch: 2, workers: 0)
        let prefetched = BatchPrefetcher(dataset: data, batches: batches, epoch: 2, workers: workers)
        var count = 0
        while let a = try reference.next() {
            let b = try prefetched.next()
            #expect(b?.inputs.toFloats() == a.inputs.toFloats() && b?.labels.toDoubles() == a.labels.toDoubles())
            count += 1
        }
        #expect(try count == 7 && prefetched.next() == nil)
    }

    @Test("batch order: a permutation seeded by (seed, epoch), the last partial batch kept unless dropLast")
    func batchOrder() {
        let data = InMemoryDataset(samples: Tensor.zeros([10, 1], device: .cpu), labels: Array(0..<10), isSequence: false, classes: 10)
        let a = data.batchIndices(epoch: 1, batchSize: 4, shuffle: true, seed: 7)
        #expect(a.map(\.count) == [4, 4, 2] && a.flatMap { $0 }.sorted() == Array(0..<10))
        #expect(data.batchIndices(epoch: 1, batchSize: 4, shuffle: true, seed: 7).map(Array.init) == a.map(Array.init))
        #expect(data.batchIndices(epoch: 2, batchSize: 4, shuffle: true, seed: 7).map(Array.init) != a.map(Array.init))
        #expect(data.batchIndices(epoch: 1, batchSize: 4, shuffle: true, seed: 8).map(Array.init) != a.map(Array.init))
        let dropped = data.batchIndices(epoch: 1, batchSize: 4, shuffle: true, seed: 7, dropLast: true)
        #expect(dropped.map(Array.init) == a.prefix(2).map(Array.init))
        #expect(data.batchIndices(epoch: 0, batchSize: 3, shuffle: false, seed: 0).map(Array.init) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]])
    }
}
