import SNNTensor

/// Sum and max over axes.
///
/// The reduced and kept axes are grouped into `[R1, K, R2]` (reduce, keep, reduce; any may be
/// 1), which covers reduce-all, leading axes, trailing axes and NCHW's `[0, 2, 3]`; other
/// axis sets are first permuted to `[K, R]` by a copy. Sums add 4096-element blocks in Float
/// SIMD lanes and combine the block results in Double, or accumulate rows in Double, so 10M
/// elements keep a relative error near 1e-7. Which path runs and how blocks are cut depend
/// only on the shape, never on the thread count, so results are reproducible bit for bit.
extension CPUBackend {
    /// Sum or max over `axes` (sorted), keeping them as size-1 dimensions; max propagates NaN.
    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int]) -> Tensor {
        guard computesNatively(op.rawValue, x) else { return reference.reduce(op, x, axes: axes) }
        var outShape = x.shape
        for a in axes { outShape[a] = 1 }
        let out = Tensor.empty(outShape, dtype: .float32, device: .cpu)
        if out.count == 0 { return out }
        switch op {
        case .sum: reduce(x, axes: axes, into: out, SumReduction.self)
        case .max: reduce(x, axes: axes, into: out, MaxReduction.self)
        }
        return out
    }

    private func reduce<R: FloatReduction>(_ x: Tensor, axes: [Int], into out: Tensor, _: R.Type) {
        let po = out.pointer(as: Float.self)
        if x.count == 0 {
            po.update(repeating: R.result(R.identity), count: out.count)
            return
        }
        // Group the non-unit axes into runs of reduced / kept axes.
        var groups: [(size: Int, reduced: Bool)] = []
        for axis in 0..<x.rank where x.shape[axis] != 1 {
            let reduced = axes.contains(axis)
            if let last = groups.last, last.reduced == reduced {
                groups[groups.count - 1].size *= x.shape[axis]
            } else {
                groups.append((x.shape[axis], reduced))
            }
        }
        let src = x.isContiguous ? x : contiguous(x)
        let p = UnsafePointer(src.pointer(as: Float.self))
        let sizes = groups.map(\.size), first = groups.first?.reduced ?? true
        switch (groups.count, first) {
        case (0, _): reduce3(R.self, p, 1, 1, 1, po)
        case (1, true): reduce3(R.self, p, 1, 1, sizes[0], po)
        case (1, false): reduce3(R.self, p, 1, sizes[0], 1, po)
        case (2, true): reduce3(R.self, p, sizes[0], sizes[1], 1, po)
        case (2, false): reduce3(R.self, p, 1, sizes[0], sizes[1], po)
        case (3, true): reduce3(R.self, p, sizes[0], sizes[1], sizes[2], po)
        default:
            // Rare axis sets: move the kept axes first with one copy, then reduce the tail.
            let order = (0..<x.rank).filter { !axes.contains($0) } + axes
            let view = Tensor(storage: src.storage, shape: order.map { src.shape[$0] },
                              strides: order.map { src.strides[$0] }, offset: src.offset, dtype: .float32, device: .cpu)
            let moved = contiguous(view)
            reduce3(R.self, UnsafePointer(moved.pointer(as: Float.self)), 1, out.count, x.count / out.count, po)
        }
    }
}

/// Reduces contiguous `[r1, k, r2]` over its first and last axes into `out[k]`.
private func reduce3<R: FloatReduction>(_: R.Type, _ p: UnsafePointer<Float>, _ r1: Int, _ k: Int, _ r2: Int,
                                        _ out: UnsafeMutablePointer<Float>) {
    if r2 >= 8 || r1 == 1 {
        // Contiguous segments: block-reduce each, combine over r1 in order.
        if k >= Parallel.threadCount {
            Parallel.forEachRange(k, cost: r1 * r2) { ks in
                // r1 outermost, so each thread sweeps one contiguous span of its channels per
                // step instead of hopping between rows; the order per output is unchanged.
                let acc = UnsafeMutablePointer<R.Acc>.allocate(capacity: ks.count)
                defer { acc.deallocate() }
                acc.initialize(repeating: R.identity, count: ks.count)
                for i in 0..<r1 {
                    let row = p + (i * k + ks.lowerBound) * r2
                    for j in 0..<ks.count { acc[j] = R.combine(acc[j], segment(R.self, row + j * r2, r2)) }
                }
                for j in 0..<ks.count { out[ks.lowerBound + j] = R.result(acc[j]) }
            }
        } else {
            for j in 0..<k {
                var acc = R.identity
                for i in 0..<r1 { acc = R.combine(acc, parallelSegment(R.self, p + (i * k + j) * r2, r2)) }
                out[j] = R.result(acc)
            }
        }
        return
    }
    // Short or no inner segments: accumulate whole rows of width k * r2.
    let width = k * r2
    let acc = UnsafeMutablePointer<R.Acc>.allocate(capacity: width)
    defer { acc.deallocate() }
    if width >= 4096 {
        // Wide rows: each thread owns a column range and walks every row in order.
        Parallel.forEachRange(k, cost: r1 * r2) { ks in
            let cols = (ks.lowerBound * r2)..<(ks.upperBound * r2)
            accumulateRows(R.self, p, rows: 0..<r1, width: width, cols: cols, into: acc)
        }
    } else {
        accumulateRowBlocks(R.self, p, rows: r1, width: width, into: acc)
    }
    for j in 0..<k {
        var a = R.identity
        for c in (j * r2)..<((j + 1) * r2) { a = R.combine(a, acc[c]) }
        out[j] = R.result(a)
    }
}

/// Narrow rows: fixed blocks of rows reduce into partial rows (in parallel), which are then
/// combined in block order, so many short rows still use every core.
private func accumulateRowBlocks<R: FloatReduction>(_: R.Type, _ p: UnsafePointer<Float>, rows: Int, width: Int,
                                                    into acc: UnsafeMutablePointer<R.Acc>) {
    let rowsPerBlock = max(1, 65_536 / width), blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
    let partials = UnsafeMutablePointer<R.Acc>.allocate(capacity: blocks * width)
    defer { partials.deallocate() }
    Parallel.forEachRange(blocks, cost: rowsPerBlock * width) { bs in
        for b in bs {
            let range = (b * rowsPerBlock)..<min(rows, (b + 1) * rowsPerBlock)
            accumulateRows(R.self, p, rows: range, width: width, cols: 0..<width, into: partials + b * width)
        }
    }
    acc.update(from: partials, count: width)
    for b in 1..<blocks {
        let q = partials + b * width
        for c in 0..<width { acc[c] = R.combine(acc[c], q[c]) }
    }
}

/// `acc[c] = fold over rows of p[row * width + c]` for `c` in `cols` (initialised here).
@inline(__always)
private func accumulateRows<R: FloatReduction>(_: R.Type, _ p: UnsafePointer<Float>, rows: Range<Int>, width: Int,
                                               cols: Range<Int>, into acc: UnsafeMutablePointer<R.Acc>) {
    let a = acc + cols.lowerBound, n = cols.count
    a.update(repeating: R.identity, count: n)
    for r in rows {
        let row = p + r * width + cols.lowerBound
        for c in 0..<n { a[c] = R.accumulate(a[c], row[c]) }
    }
}

/// The block size of segment reductions: every segment is cut at multiples of it.
private let blockSize = 4096

/// Reduces a contiguous segment block by block, combining block results in order.
@inline(__always)
private func segment<R: FloatReduction>(_: R.Type, _ p: UnsafePointer<Float>, _ n: Int) -> R.Acc {
    var acc = R.identity, start = 0
    while start < n {
        acc = R.combine(acc, R.block(p + start, min(blockSize, n - start)))
        start += blockSize
    }
    return acc
}

/// ``segment(_:_:_:)`` with the blocks spread over threads; the same result bit for bit.
private func parallelSegment<R: FloatReduction>(_: R.Type, _ p: UnsafePointer<Float>, _ n: Int) -> R.Acc {
    let blocks = (n + blockSize - 1) / blockSize
    if blocks * blockSize < Parallel.serialThreshold * 2 { return segment(R.self, p, n) }
    let partials = UnsafeMutablePointer<R.Acc>.allocate(capacity: blocks)
    defer { partials.deallocate() }
    Parallel.forEachRange(blocks, cost: blockSize) { bs in
        for b in bs { partials[b] = R.block(p + b * blockSize, min(blockSize, n - b * blockSize)) }
    }
    var acc = R.identity
    for b in 0..<blocks { acc = R.combine(acc, partials[b]) }
    return acc
}

// MARK: - Reductions

/// The arithmetic of one reduction, split so that the loops above are generic.
private protocol FloatReduction {
    associatedtype Acc
    /// The value of an empty reduction.
    static var identity: Acc { get }
    /// The reduction of `n <= blockSize` contiguous elements.
    static func block(_ p: UnsafePointer<Float>, _ n: Int) -> Acc
    static func combine(_ a: Acc, _ b: Acc) -> Acc
    static func accumulate(_ a: Acc, _ v: Float) -> Acc
    static func result(_ a: Acc) -> Float
}

/// Sums: two 8-float accumulators inside a block (at most 256 additions per lane, then a
/// pairwise fold of the lanes), Double across blocks and for the tail.
private enum SumReduction: FloatReduction {
    static var identity: Double { 0 }

    @inline(__always)
    static func block(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        let raw = UnsafeRawPointer(p)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            a1 += raw.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            i += 16
        }
        if i + 8 <= n {
            a0 += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        var s = 0.0
        if i > 0 {
            let v = a0 + a1, q = v.lowHalf + v.highHalf
            s = Double((q[0] + q[2]) + (q[1] + q[3]))
        }
        while i < n {
            s += Double(p[i])
            i += 1
        }
        return s
    }

    @inline(__always) static func combine(_ a: Double, _ b: Double) -> Double { a + b }
    @inline(__always) static func accumulate(_ a: Double, _ v: Float) -> Double { a + Double(v) }
    @inline(__always) static func result(_ a: Double) -> Float { Float(a) }
}

/// Maxima that propagate NaN like the reference (`v > m || v.isNaN` replaces `m`).
private enum MaxReduction: FloatReduction {
    static var identity: Float { -.infinity }

    @inline(__always)
    static func block(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        let raw = UnsafeRawPointer(p)
        var m = SIMD8<Float>(repeating: -.infinity)
        var nan = SIMDMask<SIMD8<Int32>>()
        var i = 0
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            m.replace(with: v, where: v .> m)
            nan .|= v .!= v
            i += 8
        }
        if any(nan) { return .nan }
        var r = i > 0 ? m.max() : -.infinity
        while i < n {
            r = accumulate(r, p[i])
            i += 1
        }
        return r
    }

    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { accumulate(a, b) }
    @inline(__always) static func accumulate(_ a: Float, _ v: Float) -> Float { v > a || v != v ? v : a }
    @inline(__always) static func result(_ a: Float) -> Float { a }
}
