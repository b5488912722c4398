import Foundation
import SNNData
import SNNModels
import SNNTensor

/// Two random directions in parameter space, by parameter name (Li et al. 2018).
///
/// Drawn once (Gaussian, from a seed) and stored raw, so the same directions can serve several
/// checkpoints; ``normalized(to:)`` scales them to the weights of the checkpoint being plotted.
public struct LandscapeDirections {
    public var x: [String: Tensor]
    public var y: [String: Tensor]
    public var seed: UInt64

    /// Gaussian directions with the shapes of `parameters`, drawn from `seed` in name order.
    public init(parameters: [(key: String, value: Tensor)], seed: UInt64) {
        let g = RandomGenerator(seed: seed)
        var (x, y) = ([String: Tensor](), [String: Tensor]())
        for (name, p) in parameters.sorted(by: { $0.key < $1.key }) {
            x[name] = Tensor.normal(p.shape, generator: g)
            y[name] = Tensor.normal(p.shape, generator: g)
        }
        (self.x, self.y, self.seed) = (x, y, seed)
    }

    init(x: [String: Tensor], y: [String: Tensor], seed: UInt64) { (self.x, self.y, self.seed) = (x, y, seed) }

    /// Filter-wise normalisation: each filter (slice along the first axis) of a weight with two or
    /// more axes is scaled to the norm of the same filter of `parameters`; directions of
    /// one-axis parameters (biases, batch norm's γ and β) are zero, so the plot moves the weights
    /// that shape the function, not the normalisation.
    public func normalized(to parameters: [(key: String, value: Tensor)]) -> (x: [String: Tensor], y: [String: Tensor]) {
        func scale(_ d: Tensor, _ w: Tensor) -> Tensor {
            guard w.shape.count >= 2, let filters = w.shape.first, filters > 0 else { return Tensor.zeros(w.shape) }
            let size = w.count / filters
            let (dv, wv) = (d.toDoubles(), w.toDoubles())
            var out = [Float](repeating: 0, count: dv.count)
            for f in 0..<filters {
                let range = (f * size)..<((f + 1) * size)
                let dn = range.reduce(0.0) { $0 + dv[$1] * dv[$1] }.squareRoot()
                let wn = range.reduce(0.0) { $0 + wv[$1] * wv[$1] }.squareRoot()
                let factor = dn > 0 ? wn / dn : 0
                for i in range { out[i] = Float(dv[i] * factor) }
            }
            return Tensor(out, shape: w.shape)
        }
        var (nx, ny) = ([String: Tensor](), [String: Tensor]())
        for (name, w) in parameters {
            if let d = x[name] { nx[name] = scale(d, w) }
            if let d = y[name] { ny[name] = scale(d, w) }
        }
        return (nx, ny)
    }

    /// Stored as safetensors: `x.<name>`, `y.<name>`, the seed in the metadata.
    public func save(to path: String) throws {
        var tensors: [String: Tensor] = [:]
        for (k, v) in x { tensors["x.\(k)"] = v }
        for (k, v) in y { tensors["y.\(k)"] = v }
        try SafeTensors.save(tensors, to: path, metadata: ["swiftsnn.landscape_seed": String(seed)])
    }

    /// Reads directions saved by ``save(to:)``, checked against `parameters` (every name with its shape).
    public static func load(_ path: String, parameters: [(key: String, value: Tensor)]) throws -> LandscapeDirections {
        let (tensors, metadata) = try SafeTensors.decode(try Data(contentsOf: URL(fileURLWithPath: path)), path: path)
        var (x, y) = ([String: Tensor](), [String: Tensor]())
        for (k, v) in tensors {
            if k.hasPrefix("x.") { x[String(k.dropFirst(2))] = v } else if k.hasPrefix("y.") { y[String(k.dropFirst(2))] = v }
        }
        for (name, p) in parameters {
            guard let dx = x[name], let dy = y[name] else {
                throw LandscapeError("\(path): no direction for parameter \(name): these directions were drawn for another network")
            }
            guard dx.shape == p.shape, dy.shape == p.shape else {
                throw LandscapeError("\(path): the direction for \(name) has shape \(ShapeUtil.describe(dx.shape)), the network's parameter \(ShapeUtil.describe(p.shape)): these directions were drawn for another network")
            }
        }
        return LandscapeDirections(x: x, y: y, seed: metadata["swiftsnn.landscape_seed"].flatMap(UInt64.init) ?? 0)
    }
}

/// A loss landscape problem (a direction file for another network, say).
public struct LandscapeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Loss and accuracy on a 2-D grid around trained weights: `w + a·δx + b·δy` for a, b in
/// `[-span, span]` (`grid` points each way), with filter-normalised directions, batch norm in
/// evaluation mode, cross-entropy of the output averaged over time.
public struct LossLandscape: Sendable, Codable {
    public var coordinates: [Double]
    /// `loss[i][j]` at (a = coordinates[i], b = coordinates[j]).
    public var loss: [[Double]]
    public var accuracy: [[Double]]
    public var samples: Int

    public init(coordinates: [Double], loss: [[Double]], accuracy: [[Double]], samples: Int) {
        (self.coordinates, self.loss, self.accuracy, self.samples) = (coordinates, loss, accuracy, samples)
    }

    /// The grid's coordinates: `grid` evenly spaced values from -span to span.
    public static func coordinates(grid: Int, span: Double) -> [Double] {
        (0..<grid).map { -span + 2 * span * Double($0) / Double(grid - 1) }
    }

    /// The points of shard `index` of `count`, as flat indices `i·grid + j` of (a = coordinates[i],
    /// b = coordinates[j]): those with `flat % count == index`, so every shard gets points from
    /// every part of the grid and the shards together are the grid, each point once.
    public static func shard(_ index: Int, of count: Int, grid: Int) -> [Int] {
        precondition(count >= 1 && (0..<count).contains(index), "[LossLandscape] expected shard 0..<\(count), got \(index)")
        return Array(stride(from: index, to: grid * grid, by: count))
    }

    /// Copies the points `points` (flat indices, see ``shard(_:of:grid:)``) of `other`, a
    /// landscape of the same grid, into this one.
    public mutating func merge(_ other: LossLandscape, points: [Int]) {
        let grid = coordinates.count
        precondition(other.coordinates == coordinates, "[LossLandscape.merge] expected the same grid, got \(other.coordinates) and \(coordinates)")
        for k in points {
            precondition((0..<(grid * grid)).contains(k), "[LossLandscape.merge] expected points in 0..<\(grid * grid), got \(k)")
            (loss[k / grid][k % grid], accuracy[k / grid][k % grid]) = (other.loss[k / grid][k % grid], other.accuracy[k / grid][k % grid])
        }
    }

    /// Evaluates the grid, or only `points` of it (flat indices, see ``shard(_:of:grid:)``; the
    /// others are NaN); the network's weights and mode are restored afterwards. Each point's
    /// numbers depend only on the point, so shards evaluated apart (`snn analyze landscape
    /// --parallel`, one process each) merge into the landscape evaluated whole.
    /// `point` receives each point as it is done (flat index, loss, accuracy); `progress`
    /// receives (points done, points to do).
    public static func evaluate(model: SpikingNetwork, data: any LabelledDataset, batches: [ArraySlice<Int>],
                                directions: LandscapeDirections, grid: Int, span: Double, points: [Int]? = nil,
                                point: ((Int, Double, Double) -> Void)? = nil,
                                progress: ((Int, Int) -> Void)? = nil) throws -> LossLandscape {
        precondition(grid >= 2, "[LossLandscape] expected a grid of 2 or more points, got \(grid)")
        let chosen = points ?? Array(0..<(grid * grid))
        precondition(chosen.allSatisfy { (0..<(grid * grid)).contains($0) }, "[LossLandscape] expected points in 0..<\(grid * grid)")
        let parameters = model.namedParameters()
        let (dx, dy) = directions.normalized(to: parameters)
        let device = parameters.first?.value.device ?? .cpu
        // Copies (not views: `contiguous()` of a contiguous tensor is the tensor itself).
        let original = withoutGradients {
            parameters.map { p -> Tensor in
                let copy = Tensor.empty(p.value.shape, dtype: p.value.dtype, device: .cpu)
                copy.assign(p.value)
                return copy
            }
        }
        let wasTraining = model.training
        model.eval()
        defer {
            withoutGradients { for ((_, p), w) in zip(parameters, original) { p.assign(w.to(device)) } }
            model.train(wasTraining)
        }
        // The samples once, so every point sees the same inputs.
        let data = try batches.map { try data.batch($0, epoch: 0) }
        let axis = coordinates(grid: grid, span: span)
        var loss = [[Double]](repeating: [Double](repeating: .nan, count: grid), count: grid)
        var accuracy = loss
        var done = 0
        var classIndices: Tensor?
        for k in chosen {
            let (i, j) = (k / grid, k % grid)
            let (a, b) = (axis[i], axis[j])
            withoutGradients {
                for ((name, p), w) in zip(parameters, original) {
                    var moved = w
                    if let d = dx[name] { moved = moved + d * a }
                    if let d = dy[name] { moved = moved + d * b }
                    p.assign(moved.to(device))
                }
                var (sum, right, seen) = (0.0, 0, 0)
                // Each batch's loss and correct count stay on the device, read once a point.
                var results: [Tensor] = []
                for batch in data {
                    let mean = model(batch.inputs.to(device)).mean(axes: [0])
                    let labels = batch.labels.to(device)
                    let order = classIndices ?? Tensor.argmaxIndices(mean.shape[1], dtype: mean.dtype, device: mean.device)
                    classIndices = order
                    results += [crossEntropy(logits: mean, labels: labels), mean.argmaxMatches(labels, indices: order)]
                }
                let values = Tensor.read(results).map { $0[0] }
                for (b, batch) in data.enumerated() {
                    sum += values[2 * b] * Double(batch.count)
                    right += Int(values[2 * b + 1])
                    seen += batch.count
                }
                (loss[i][j], accuracy[i][j]) = (sum / Double(max(seen, 1)), Double(right) / Double(max(seen, 1)))
            }
            point?(k, loss[i][j], accuracy[i][j])
            done += 1
            progress?(done, chosen.count)
        }
        return LossLandscape(coordinates: axis, loss: loss, accuracy: accuracy, samples: data.map(\.count).reduce(0, +))
    }
}
