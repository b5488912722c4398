import Foundation
import SNNAnalysis
import SNNCPU
import SNNData
import SNNModels
import SNNTensor
import Testing

/// Fisher information per timestep and its centroid, against a network whose gradients are
/// written out by hand: a linear readout on a sequence (`L-3` on 4×1×1 frames, T = 3).
@Suite("Fisher information")
struct FisherInformationTests {
    init() { CPUBackend.register() }

    /// Six samples of 3 timesteps × 4 features, labels 0...2.
    static let inputs: [[[Double]]] = (0..<6).map { (n: Int) -> [[Double]] in
        (0..<3).map { (t: Int) -> [Double] in (0..<4).map { (f: Int) -> Double in sin(Double(n * 12 + t * 4 + f)) } }
    }
    static let labels = [0, 1, 2, 2, 1, 0]

    /// ‖∇_W,b CE(mean_{τ<t} (W x_τ + b), y)‖² summed the way each estimator sums it, in Doubles.
    static func expected(weight w: [[Double]], bias b: [Double], batches: [[Int]], perSample: Bool) -> [Double] {
        var fi = [Double](repeating: 0, count: 3)
        /// The gradient of the mean loss over `samples` at prefix length t.
        func gradient(_ samples: [Int], _ t: Int) -> [Double] {
            var g = [Double](repeating: 0, count: 3 * 4 + 3)
            for n in samples {
                let x = (0..<4).map { f in (0..<t).map { inputs[n][$0][f] }.reduce(0, +) / Double(t) }
                let z = (0..<3).map { k in (0..<4).map { w[k][$0] * x[$0] }.reduce(0, +) + b[k] }
                let e = z.map { exp($0 - z.max()!) }
                let p = e.map { $0 / e.reduce(0, +) }
                for k in 0..<3 {
                    let d = (p[k] - (labels[n] == k ? 1 : 0)) / Double(samples.count)
                    for f in 0..<4 { g[k * 4 + f] += d * x[f] }
                    g[12 + k] += d
                }
            }
            return g
        }
        for batch in batches {
            for t in 1...3 {
                if perSample {
                    for n in batch { fi[t - 1] += gradient([n], t).map { $0 * $0 }.reduce(0, +) }
                } else {
                    fi[t - 1] += gradient(batch, t).map { $0 * $0 }.reduce(0, +) / 100
                }
            }
        }
        let count = Double(batches.joined().count)
        return perSample ? fi.map { $0 / count } : fi
    }

    func setup() throws -> (SpikingNetwork, InMemoryDataset, [[Double]], [Double]) {
        let model = try SpikingNetwork("L-3", classes: 3, config: ModelConfig(timesteps: 3, inputShape: [4, 1, 1]), generator: RandomGenerator(seed: 7))
        let samples = Tensor(Self.inputs.flatMap { $0.flatMap { $0.map(Float.init) } }, shape: [6, 3, 4, 1, 1])
        let data = InMemoryDataset(samples: samples, labels: Self.labels, isSequence: true, classes: 3)
        let params = model.namedParameters()
        let w = try #require(params.first { $0.key.hasSuffix("weight") }?.value).toDoubles()
        let b = try #require(params.first { $0.key.hasSuffix("bias") }?.value).toDoubles()
        return (model, data, (0..<3).map { k in Array(w[(k * 4)..<(k * 4 + 4)]) }, b)
    }

    @Test("the reference estimator: squared batch-mean gradients / 100, summed over batches, for every t from one forward pass")
    func reference() throws {
        let (model, data, w, b) = try setup()
        let batches: [ArraySlice<Int>] = [[0, 1, 2], [3, 4, 5]]
        let fi = try FisherInformation.estimate(model: model, data: data, batchIndices: batches, epoch: 0, estimator: .reference)
        let want = Self.expected(weight: w, bias: b, batches: batches.map(Array.init), perSample: false)
        #expect(fi.batches == 2 && fi.samples == 6 && fi.perTimestep.count == 3 && want.allSatisfy { $0 > 0 })
        for (got, exp) in zip(fi.perTimestep, want) { #expect(abs(got - exp) <= 1e-5 * exp, "\(fi.perTimestep) vs \(want)") }
        #expect(model.training, "the network's mode is restored")
    }

    @Test("the per-sample empirical Fisher: the mean of each sample's squared gradient")
    func perSample() throws {
        let (model, data, w, b) = try setup()
        let batches: [ArraySlice<Int>] = [[0, 1, 2], [3, 4, 5]]
        let reads = Tensor.hostReadCount
        let fi = try FisherInformation.estimate(model: model, data: data, batchIndices: batches, epoch: 0, estimator: .perSample, batches: 1)
        // 3 samples × 3 timesteps × 2 parameters, read back together: one wait a batch on a GPU.
        #expect(Tensor.hostReadCount - reads == 1, "\(Tensor.hostReadCount - reads) reads for one batch")
        let want = Self.expected(weight: w, bias: b, batches: [[0, 1, 2]], perSample: true)
        #expect(fi.batches == 1 && fi.samples == 3 && fi.perTimestep.count == 3 && want.allSatisfy { $0 > 0 })
        for (got, exp) in zip(fi.perTimestep, want) { #expect(abs(got - exp) <= 1e-5 * exp, "\(fi.perTimestep) vs \(want)") }
    }

    @Test("the information centroid: Σ t·FI_t / Σ FI_t")
    func centroid() {
        #expect(FisherInformation.centroid([1, 1, 1]) == 2)
        #expect(FisherInformation.centroid([3, 1, 0, 0]) == 1.25)
        #expect(FisherInformation.centroid([0, 0, 2]) == 3)
        #expect(FisherInformation.centroid([0, 0]).isNaN)
    }
}

/// Against the reference code's own `FI_Observation` (scripts/make_fisher_fixture.py) on the
/// committed interop case `convnp`: its SNN with trained BatchNorm statistics, 4 images, T = 3.
@Suite("Fisher information against the reference code")
struct FisherInformationReferenceTests {
    init() { CPUBackend.register() }

    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    @Test("both estimators equal the reference's values (FI_Observation for the reference estimator) within 1e-4")
    func againstReference() throws {
        let golden = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.tests.appendingPathComponent(
            "SNNAnalysisTests/Fixtures/fisher_convnp.json"))) as? [String: Any])
        let convnp = Self.tests.appendingPathComponent("SNNTrainingTests/Fixtures/interop/convnp")
        let expected = try SafeTensors.load(convnp.appendingPathComponent("expected.safetensors").path)
        let input = try #require(expected["input"]), labels = try #require(expected["labels"])
        let model = try SpikingNetwork("CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", classes: 10,
                                       config: ModelConfig(timesteps: 3, inputShape: [3, 8, 8]), generator: RandomGenerator(seed: 0))
        try model.load(stateDict: try SafeTensors.load(convnp.appendingPathComponent("weights.safetensors").path))
        let data = InMemoryDataset(samples: input, labels: labels.toDoubles().map { Int($0) }, isSequence: false, classes: 10)
        let batches: [ArraySlice<Int>] = [[0, 1], [2, 3]]
        for (estimator, key) in [(FisherEstimator.reference, "reference"), (.perSample, "per_sample")] {
            let want = try #require(golden[key] as? [Double])
            let fi = try FisherInformation.estimate(model: model, data: data, batchIndices: batches, epoch: 0, estimator: estimator)
            #expect(fi.perTimestep.count == want.count && want.count == 3)
            for (got, exp) in zip(fi.perTimestep, want) {
                #expect(abs(got - exp) <= 1e-4 * abs(exp), "\(key): \(fi.perTimestep) vs \(want)")
            }
            #expect(abs(fi.centroid - FisherInformation.centroid(want)) < 1e-5)
        }
    }
}
