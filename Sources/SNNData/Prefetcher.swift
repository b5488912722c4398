import Foundation

/// Assembles batches ahead of the training loop on background threads.
///
/// Up to `workers` batches are built concurrently while the caller trains on the current one;
/// they are handed out strictly in order. Every batch depends only on (dataset, indices,
/// epoch) — augmentation draws come from (seed, epoch, sample) — so the batches are the same
/// for any number of workers, 0 (assembled on the calling thread) included.
public final class BatchPrefetcher {
    private let dataset: any LabelledDataset
    private let batches: [ArraySlice<Int>]
    private let epoch: Int
    private let workers: Int
    private var position = 0
    private var scheduled = 0
    private var slots: [Result<Batch, Error>?]
    private var ready: [DispatchSemaphore]
    private let lock = NSLock()

    public init(dataset: any LabelledDataset, batches: [ArraySlice<Int>], epoch: Int, workers: Int) {
        precondition(workers >= 0, "[BatchPrefetcher] expected workers >= 0, got \(workers)")
        (self.dataset, self.batches, self.epoch, self.workers) = (dataset, batches, epoch, workers)
        slots = [Result<Batch, Error>?](repeating: nil, count: batches.count)
        ready = batches.map { _ in DispatchSemaphore(value: 0) }
        while scheduled < min(workers, batches.count) { schedule() }
    }

    private func schedule() {
        let i = scheduled
        scheduled += 1
        let (dataset, indices, epoch) = (self.dataset, batches[i], self.epoch)
        DispatchQueue.global(qos: .userInitiated).async { [weak self] in
            let batch = Result { try dataset.batch(indices, epoch: epoch) }
            guard let self else { return }
            self.lock.withLock { self.slots[i] = batch }
            self.ready[i].signal()
        }
    }

    /// The next batch in order, or nil after the last.
    ///
    /// - Throws: what assembling the batch threw (an unreadable file).
    public func next() throws -> Batch? {
        guard position < batches.count else { return nil }
        defer { position += 1 }
        guard workers > 0 else { return try dataset.batch(batches[position], epoch: epoch) }
        if scheduled < batches.count { schedule() }
        ready[position].wait()
        let result = lock.withLock {
            defer { slots[position] = nil }
            return slots[position]
        }
        return try result?.get()
    }
}
