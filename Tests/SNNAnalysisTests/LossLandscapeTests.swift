import Foundation
import SNNAnalysis
import SNNCPU
import SNNData
import SNNModels
import SNNTensor
import Testing

/// Loss landscapes on a network small enough to evaluate by hand: a conv layer and a linear
/// readout (`CONVAP-2-3-1-1_L-3` on 1×4×4 frames, T = 2).
@Suite("Loss landscape")
struct LossLandscapeTests {
    init() { CPUBackend.register() }

    func setup() throws -> (SpikingNetwork, InMemoryDataset) {
        let model = try SpikingNetwork("CONVAP-2-3-1-1_L-3", classes: 3, config: ModelConfig(timesteps: 2, inputShape: [1, 4, 4]),
                                       generator: RandomGenerator(seed: 3))
        let values = (0..<(6 * 16)).map { Float(sin(Double($0) * 0.7) + 1) }
        let data = InMemoryDataset(samples: Tensor(values, shape: [6, 1, 4, 4]), labels: [0, 1, 2, 0, 1, 2], isSequence: false, classes: 3)
        return (model, data)
    }

    @Test("filter-wise normalisation: each filter of a direction has its weight's filter norm; biases and batch norm stay put")
    func normalisation() throws {
        let (model, _) = try setup()
        let parameters = model.namedParameters()
        let (dx, dy) = LandscapeDirections(parameters: parameters, seed: 11).normalized(to: parameters)
        var checked = 0
        for (name, w) in parameters {
            for d in [try #require(dx[name]), try #require(dy[name])] {
                let (dv, wv) = (d.toDoubles(), w.toDoubles())
                if w.shape.count < 2 {
                    #expect(dv.allSatisfy { $0 == 0 }, "\(name) moves")
                    continue
                }
                let size = w.count / w.shape[0]
                for f in 0..<w.shape[0] {
                    let r = (f * size)..<((f + 1) * size)
                    let (dn, wn) = (r.map { dv[$0] * dv[$0] }.reduce(0, +).squareRoot(), r.map { wv[$0] * wv[$0] }.reduce(0, +).squareRoot())
                    #expect(abs(dn - wn) <= 1e-5 * wn, "\(name) filter \(f): \(dn) vs \(wn)")
                    checked += 1
                }
            }
        }
        #expect(checked == 2 * (2 + 3), "conv filters and readout rows of both directions")
    }

    @Test("the grid's centre is the trained network, a corner is the network moved by both directions, and the weights come back")
    func grid() throws {
        let (model, data) = try setup()
        let parameters = model.namedParameters()
        let before = parameters.map { $0.value.toDoubles() }
        let directions = LandscapeDirections(parameters: parameters, seed: 5)
        /// Cross-entropy and accuracy of the time-mean output on all six samples, computed directly.
        func direct() -> (Double, Double) {
            withoutGradients {
                model.eval()
                defer { model.train() }
                let batch = data.batch(ArraySlice(0..<6))
                let mean = model(batch.inputs).mean(axes: [0])
                let right = zip(mean.argmaxRows(), [0, 1, 2, 0, 1, 2]).filter { $0 == $1 }.count
                return (crossEntropy(logits: mean, labels: batch.labels).item(), Double(right) / 6)
            }
        }
        let centre = direct()
        let batches: [ArraySlice<Int>] = [[0, 1, 2, 3], [4, 5]]
        let landscape = try LossLandscape.evaluate(model: model, data: data, batches: batches, directions: directions, grid: 3, span: 0.5)
        #expect(landscape.coordinates == [-0.5, 0, 0.5] && landscape.samples == 6)
        #expect(abs(landscape.loss[1][1] - centre.0) < 1e-6 && landscape.accuracy[1][1] == centre.1)
        #expect(zip(parameters.map { $0.value.toDoubles() }, before).allSatisfy { $0 == $1 }, "weights restored exactly")
        // The corner (a, b) = (-0.5, 0.5), by moving the weights here.
        let (dx, dy) = directions.normalized(to: parameters)
        withoutGradients {
            for (name, p) in parameters { p.assign(p.detached() + dx[name]! * -0.5 + dy[name]! * 0.5) }
        }
        let corner = direct()
        #expect(abs(landscape.loss[0][2] - corner.0) < 1e-5 * max(1, corner.0) && landscape.accuracy[0][2] == corner.1)
        #expect(landscape.loss[0][2] != landscape.loss[1][1])
    }

    @Test("shards: each evaluates exactly its points, in any order, and the shards merged are the whole grid, bit for bit")
    func shards() throws {
        let (model, data) = try setup()
        let directions = LandscapeDirections(parameters: model.namedParameters(), seed: 5)
        let batches: [ArraySlice<Int>] = [[0, 1, 2, 3], [4, 5]]
        let whole = try LossLandscape.evaluate(model: model, data: data, batches: batches, directions: directions, grid: 4, span: 0.5)
        #expect(LossLandscape.shard(0, of: 3, grid: 4) == [0, 3, 6, 9, 12, 15] && LossLandscape.shard(2, of: 3, grid: 4) == [2, 5, 8, 11, 14])
        #expect(LossLandscape.shard(0, of: 20, grid: 4) == [0] && LossLandscape.shard(17, of: 20, grid: 4).isEmpty)
        var merged = LossLandscape(coordinates: whole.coordinates, loss: Array(repeating: Array(repeating: .nan, count: 4), count: 4),
                                   accuracy: Array(repeating: Array(repeating: .nan, count: 4), count: 4), samples: 6)
        for index in 0..<3 {
            // Backwards, so a point's numbers cannot depend on the point evaluated before it.
            let points = Array(LossLandscape.shard(index, of: 3, grid: 4).reversed())
            var reported: [Int] = []
            let shard = try LossLandscape.evaluate(model: model, data: data, batches: batches, directions: directions, grid: 4, span: 0.5,
                                                   points: points, point: { k, loss, accuracy in
                                                       reported.append(k)
                                                       #expect(loss == value(k, whole.loss) && accuracy == value(k, whole.accuracy))
                                                   })
            #expect(reported == points && shard.samples == 6 && shard.coordinates == whole.coordinates)
            for k in 0..<16 {
                #expect(points.contains(k) == !value(k, shard.loss).isNaN, "point \(k) of shard \(index)")
            }
            merged.merge(shard, points: points)
        }
        #expect(merged.loss == whole.loss && merged.accuracy == whole.accuracy)
        #expect(Set(whole.loss.flatMap { $0 }).count > 8, "the points differ")
    }

    /// The value at flat index `k` of a 4×4 grid.
    func value(_ k: Int, _ values: [[Double]]) -> Double { values[k / 4][k % 4] }

    @Test("directions saved for one network load for it and are refused, with a message, by another")
    func saveAndLoad() throws {
        let (model, _) = try setup()
        let parameters = model.namedParameters()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-directions-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directions = LandscapeDirections(parameters: parameters, seed: 9)
        try directions.save(to: path)
        let loaded = try LandscapeDirections.load(path, parameters: parameters)
        #expect(loaded.seed == 9 && loaded.x.keys.sorted() == directions.x.keys.sorted())
        #expect(loaded.x.allSatisfy { $0.value.toDoubles() == directions.x[$0.key]!.toDoubles() })
        let other = try SpikingNetwork("CONVAP-4-3-1-1_L-3", classes: 3, config: ModelConfig(timesteps: 2, inputShape: [1, 4, 4]),
                                       generator: RandomGenerator(seed: 3))
        #expect(throws: LandscapeError.self) { try LandscapeDirections.load(path, parameters: other.namedParameters()) }
    }
}
