import Foundation

/// The slow, obviously correct backend: every op reads its inputs as `Double` in logical
/// row-major order, computes with textbook loops and rounds the result to the output dtype.
///
/// Every other backend is tested against this one, op by op, forward and backward; gradient
/// checks by finite differences run on it in `float64`.
public final class ReferenceBackend: Backend, @unchecked Sendable {
    public static let shared = ReferenceBackend()
    public let device = Device.reference
    public init() {}

    // MARK: - Host helpers

    /// The elements of a (possibly strided) tensor in logical row-major order.
    func read(_ t: Tensor) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(t.count)
        let (base, dtype) = (UnsafeRawPointer(t.storage.data), t.dtype)
        HostMemory.forEachOffset(t) { out.append(dtype.load(base, $0)) }
        return out
    }

    /// A new tensor on `device` holding `values`.
    func make(_ values: [Double], _ shape: [Int], _ dtype: DType, _ device: Device) -> Tensor {
        Tensor(doubles: values, shape: shape, dtype: dtype, device: device)
    }

    // MARK: - Memory (host memory, shared with the CPU backend)

    public func allocate(_ shape: [Int], dtype: DType) throws(DeviceError) -> Tensor {
        try HostMemory.allocate(shape, dtype: dtype, device: device)
    }
    public func fill(_ x: Tensor, with value: Double) { HostMemory.fill(x, with: value) }
    public func copy(_ source: Tensor, into destination: Tensor) { HostMemory.copy(source, into: destination) }
    public func upload(_ bytes: UnsafeRawBufferPointer, into x: Tensor) { HostMemory.upload(bytes, into: x) }
    public func download(_ x: Tensor, into bytes: UnsafeMutableRawBufferPointer) { HostMemory.download(x, into: bytes) }
    public func random(_ distribution: RandomDistribution, into x: Tensor, seed: UInt64, counter: UInt64) {
        HostMemory.random(distribution, into: x, seed: seed, counter: counter)
    }
    /// Nothing is ever queued: every method has finished when it returns.
    public func synchronize() throws(DeviceError) {}

    // MARK: - Copies

    public func contiguous(_ x: Tensor) -> Tensor { make(read(x), x.shape, x.dtype, x.device) }

    public func cast(_ x: Tensor, to dtype: DType) -> Tensor { make(read(x), x.shape, dtype, x.device) }

    // MARK: - Elementwise

    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        let f: (Double) -> Double
        switch op {
        case .negate: f = { -$0 }
        case .exp: f = { Foundation.exp($0) }
        case .log: f = { Foundation.log($0) }
        case .abs: f = { Swift.abs($0) }
        case .sign: f = { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
        case .sigmoid: f = { 1 / (1 + Foundation.exp(-$0)) }
        case .relu: f = { Swift.max($0, 0) }
        case .sqrt: f = { $0.squareRoot() }
        case .square: f = { $0 * $0 }
        case .reciprocal: f = { 1 / $0 }
        }
        return make(read(x).map(f), x.shape, x.dtype, x.device)
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        let f = ReferenceBackend.binaryFunction(op)
        return make(zip(read(a), read(b)).map(f), a.shape, a.dtype, a.device)
    }

    public func binary(_ op: BinaryOp, _ x: Tensor, scalar s: Double, scalarFirst: Bool) -> Tensor {
        let f = ReferenceBackend.binaryFunction(op), r = x.dtype.rounded(s)
        return make(read(x).map { scalarFirst ? f(r, $0) : f($0, r) }, x.shape, x.dtype, x.device)
    }

    /// The scalar function of a binary op (shared with the CPU backend's generic path).
    public static func binaryFunction(_ op: BinaryOp) -> (Double, Double) -> Double {
        switch op {
        case .add: return { $0 + $1 }
        case .subtract: return { $0 - $1 }
        case .multiply: return { $0 * $1 }
        case .divide: return { $0 / $1 }
        case .maximum: return { Swift.max($0, $1) }
        case .minimum: return { Swift.min($0, $1) }
        case .power: return { Foundation.pow($0, $1) }
        case .equal: return { $0 == $1 ? 1 : 0 }
        case .notEqual: return { $0 != $1 ? 1 : 0 }
        case .less: return { $0 < $1 ? 1 : 0 }
        case .lessEqual: return { $0 <= $1 ? 1 : 0 }
        case .greater: return { $0 > $1 ? 1 : 0 }
        case .greaterEqual: return { $0 >= $1 ? 1 : 0 }
        }
    }

    public func clamp(_ x: Tensor, low: Double, high: Double) -> Tensor {
        make(read(x).map { Swift.min(Swift.max($0, low), high) }, x.shape, x.dtype, x.device)
    }

    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let c = read(condition), va = read(a), vb = read(b)
        return make((0..<c.count).map { c[$0] != 0 ? va[$0] : vb[$0] }, a.shape, a.dtype, a.device)
    }

    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int]) -> Tensor {
        let v = read(x)
        var outShape = x.shape
        for a in axes { outShape[a] = 1 }
        let outStrides = ShapeUtil.contiguousStrides(outShape)
        var out = [Double](repeating: op == .sum ? 0 : -.infinity, count: ShapeUtil.count(outShape))
        let inStrides = ShapeUtil.contiguousStrides(x.shape)
        for i in 0..<v.count {
            var o = 0
            for axis in 0..<x.rank where outShape[axis] != 1 {
                o += (i / inStrides[axis]) % x.shape[axis] * outStrides[axis]
            }
            switch op {
            case .sum: out[o] += v[i]
            case .max: if v[i] > out[o] || v[i].isNaN { out[o] = v[i] }
            }
        }
        return make(out, outShape, x.dtype, x.device)
    }

    // MARK: - GEMM

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        let va = read(a), vb = read(b)
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let x = transposeA ? va[p * m + i] : va[i * k + p]
                    let y = transposeB ? vb[j * k + p] : vb[p * n + j]
                    s += x * y
                }
                out[i * n + j] = s
            }
        }
        return make(out, [m, n], a.dtype, a.device)
    }

    // MARK: - One-hot

    public func oneHot(_ labels: Tensor, classes: Int, dtype: DType) -> Tensor {
        let l = read(labels)
        var out = [Double](repeating: 0, count: l.count * classes)
        for (i, y) in l.enumerated() {
            precondition(y >= 0 && Int(y) < classes, "[oneHot] expected labels in 0..<\(classes), got \(Int(y)) at index \(i)")
            out[i * classes + Int(y)] = 1
        }
        return make(out, [l.count, classes], dtype, labels.device)
    }
}
