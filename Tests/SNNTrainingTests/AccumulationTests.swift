import Foundation
import SNNCPU
import SNNData
import SNNTensor
import SNNTraining
import Testing

/// `--accumulate K`: one optimisation step over several micro-batches.
@Suite("gradient accumulation", .serialized)
struct AccumulationTests {
    init() { CPUBackend.register() }

    @Test("a step over micro-batches of 8 and 4 samples applies (8/12)·g₀ + (4/12)·g₁, bit for bit")
    func weightedMean() throws {
        var config = TinyRun.config()
        config.accumulate = 2
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-accumulate-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = TinyRun.data(12, seed: 3)
        let (b0, b1) = (data.batch(Array(0..<8)[...], epoch: 0), data.batch(Array(8..<12)[...], epoch: 0))

        let a = try TinyRun.trainer(config, dir: dir)
        let result = try a.step([b0, b1], samples: 12)
        #expect(result.seen == 12)

        let b = try TinyRun.trainer(config, dir: dir)
        _ = b.computeGradients(b0)
        let g0 = withoutGradients { b.gradients.flat * (8.0 / 12) }
        _ = b.computeGradients(b1)
        withoutGradients { b.gradients.flat.assign(g0 + b.gradients.flat * (4.0 / 12)) }
        b.applyGradients()
        #expect(a.flatParameters.toFloats() == b.flatParameters.toFloats())

        // And it is not the single-batch step of either micro-batch alone.
        let c = try TinyRun.trainer(config, dir: dir)
        _ = try c.step([b0], samples: 8)
        #expect(a.flatParameters.toFloats() != c.flatParameters.toFloats())
    }
}
