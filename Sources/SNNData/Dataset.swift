import SNNTensor

/// One training or test batch: inputs, time-major for sequences, and labels.
public struct Batch {
    /// `[T, N, C, H, W]` event frames or `[N, C, H, W]` static images.
    public let inputs: Tensor
    /// `[N]` int32 class indices.
    public let labels: Tensor
    public var count: Int { labels.count }
}

/// A labelled data set the trainer can batch.
public protocol LabelledDataset: Sendable {
    var count: Int { get }
    var classes: Int { get }
    /// The samples at `indices` as a batch; `epoch` seeds any augmentation.
    ///
    /// - Throws: ``DataFileError`` when a sample read from disk at this point is unreadable.
    func batch(_ indices: ArraySlice<Int>, epoch: Int) throws -> Batch
}

extension LabelledDataset {
    /// The batch order of one epoch: shuffled from `(seed, epoch)` when `shuffle`, else in order;
    /// the last partial batch is kept unless `dropLast`. The order depends on nothing else.
    public func batchIndices(epoch: Int, batchSize: Int, shuffle: Bool, seed: UInt64, dropLast: Bool = false) -> [ArraySlice<Int>] {
        precondition(batchSize >= 1, "[batches] expected a positive batch size, got \(batchSize)")
        let order = shuffle ? RandomGenerator(seed: seed).derived(UInt64(epoch) &+ 1_000).permutation(count) : Array(0..<count)
        var out: [ArraySlice<Int>] = []
        var start = 0
        while start < count {
            let end = min(start + batchSize, count)
            if end - start < batchSize && dropLast { break }
            out.append(order[start..<end])
            start = end
        }
        return out
    }
}

/// A labelled data set held in memory: samples `[count, ...]` (event samples `[count, T, C, H, W]`).
public struct InMemoryDataset: LabelledDataset {
    public let samples: Tensor
    public let labels: [Int]
    /// Whether samples are sequences `[T, C, H, W]` (then batches are made time-major).
    public let isSequence: Bool
    public let classes: Int

    public init(samples: Tensor, labels: [Int], isSequence: Bool, classes: Int) {
        precondition(samples.shape.first == labels.count, "[InMemoryDataset] expected \(labels.count) samples, got \(ShapeUtil.describe(samples.shape))")
        (self.samples, self.labels, self.isSequence, self.classes) = (samples.contiguous(), labels, isSequence, classes)
    }

    public var count: Int { labels.count }

    /// The samples at `indices` as a batch (no augmentation).
    public func batch(_ indices: ArraySlice<Int>, epoch: Int = 0) -> Batch {
        let sampleShape = Array(samples.shape.dropFirst())
        let size = sampleShape.reduce(1, *)
        let out = Tensor.empty([indices.count] + sampleShape, device: samples.device)
        let (src, dst) = (samples.pointer(as: Float.self), out.pointer(as: Float.self))
        for (j, i) in indices.enumerated() { (dst + j * size).update(from: src + i * size, count: size) }
        let inputs = isSequence ? out.transposed(0, 1).contiguous() : out
        return Batch(inputs: inputs, labels: Tensor(labels: indices.map { labels[$0] }, device: samples.device))
    }

}
