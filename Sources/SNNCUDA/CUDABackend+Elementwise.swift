import CCUDA
import SNNTensor

/// The `SnnLayout` of `elementwise.cu`: an output shape and up to three operands' strides over
/// it, with size-1 axes dropped and axes every operand walks contiguously merged, so the
/// kernels divide as little as they can. `nil` when more than 8 axes remain. Offsets are zero:
/// each operand's address is that of its first element.
struct Layout {
    static let maxRank = 8
    let shape: [Int]
    let strides: [[Int]]

    /// Operand slots 0...2 (`nil`: unused); each tensor has `shape`, read through its strides.
    init?(_ shape: [Int], _ operands: [Tensor?]) {
        self.init(shape, strides: operands.map { $0?.strides })
    }

    /// Operand slots 0...2 given by their strides over `shape`.
    init?(_ shape: [Int], strides operands: [[Int]?]) {
        precondition(operands.count == 3, "[Layout] expected three operand slots")
        var dims: [(size: Int, strides: [Int])] = []
        for axis in shape.indices where shape[axis] != 1 {
            let strides = operands.map { $0?[axis] ?? 0 }
            if let last = dims.last, (0..<3).allSatisfy({ last.strides[$0] == strides[$0] * shape[axis] }) {
                dims[dims.count - 1] = (last.size * shape[axis], strides)
            } else {
                dims.append((shape[axis], strides))
            }
        }
        guard dims.count <= Layout.maxRank else { return nil }
        self.shape = dims.map(\.size)
        strides = (0..<3).map { slot in dims.map { $0.strides[slot] } }
    }

    /// The struct's bytes: `int rank` (padded to 8), `long long shape[8]`,
    /// `long long strides[3][8]`, `long long offsets[3]` (zero).
    var argument: KernelArgument {
        var words = [Int64](repeating: 0, count: 1 + Layout.maxRank * 4 + 3)
        words[0] = Int64(shape.count)   // little-endian: the int in the first 4 bytes
        for (d, size) in shape.enumerated() { words[1 + d] = Int64(size) }
        for slot in 0..<3 {
            for (d, stride) in strides[slot].enumerated() { words[1 + Layout.maxRank * (1 + slot) + d] = Int64(stride) }
        }
        return .bytes(words.withUnsafeBytes { Array($0) })
    }
}

/// Elementwise ops, reductions, copies and casts (`elementwise.cu`).
extension CUDABackend {
    /// The kernel that converts `from` to `to` element by element, if there is one.
    func castKernel(_ from: DType, _ to: DType) -> String? {
        switch (from, to) {
        case (.float32, .uint8): return "snn_cast_f32_u8"
        case (.uint8, .float32): return "snn_cast_u8_f32"
        case (.float32, .bfloat16): return "snn_cast_f32_bf16"
        case (.float32, .float16): return "snn_cast_f32_f16"
        case (.bfloat16, .float32): return "snn_cast_bf16_f32"
        case (.float16, .float32): return "snn_cast_f16_f32"
        default: return nil
        }
    }

    public func contiguous(_ x: Tensor) -> Tensor { cast(x, to: x.dtype) }

    public func cast(_ x: Tensor, to dtype: DType) -> Tensor {
        let out = output(x.shape, dtype)
        copy(x, into: out)
        return out
    }

    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        guard x.dtype == .float32, let layout = Layout(x.shape, [nil, x, nil]) else {
            return onHost([x]) { $0.unary(op, $1[0]) }
        }
        let out = output(x.shape)
        launch("snn_unary", elements: x.count,
               [.int32(Int32(UnaryOp.allCases.firstIndex(of: op)!)), arg(x), arg(out), .int64(Int64(x.count)), layout.argument])
        return out
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "[binary] expected equal shapes")
        guard a.dtype == .float32, b.dtype == .float32, let layout = Layout(a.shape, [nil, a, b]) else {
            return onHost([a, b]) { $0.binary(op, $1[0], $1[1]) }
        }
        let out = output(a.shape)
        launch("snn_binary", elements: a.count,
               [.int32(opCode(op)), arg(a), arg(b), arg(out), .int64(Int64(a.count)), layout.argument])
        return out
    }

    public func binary(_ op: BinaryOp, _ x: Tensor, scalar s: Double, scalarFirst: Bool) -> Tensor {
        // A count (batch norm's training batches) moves on: int64 plus or minus a whole number.
        if x.dtype == .int64, x.isContiguous, op == .add || (op == .subtract && !scalarFirst), s.rounded() == s, abs(s) < 0x1p53 {
            let out = output(x.shape, .int64)
            if x.count > 0 {
                launch("snn_add_i64", elements: x.count, [arg(x), .int64(Int64(op == .add ? s : -s)), arg(out), .int64(Int64(x.count))])
            }
            return out
        }
        guard x.dtype == .float32, let layout = Layout(x.shape, [nil, x, nil]) else {
            return onHost([x]) { $0.binary(op, $1[0], scalar: s, scalarFirst: scalarFirst) }
        }
        let out = output(x.shape)
        launch("snn_binary_scalar", elements: x.count,
               [.int32(opCode(op)), arg(x), .float(Float(s)), .int32(scalarFirst ? 1 : 0), arg(out), .int64(Int64(x.count)),
                layout.argument])
        return out
    }

    private func opCode(_ op: BinaryOp) -> Int32 { Int32(BinaryOp.allCases.firstIndex(of: op)!) }

    public func clamp(_ x: Tensor, low: Double, high: Double) -> Tensor {
        guard x.dtype == .float32, let layout = Layout(x.shape, [nil, x, nil]) else {
            return onHost([x]) { $0.clamp($1[0], low: low, high: high) }
        }
        let out = output(x.shape)
        launch("snn_clamp", elements: x.count,
               [arg(x), .float(Float(low)), .float(Float(high)), arg(out), .int64(Int64(x.count)), layout.argument])
        return out
    }

    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard [condition, a, b].allSatisfy({ $0.dtype == .float32 }), let layout = Layout(a.shape, [condition, a, b]) else {
            return onHost([condition, a, b]) { $0.select($1[0], $1[1], $1[2]) }
        }
        let out = output(a.shape)
        launch("snn_select", elements: a.count, [arg(condition), arg(a), arg(b), arg(out), .int64(Int64(a.count)), layout.argument])
        return out
    }

    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int]) -> Tensor {
        var shape = x.shape
        for a in axes { shape[a] = 1 }
        let inner = axes.map { x.shape[$0] }.reduce(1, *)
        guard x.dtype == .float32,
              let outer = Layout(shape, strides: [nil, x.strides, nil]),
              let reduced = Layout(axes.map { x.shape[$0] }, strides: [nil, axes.map { x.strides[$0] }, nil]) else {
            return onHost([x]) { $0.reduce(op, $1[0], axes: axes) }
        }
        let out = output(shape)
        let code = Int32(op == .sum ? 0 : 1)
        if inner >= Self.blockReductionSize {
            // Long reductions (a firing rate over a whole activation): blocks of `reductionChunk`
            // inputs each, over the whole GPU, then each output's partials added in order. One
            // block per output would keep one multiprocessor busy for a whole mean.
            let chunk = Self.reductionChunk
            let splits = (inner + chunk - 1) / chunk
            let partials = splits > 1 ? output([out.count * splits], .float64) : nil
            launch("snn_reduce_blocks", blocks: out.count * splits,
                   [.int32(code), arg(x), arg(out), arg(partials), .int64(Int64(inner)), .int64(Int64(chunk)),
                    .int32(Int32(splits)), outer.argument, reduced.argument])
            if splits > 1 {
                launch("snn_reduce_partials", blocks: out.count, [.int32(code), arg(partials), arg(out), .int32(Int32(splits))])
            }
        } else {
            launch("snn_reduce", elements: out.count,
                   [.int32(code), arg(x), arg(out), .int64(Int64(out.count)), .int64(Int64(inner)), outer.argument,
                    reduced.argument])
        }
        return out
    }

    /// Reductions over at least this many inputs per output take blocks of threads.
    static let blockReductionSize = 512

    /// The inputs each block of a long reduction takes: 32 a thread. Fixed, so that a sum is the
    /// same on every GPU.
    static let reductionChunk = 8192

    public func oneHot(_ labels: Tensor, classes: Int, dtype: DType) -> Tensor {
        guard dtype == .float32 else { return onHost([labels]) { $0.oneHot($1[0], classes: classes, dtype: dtype) } }
        let codes = [.int32, .int64].contains(labels.dtype) && labels.isContiguous
            ? labels : deviceCopy(of: hostCopy(of: labels, dtype: .int64))
        let out = output(labels.shape + [classes])
        // No wait here: a bad label is recorded on the GPU and stops the process at the next read.
        launch("snn_one_hot", elements: out.count,
               [arg(codes), .int32(codes.dtype == .int64 ? 1 : 0), arg(out), .int64(Int64(labels.count)), .int32(Int32(classes)),
                arg(labelCheck.pending(on: self))])
        return out
    }
}
