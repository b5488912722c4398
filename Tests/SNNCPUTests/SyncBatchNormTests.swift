import Foundation
import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

/// Batch norm over every process (`--sync-bn`), with two threads standing for two processes:
/// each normalises half of a batch, summing through a two-party exchange, and together they must
/// compute what one op computes on the whole batch.
@Suite("batch norm synchronised over processes", .serialized)
struct SyncBatchNormTests {
    init() { CPUBackend.register() }

    /// Two callers' tensors summed: each call waits for the other party's call of the same turn.
    final class PairSum: @unchecked Sendable {
        private let condition = NSCondition()
        private var waiting: [Float]?
        private var result: [Float]?
        private(set) var calls = 0

        /// The group of `party` (0 or 1) summing through this pair.
        func group(_ party: Int) -> CrossProcessBatchNorm.Group {
            .init(rank: party, size: 2) { self.sum($0) }
        }

        func sum(_ tensor: Tensor) {
            precondition(tensor.dtype == .float32 && tensor.isContiguous, "expected a contiguous float32 tensor")
            let values = tensor.toFloats()
            let total: [Float]
            condition.lock()
            while result != nil { condition.wait() }  // the previous turn's second reader has not read yet
            calls += 1
            if let first = waiting {
                precondition(first.count == values.count, "the two parties disagree on the buffer: \(first.count) and \(values.count)")
                total = zip(first, values).map { $0 + $1 }
                waiting = nil
                result = total
                condition.broadcast()
                while result != nil { condition.wait() }
            } else {
                waiting = values
                while result == nil { condition.wait() }
                total = result!
                result = nil
                condition.broadcast()
            }
            condition.unlock()
            tensor.assign(Tensor(total, shape: tensor.shape, device: tensor.device))
        }
    }

    /// `[T, N, C, H, W]` values split along N into the first `half` samples and the rest.
    private static func split(_ values: [Float], _ shape: [Int], half: Int) -> ([Float], [Float]) {
        let (t, n) = (shape[0], shape[1])
        let sample = values.count / (t * n)
        var (a, b) = ([Float](), [Float]())
        for step in 0..<t {
            for i in 0..<n {
                let slice = values[(step * n + i) * sample..<(step * n + i + 1) * sample]
                if i < half { a += slice } else { b += slice }
            }
        }
        return (a, b)
    }

    /// One op on `x` (`[T·N, C, ...]` values, time-major) with γ, β: its output, the gradients of
    /// `Σ output · projection` for x, γ, β, and the running statistics.
    private static func run(fused: Bool, _ x: [Float], shape: [Int], steps: Int, gamma: [Float], beta: [Float], projection: [Float],
                            on device: Device = .cpu)
        -> (out: [Float], gx: [Float], gg: [Float], gb: [Float], running: [Float]) {
        let c = shape[1]
        let (tx, tg, tb) = (Tensor(x, shape: shape, device: device), Tensor(gamma, shape: [c], device: device),
                            Tensor(beta, shape: [c], device: device))
        for t in [tx, tg, tb] { t.requiresGrad = true }
        let (m, v) = (Tensor.zeros([c], device: device), Tensor.ones([c], device: device))
        let out = fused
            ? batchNormNeuronScan(tx, steps: steps, gamma: tg, beta: tb, runningMean: m, runningVar: v,
                                  neuron: NeuronParameters(tau: 1.5, threshold: 0.7, reset: .soft, surrogate: .sigmoid(alpha: 4)))
            : batchNorm(tx, gamma: tg, beta: tb, runningMean: m, runningVar: v, training: true)
        (out * Tensor(projection, shape: shape, device: device)).sum().backward()
        return (out.toFloats(), tx.grad?.toFloats() ?? [], tg.grad?.toFloats() ?? [], tb.grad?.toFloats() ?? [],
                m.toFloats() + v.toFloats())
    }

    private static func close(_ a: [Float], _ b: [Float], _ what: String, tolerance: Float = 2e-5) {
        #expect(a.count == b.count, "\(what): \(a.count) and \(b.count) values")
        let scale = max(b.map(abs).max() ?? 0, 1e-12)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst / scale <= tolerance, "\(what): max |Δ| / max |value| = \(worst / scale)")
    }

    typealias Outcome = (out: [Float], gx: [Float], gg: [Float], gb: [Float], running: [Float])

    /// `[T, N, C, H, W]` values split along N after `first` samples, each part run by its own
    /// thread as one of two processes summing through a ``PairSum``; returns each part's outcome
    /// and the pair.
    private static func runAsTwoProcesses(fused: Bool, _ x: [Float], projection: [Float], shape: [Int], first: Int, gamma: [Float],
                                          beta: [Float], on device: Device = .cpu) throws -> ([Outcome], PairSum) {
        let (steps, n) = (shape[0], shape[1])
        let (xa, xb) = split(x, shape, half: first)
        let (pa, pb) = split(projection, shape, half: first)
        let pair = PairSum()
        nonisolated(unsafe) var outcomes: [Outcome?] = [nil, nil]
        let group = DispatchGroup()
        for (party, (values, proj, samples)) in [(xa, pa, first), (xb, pb, n - first)].enumerated() {
            group.enter()
            Thread {
                // Per thread: each party's ops sum through the pair.
                CrossProcessBatchNorm.group = pair.group(party)
                defer { CrossProcessBatchNorm.group = nil }
                outcomes[party] = run(fused: fused, values, shape: [steps * samples] + shape[2...], steps: steps, gamma: gamma, beta: beta,
                                      projection: proj, on: device)
                group.leave()
            }.start()
        }
        group.wait()
        return ([try #require(outcomes[0]), try #require(outcomes[1])], pair)
    }

    /// On the CPU backend (each half above its thread split) and on the reference backend.
    @Test("two halves of a batch, synchronised, compute what the whole batch computes",
          arguments: [false, true], [Device.cpu, .reference])
    func halvesEqualWhole(fused: Bool, device: Device) throws {
        // T = 3, N = 5 split 2 + 3 (unequal halves), C = 7, 32×32 planes.
        let (steps, n, c, h, w) = (3, 5, 7, 32, 32)
        let r = RandomInputs(seed: 131)
        let whole = [steps * n, c, h, w]
        let x = r.normalValues(steps * n * c * h * w, mean: 0.4, std: 2).map(Float.init)
        let gamma = r.uniformValues(c, low: 0.5, high: 1.5).map(Float.init), beta = r.normalValues(c, mean: 0.6, std: 0.5).map(Float.init)
        let projection = r.normalValues(x.count).map(Float.init)
        let reference = Self.run(fused: fused, x, shape: whole, steps: steps, gamma: gamma, beta: beta, projection: projection,
                                 on: device)
        if fused { #expect(reference.out.contains(1) && reference.out.contains(0), "some neurons must spike, others not") }

        let sizes = [2, 3]
        let (halves, pair) = try Self.runAsTwoProcesses(fused: fused, x, projection: projection, shape: [steps, n, c, h, w], first: sizes[0],
                                                        gamma: gamma, beta: beta, on: device)
        let (a, b) = (halves[0], halves[1])
        #expect(pair.calls == 4, "one forward and one backward exchange per party")

        let (outA, outB) = Self.split(reference.out, [steps, n, c, h, w], half: sizes[0])
        let (gxA, gxB) = Self.split(reference.gx, [steps, n, c, h, w], half: sizes[0])
        if fused {
            #expect(a.out == outA && b.out == outB, "the spikes")
        } else {
            Self.close(a.out, outA, "output, first half")
            Self.close(b.out, outB, "output, second half")
        }
        Self.close(a.gx, gxA, "dL/dx, first half")
        Self.close(b.gx, gxB, "dL/dx, second half")
        // γ and β: each party's gradient is its own share; data-parallel training sums them.
        Self.close(zip(a.gg, b.gg).map { $0 + $1 }, reference.gg, "dL/dγ summed")
        Self.close(zip(a.gb, b.gb).map { $0 + $1 }, reference.gb, "dL/dβ summed")
        Self.close(a.running, reference.running, "running statistics, first party")
        #expect(a.running == b.running, "every party keeps the same running statistics")
    }

    @Test("a mean large against the spread (300 ± 0.05): the halves' statistics combine without cancellation")
    func largeMean() throws {
        // Summing n·(σ² + μ²) in float32 would lose σ² = 0.0025 against μ² = 90000 entirely.
        let (steps, n, c) = (2, 6, 3)
        let r = RandomInputs(seed: 134)
        let x = r.normalValues(steps * n * c * 16, mean: 300, std: 0.05).map(Float.init)
        let projection = r.normalValues(x.count).map(Float.init)
        let (gamma, beta) = ([Float](repeating: 1, count: c), [Float](repeating: 0, count: c))
        let whole = Self.run(fused: false, x, shape: [steps * n, c, 4, 4], steps: steps, gamma: gamma, beta: beta, projection: projection)
        let a = try Self.runAsTwoProcesses(fused: false, x, projection: projection, shape: [steps, n, c, 4, 4], first: 2, gamma: gamma,
                                           beta: beta).0[0]
        let (outA, _) = Self.split(whole.out, [steps, n, c, 4, 4], half: 2)
        // The inputs themselves hold 300 to within 3e-5, so the normalised outputs agree to ~1e-3.
        Self.close(a.out, outA, "output, first half", tolerance: 2e-3)
        Self.close(a.running, whole.running, "running statistics", tolerance: 1e-5)
    }

    @Test("the sum applies to the thread that set it: batch norm on another thread meanwhile keeps its own statistics")
    func perThread() {
        nonisolated(unsafe) var calls = 0
        CrossProcessBatchNorm.group = .init(rank: 0, size: 1) { _ in calls += 1 }
        defer { CrossProcessBatchNorm.group = nil }
        let x = RandomInputs(seed: 133).normalValues(2 * 3 * 4).map(Float.init)
        let done = DispatchSemaphore(value: 0)
        Thread {
            _ = Self.run(fused: false, x, shape: [2, 3, 2, 2], steps: 1, gamma: [1, 1, 1], beta: [0, 0, 0],
                         projection: [Float](repeating: 1, count: x.count))
            done.signal()
        }.start()
        done.wait()
        #expect(calls == 0, "another thread's batch norm summed through this thread's hook")
        _ = Self.run(fused: false, x, shape: [2, 3, 2, 2], steps: 1, gamma: [1, 1, 1], beta: [0, 0, 0],
                     projection: [Float](repeating: 1, count: x.count))
        #expect(calls == 2, "this thread's batch norm sums forward and backward")
    }

    @Test("without the sum, each half normalises alone (the default): its gradients differ from the whole's")
    func unsynchronisedDiffers() {
        let (steps, n, c) = (2, 4, 3)
        let r = RandomInputs(seed: 132)
        let x = r.normalValues(steps * n * c * 4, mean: 0.4, std: 2).map(Float.init)
        let projection = r.normalValues(x.count).map(Float.init)
        let (gamma, beta) = ([Float](repeating: 1, count: c), [Float](repeating: 0, count: c))
        let whole = Self.run(fused: false, x, shape: [steps * n, c, 2, 2], steps: steps, gamma: gamma, beta: beta, projection: projection)
        let (xa, _) = Self.split(x, [steps, n, c, 2, 2], half: 2)
        let (pa, _) = Self.split(projection, [steps, n, c, 2, 2], half: 2)
        let alone = Self.run(fused: false, xa, shape: [steps * 2, c, 2, 2], steps: steps, gamma: gamma, beta: beta, projection: pa)
        let (gxA, _) = Self.split(whole.gx, [steps, n, c, 2, 2], half: 2)
        let worst = zip(alone.gx, gxA).map { abs($0 - $1) }.max() ?? 0
        #expect(worst > 1e-3, "the halves' statistics differ, so must the gradients (max |Δ| = \(worst))")
    }
}
