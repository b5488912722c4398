import Foundation

/// Where the time of a training step goes: exclusive wall time per category.
///
/// Off by default (one branch per backend call). `snn bench train` turns it on, wraps the
/// device's backend in a ``ProfilingBackend`` (one category per primitive) and lets the
/// trainer name its phases (forward, loss, backward, optimizer); backends time nested work of
/// their own (oneDNN's layout reorders) with ``measure(_:generic:_:)`` too. A nested
/// measurement's time is taken out of its parent's, so the categories add up to the time
/// measured. Only the thread that called ``start()`` records; work other threads do for it
/// (OpenMP teams inside a call) counts in that call.
public enum Profiler {
    /// Whether measurements are recorded.
    nonisolated(unsafe) public private(set) static var isEnabled = false
    /// The trainer's current phase; generic ops (elementwise, reductions, copies, GEMM) in the
    /// `loss` and `optimizer` phases are booked to the phase, elsewhere to `other ops`.
    nonisolated(unsafe) public static var phase = "forward"

    nonisolated(unsafe) private static var owner = pthread_self()
    nonisolated(unsafe) private static var totals: [String: Double] = [:]
    nonisolated(unsafe) private static var counts: [String: Int] = [:]
    nonisolated(unsafe) private static var outermost = 0
    /// Start time and time of finished children, per open measurement.
    nonisolated(unsafe) private static var open: [(start: UInt64, children: UInt64)] = []

    /// Starts recording on the calling thread, from zero.
    public static func start() {
        owner = pthread_self()
        totals = [:]
        counts = [:]
        outermost = 0
        open = []
        isEnabled = true
    }

    /// Stops recording and returns seconds per category.
    @discardableResult
    public static func stop() -> [String: Double] {
        isEnabled = false
        return totals
    }

    /// Seconds per category so far.
    public static var seconds: [String: Double] { totals }

    /// Measurements per category so far: under a ``ProfilingBackend``, the primitives called
    /// (on a GPU, each is one to three kernel launches or library calls).
    public static var calls: [String: Int] { counts }

    /// Measurements so far not nested in another: under a ``ProfilingBackend``, the calls to the
    /// backend (a backend's own nested work, such as oneDNN's reorders, not counted again).
    public static var outermostCalls: Int { outermost }

    /// Runs `body`, booking its time (less nested measurements) to `category`, or to the phase
    /// for `generic` work in the loss or optimizer phase.
    @inline(__always)
    public static func measure<R>(_ category: String, generic: Bool = false, _ body: () throws -> R) rethrows -> R {
        guard isEnabled, pthread_equal(owner, pthread_self()) != 0 else { return try body() }
        if open.isEmpty { outermost += 1 }
        open.append((DispatchTime.now().uptimeNanoseconds, 0))
        defer {
            let (start, children) = open.removeLast()
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            let key = generic ? (phase == "loss" || phase == "optimizer" ? phase : "other ops") : category
            totals[key, default: 0] += Double(elapsed - min(children, elapsed)) / 1e9
            counts[key, default: 0] += 1
            if !open.isEmpty { open[open.count - 1].children += elapsed }
        }
        return try body()
    }
}
