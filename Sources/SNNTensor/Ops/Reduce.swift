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

    /// The index of the maximum along the last axis of `[N, K]` (first on ties), as `[Int]`.
    public func argmaxRows() -> [Int] {
        precondition(rank == 2, "[argmax] expected a [N, K] tensor, got \(ShapeUtil.describe(shape))")
        let v = toFloats(), k = shape[1]
        return (0..<shape[0]).map { n in
            var best = 0
            for j in 1..<k where v[n * k + j] > v[n * k + best] { best = j }
            return best
        }
    }
}
