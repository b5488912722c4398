/// Shape and layout ops. Reshape of a contiguous tensor, permute, slice and expand are views
/// (no copy); the rest copy.
extension Tensor {
    /// The same elements in a new shape; one dimension may be -1. A view when contiguous.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let i = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0,
                         "[reshape] expected a shape with \(count) elements, got \(ShapeUtil.describe(newShape))")
            target[i] = count / known
        }
        precondition(ShapeUtil.count(target) == count && target.allSatisfy({ $0 >= 0 }),
                     "[reshape] expected a shape with \(count) elements, got \(ShapeUtil.describe(newShape)) for \(ShapeUtil.describe(shape))")
        if target == shape { return self }
        let base = contiguousData()
        let out = Tensor(storage: base.storage, shape: target, offset: base.offset, dtype: dtype, device: device)
        out.spikeQuantum = spikeQuantum
        let original = shape
        return record("reshape", out, [self]) { g in [g.reshaped(original)] }
    }

    /// Flattens dimensions `from...` into one (`[T, N, C, H, W]` with `from: 2` gives `[T, N, C·H·W]`).
    public func flattened(from start: Int = 0) -> Tensor {
        let s = ShapeUtil.axis(start, rank: rank, op: "flatten")
        return reshaped(Array(shape[..<s]) + [shape[s...].reduce(1, *)])
    }

    /// Inserts a size-1 dimension at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        precondition(a >= 0 && a <= rank, "[unsqueeze] expected an axis in -\(rank + 1)...\(rank), got \(axis)")
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes the size-1 dimension `axis`.
    public func squeezed(_ axis: Int) -> Tensor {
        let a = ShapeUtil.axis(axis, rank: rank, op: "squeeze")
        precondition(shape[a] == 1, "[squeeze] expected size 1 at axis \(axis), got \(shape[a])")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// Reorders the dimensions: result dimension i is this tensor's dimension `order[i]`. A view.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "[permute] expected a permutation of 0..<\(rank), got \(order)")
        let out = Tensor(storage: storage, shape: order.map { shape[$0] }, strides: order.map { strides[$0] },
                         offset: offset, dtype: dtype, device: device)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return record("permute", out, [self]) { g in [g.permuted(inverse)] }
    }

    /// Swaps two dimensions. A view.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(ShapeUtil.axis(a, rank: rank, op: "transpose"), ShapeUtil.axis(b, rank: rank, op: "transpose"))
        return permuted(order)
    }

    /// Elements `range` along `axis`. A view.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = ShapeUtil.axis(axis, rank: rank, op: "slice")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a],
                     "[slice] expected a range within 0..<\(shape[a]) on axis \(a), got \(range)")
        var s = shape
        s[a] = range.count
        let out = Tensor(storage: storage, shape: s, strides: strides, offset: offset + range.lowerBound * strides[a],
                         dtype: dtype, device: device)
        let full = shape
        return record("slice", out, [self]) { g in
            // Pad the gradient with zeros back to the full extent.
            var parts: [Tensor] = []
            if range.lowerBound > 0 {
                var z = full; z[a] = range.lowerBound
                parts.append(Tensor.zeros(z, dtype: g.dtype, device: g.device))
            }
            parts.append(g)
            if range.upperBound < full[a] {
                var z = full; z[a] = full[a] - range.upperBound
                parts.append(Tensor.zeros(z, dtype: g.dtype, device: g.device))
            }
            return [parts.count == 1 ? g : concat(parts, axis: a)]
        }
    }

    /// Index `index` along `axis`, removing that dimension. A view.
    public func selected(axis: Int, _ index: Int) -> Tensor {
        sliced(axis: axis, index..<(index + 1)).squeezed(axis)
    }

    /// A broadcast view of this tensor at `target` (NumPy rules; size-1 dims get stride 0).
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(target.count >= rank, "[expand] expected at least \(rank) dimensions, got \(ShapeUtil.describe(target))")
        let lead = target.count - rank
        var newStrides = [Int](repeating: 0, count: target.count)
        for i in 0..<rank {
            let d = shape[i]
            precondition(d == target[lead + i] || d == 1,
                         "[expand] expected \(ShapeUtil.describe(shape)) to broadcast to \(ShapeUtil.describe(target))")
            newStrides[lead + i] = d == 1 ? 0 : strides[i]
        }
        let out = Tensor(storage: storage, shape: target, strides: newStrides, offset: offset, dtype: dtype, device: device)
        let original = shape
        return record("expand", out, [self]) { g in [g.summed(toShape: original)] }
    }

    /// A contiguous tensor with the same values (a copy only when this one is strided).
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        return record("contiguous", backend.contiguous(self), [self]) { g in [g] }
    }

    /// Tiles the tensor `times[i]` times along each dimension (PyTorch's `repeat`).
    public func repeated(_ times: [Int]) -> Tensor {
        precondition(times.count >= rank && times.allSatisfy({ $0 >= 1 }),
                     "[repeat] expected \(rank) or more positive counts, got \(times)")
        let padded = [Int](repeating: 1, count: times.count - rank) + shape
        // View as [r0, d0, r1, d1, ...] with stride 0 on the r axes, then copy.
        var interleaved: [Int] = [], expandedShape: [Int] = []
        for (r, d) in zip(times, padded) { interleaved += [1, d]; expandedShape += [r, d] }
        let tiled = reshaped(interleaved).expanded(to: expandedShape).contiguous()
        return tiled.reshaped(zip(times, padded).map { $0 * $1 })
    }
}

/// Joins tensors of equal shape but for `axis` along that axis.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "[concat] expected at least one tensor, got none")
    let first = tensors[0]
    let a = ShapeUtil.axis(axis, rank: first.rank, op: "concat")
    for t in tensors {
        var s = t.shape, f = first.shape
        precondition(s.count == f.count, "[concat] expected rank \(f.count), got \(ShapeUtil.describe(s))")
        s[a] = 0; f[a] = 0
        precondition(s == f && t.dtype == first.dtype && t.device == first.device,
                     "[concat] expected shapes equal but for axis \(a), got \(ShapeUtil.describe(first.shape)) and \(ShapeUtil.describe(t.shape))")
    }
    var outShape = first.shape
    outShape[a] = tensors.map { $0.shape[a] }.reduce(0, +)
    let out = Tensor.empty(outShape, dtype: first.dtype, device: first.device)
    // Each part is copied by the device into its slab of the output (a strided view).
    var start = 0
    for t in tensors {
        let slab = Tensor(storage: out.storage, shape: t.shape, strides: out.strides,
                          offset: start * out.strides[a], dtype: out.dtype, device: out.device)
        out.device.memoryBackend.copy(t, into: slab)
        start += t.shape[a]
    }
    let extents = tensors.map { $0.shape[a] }
    return record("concat", out, tensors) { g in
        var lo = 0
        return extents.map { e in
            defer { lo += e }
            return g.sliced(axis: a, lo..<(lo + e)).contiguous()
        }
    }
}

/// Stacks tensors of equal shape along a new dimension `axis`.
public func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
    precondition(!tensors.isEmpty, "[stack] expected at least one tensor, got none")
    let a = axis < 0 ? axis + tensors[0].rank + 1 : axis
    return concat(tensors.map { $0.unsqueezed(a) }, axis: a)
}
