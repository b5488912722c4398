/// Sums, means and maxima over axes.
extension Tensor {
    private func normalizedAxes(_ axes: [Int]?, op: String) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let a = Set(axes.map { ShapeUtil.axis($0, rank: rank, op: op) })
        precondition(a.count == axes.count, "[\(op)] expected distinct axes, got \(axes)")
        return a.sorted()
    }

    private func dropping(_ axes: [Int], from kept: Tensor, keepDims: Bool) -> Tensor {
        keepDims ? kept : kept.reshaped(kept.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    /// The sum over `axes` (all axes when `nil`).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "sum")
        if ax.isEmpty { return self }
        let kept = backend.reduce(.sum, self, axes: ax)
        let original = shape
        let result = record("sum", kept, [self]) { g in [g.expanded(to: original).contiguous()] }
        return dropping(ax, from: result, keepDims: keepDims)
    }

    /// The mean over `axes` (all axes when `nil`).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "mean")
        let n = ax.map { shape[$0] }.reduce(1, *)
        return sum(axes: ax, keepDims: keepDims) / Double(n)
    }

    /// The maximum over `axes` (all axes when `nil`). The gradient is shared equally among
    /// tied maxima.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, op: "max")
        if ax.isEmpty { return self }
        let kept = backend.reduce(.max, self, axes: ax)
        let original = shape, value = kept.detached()  // detached: no cycle through the rule
        let result = record("max", kept, [self]) { g in
            let mask = self == value.expanded(to: original)
            let ties = mask.sum(axes: ax, keepDims: true)
            return [mask * (g / ties).expanded(to: original)]
        }
        return dropping(ax, from: result, keepDims: keepDims)
    }

    /// How many rows of `[N, K]` have their maximum (the first, on ties) at their label, as a
    /// `[]` tensor on this tensor's device: ``argmaxRows()`` compared with `labels` (`[N]`
    /// integers on the same device) without reading anything back, so an evaluation on a GPU
    /// queues batch after batch. A row holding NaN has no maximum and is not counted. `indices`
    /// is `[1, K]` holding `0..<K` in this tensor's dtype, on its device (made by the caller once,
    /// as making it is an upload).
    public func argmaxMatches(_ labels: Tensor, indices: Tensor) -> Tensor {
        precondition(rank == 2, "[argmaxMatches] expected a [N, K] tensor, got \(ShapeUtil.describe(shape))")
        precondition(labels.shape == [shape[0]], "[argmaxMatches] expected [\(shape[0])] labels, got \(ShapeUtil.describe(labels.shape))")
        precondition(indices.shape == [1, shape[1]], "[argmaxMatches] expected [1, \(shape[1])] indices, got \(ShapeUtil.describe(indices.shape))")
        return withoutGradients {
            let k = Double(shape[1])
            let isMax = self == max(axes: [1], keepDims: true)
            // Each row's maxima at their index, K elsewhere: the row's least is its first maximum.
            let candidates = `where`(isMax, indices.expanded(to: shape), like(k))
            let first = -(-candidates).max(axes: [1], keepDims: true)
            return (isMax * (candidates == first) * oneHot(labels, classes: shape[1], dtype: dtype)).sum()
        }
    }

    /// `[1, count]` holding `0..<count`, for ``argmaxMatches(_:indices:)``.
    public static func argmaxIndices(_ count: Int, dtype: DType = .float32, device: Device) -> Tensor {
        Tensor(doubles: (0..<count).map(Double.init), shape: [1, count], dtype: dtype, device: device)
    }

    /// The index of the maximum along the last axis of `[N, K]` (first on ties), as `[Int]`.
    public func argmaxRows() -> [Int] {
        precondition(rank == 2, "[argmax] expected a [N, K] tensor, got \(ShapeUtil.describe(shape))")
        return Tensor.argmaxRows(toFloats(), columns: shape[1])
    }

    /// The index of the maximum of each row of `columns` values (first on ties) in `values`,
    /// read back already (as ``read(_:)`` reads several tensors at once).
    public static func argmaxRows<V: BinaryFloatingPoint>(_ values: [V], columns k: Int) -> [Int] {
        precondition(k > 0 && values.count % k == 0, "[argmax] expected rows of \(k) values, got \(values.count) values")
        return (0..<(values.count / k)).map { n in
            var best = 0
            for j in 1..<k where values[n * k + j] > values[n * k + best] { best = j }
            return best
        }
    }
}
