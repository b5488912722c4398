import COpenMP
import Dispatch
import Foundation
import Synchronization

/// Splits the Swift kernels' work across cores.
///
/// Kernels call these helpers between library calls (never inside a oneDNN or OpenBLAS call),
/// so the two thread pools do not compete. Every helper hands out contiguous index ranges; a
/// kernel that reduces must make its summation order depend only on the shape (fixed blocks
/// combined in block order), so the thread count never changes a result.
package enum Parallel {
    /// The number of worker threads: the active cores (fewer when OMP_NUM_THREADS says so, since
    /// the kernels run on libgomp's pool), or what ``CPUBackend/limitThreads(_:)`` set before
    /// any work.
    nonisolated(unsafe) static var threadCount = max(1, min(ProcessInfo.processInfo.activeProcessorCount, Int(omp_get_max_threads())))

    /// Below this many elements a kernel runs on the calling thread: waking workers costs a
    /// few microseconds, which a 64K-element pass over memory does not repay.
    static var serialThreshold: Int { serialThresholdOverride ?? (1 << 16) }

    /// A test hook: a lower threshold for the current task only (`$serialThresholdOverride
    /// .withValue(64) { ... }`), so parity tests split small tensors into many unaligned chunks.
    /// Task-local, so tests running concurrently keep the real threshold; results do not depend
    /// on it anyway (see the summation-order rule above).
    @TaskLocal package static var serialThresholdOverride: Int?

    /// Ranges handed out per worker thread. More than one, so that when another process
    /// holds a core the idle worker takes over the remaining ranges instead of waiting: the
    /// threads take ranges in turn from a shared counter, each the next one not yet taken.
    static let rangesPerThread = 4

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when the total work
    /// (`count * cost`, in elements touched) reaches ``serialThreshold``.
    ///
    /// - Parameters:
    ///   - count: the number of work items.
    ///   - cost: elements touched per item (e.g. a row length), so rows of a matrix split like
    ///     its elements do.
    ///   - body: receives one range of whole items; ranges may run in any order and on any
    ///     thread, so `body` must only write what its range owns.
    static func forEachRange(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let work = count * max(cost, 1)
        let chunks = min(threadCount * rangesPerThread, count, max(1, work / serialThreshold))
        if chunks <= 1 || threadCount == 1 {
            body(0..<count)
            return
        }
        // On libgomp's team (see OpenMP.swift), each thread taking the next chunk until none is left.
        let next = Atomic<Int>(0)
        OpenMP.parallel { _, _ in
            while case let c = next.wrappingAdd(1, ordering: .relaxed).oldValue, c < chunks {
                body(range(c, of: chunks, count))
            }
        }
    }

    /// The `c`-th of `chunks` near-equal contiguous ranges of `0..<count`.
    @inline(__always)
    static func range(_ c: Int, of chunks: Int, _ count: Int) -> Range<Int> {
        let base = count / chunks, extra = count % chunks
        let lo = c * base + min(c, extra)
        return lo..<(lo + base + (c < extra ? 1 : 0))
    }
}
