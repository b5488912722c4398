import Foundation
import SNNTensor

/// Elementwise kernels: unary functions, binary arithmetic and comparisons, clamp, select.
///
/// Each op is a tiny struct whose `callAsFunction` is the scalar math; the loops are generic
/// over it, so the compiler specialises one loop per op and vectorises it. Runs come from
/// ``StridedLayout``: the inner loops are specialised for inner strides 1 and 0 (contiguous
/// and broadcast operands), with a plain strided loop for everything else.
extension CPUBackend {
    /// `op(x)` elementwise (float32 here, other dtypes on the reference backend).
    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        guard computesNatively(op.rawValue, x) else { return reference.unary(op, x) }
        switch op {
        case .negate: return map(x, Negate())
        case .exp: return map(x, Exp())
        case .log: return map(x, Log())
        case .abs: return map(x, Abs())
        case .sign: return map(x, Sign())
        case .sigmoid: return map(x, Sigmoid())
        case .relu: return map(x, ReLU())
        case .sqrt: return map(x, Sqrt())
        case .square: return map(x, Square())
        case .reciprocal: return map(x, Reciprocal())
        }
    }

    /// `op(a, b)` elementwise on equal-shaped (possibly broadcast) views; comparisons give 1 or 0.
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard computesNatively(op.rawValue, a, b) else { return reference.binary(op, a, b) }
        switch op {
        case .add: return zip(a, b, Add())
        case .subtract: return zip(a, b, Subtract())
        case .multiply: return zip(a, b, Multiply())
        case .divide: return zip(a, b, Divide())
        case .maximum: return zip(a, b, Maximum())
        case .minimum: return zip(a, b, Minimum())
        case .power: return zip(a, b, Power())
        case .equal: return zip(a, b, Equal())
        case .notEqual: return zip(a, b, NotEqual())
        case .less: return zip(a, b, Less())
        case .lessEqual: return zip(a, b, LessEqual())
        case .greater: return zip(a, b, Greater())
        case .greaterEqual: return zip(a, b, GreaterEqual())
        }
    }

    /// `op(x, s)` or `op(s, x)` elementwise with an immediate scalar (one loop per op and side).
    public func binary(_ op: BinaryOp, _ x: Tensor, scalar s: Double, scalarFirst: Bool) -> Tensor {
        guard computesNatively(op.rawValue, x) else { return reference.binary(op, x, scalar: s, scalarFirst: scalarFirst) }
        let v = Float(s)
        switch op {
        case .add: return map(x, Add(), v, scalarFirst)
        case .subtract: return map(x, Subtract(), v, scalarFirst)
        case .multiply: return map(x, Multiply(), v, scalarFirst)
        case .divide: return map(x, Divide(), v, scalarFirst)
        case .maximum: return map(x, Maximum(), v, scalarFirst)
        case .minimum: return map(x, Minimum(), v, scalarFirst)
        case .power: return map(x, Power(), v, scalarFirst)
        case .equal: return map(x, Equal(), v, scalarFirst)
        case .notEqual: return map(x, NotEqual(), v, scalarFirst)
        case .less: return map(x, Less(), v, scalarFirst)
        case .lessEqual: return map(x, LessEqual(), v, scalarFirst)
        case .greater: return map(x, Greater(), v, scalarFirst)
        case .greaterEqual: return map(x, GreaterEqual(), v, scalarFirst)
        }
    }

    private func map<F: FloatZip>(_ x: Tensor, _ f: F, _ s: Float, _ scalarFirst: Bool) -> Tensor {
        scalarFirst ? map(x, ScalarFirst(f: f, s: s)) : map(x, ScalarSecond(f: f, s: s))
    }

    /// `min(max(x, low), high)` elementwise.
    public func clamp(_ x: Tensor, low: Double, high: Double) -> Tensor {
        guard computesNatively("clamp", x) else { return reference.clamp(x, low: low, high: high) }
        // Rounding the bounds to Float is monotone, so every comparison and every result
        // equals the reference's Double computation rounded to Float.
        return map(x, Clamp(low: Float(low), high: Float(high)))
    }

    /// `condition != 0 ? a : b` elementwise.
    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard computesNatively("where", condition, a, b) else {
            return reference.select(condition, a, b)
        }
        let out = Tensor.empty(a.shape, dtype: .float32, device: .cpu)
        if out.count == 0 { return out }
        let layout = StridedLayout(a.shape, [condition.strides, a.strides, b.strides])
        let pc = condition.pointer(as: Float.self), pa = a.pointer(as: Float.self), pb = b.pointer(as: Float.self)
        let po = out.pointer(as: Float.self)
        let (sc, sa, sb) = (layout.innerStride(0), layout.innerStride(1), layout.innerStride(2))
        Parallel.forEachRange(layout.count) { range in
            layout.forEachRun(range) { o, oc, oa, ob, n in
                let c = pc + oc, x = pa + oa, y = pb + ob, d = po + o
                if sc == 1 && sa == 1 && sb == 1 {
                    for i in 0..<n { d[i] = c[i] != 0 ? x[i] : y[i] }
                } else {
                    for i in 0..<n { d[i] = c[i * sc] != 0 ? x[i * sa] : y[i * sb] }
                }
            }
        }
        return out
    }

    /// `f(x)` into a new contiguous float32 tensor.
    private func map<F: FloatMap>(_ x: Tensor, _ f: F) -> Tensor {
        let out = Tensor.empty(x.shape, dtype: .float32, device: .cpu)
        if out.count == 0 { return out }
        let layout = StridedLayout(x.shape, [x.strides])
        let px = x.pointer(as: Float.self), po = out.pointer(as: Float.self)
        let sx = layout.innerStride(0)
        let streaming = StreamingStore.enabled(forCount: layout.count)
        Parallel.forEachRange(layout.count) { range in
            withStage(streaming) { stage in
                layout.forEachRun(range) { o, ox, _, _, n in
                    emit(stage, po + o, n) { i, dst, m in mapRun(f, px + ox + i * sx, sx, dst, m) }
                }
            }
        }
        return out
    }

    /// `f(a, b)` into a new contiguous tensor.
    private func zip<F: FloatZip>(_ a: Tensor, _ b: Tensor, _ f: F) -> Tensor {
        let out = Tensor.empty(a.shape, dtype: .float32, device: .cpu)
        if out.count == 0 { return out }
        let layout = StridedLayout(a.shape, [a.strides, b.strides])
        let pa = a.pointer(as: Float.self), pb = b.pointer(as: Float.self), po = out.pointer(as: Float.self)
        let (sa, sb) = (layout.innerStride(0), layout.innerStride(1))
        let streaming = StreamingStore.enabled(forCount: layout.count)
        Parallel.forEachRange(layout.count) { range in
            withStage(streaming) { stage in
                layout.forEachRun(range) { o, oa, ob, _, n in
                    emit(stage, po + o, n) { i, dst, m in
                        zipRun(f, pa + oa + i * sa, sa, pb + ob + i * sb, sb, dst, m)
                    }
                }
            }
        }
        return out
    }
}

// MARK: - Inner loops

/// Calls `body` with a 4 KiB staging buffer when `streaming` (else `nil`), then fences the
/// streaming stores; one buffer serves every run of a worker's range.
@inline(__always)
private func withStage(_ streaming: Bool, _ body: (UnsafeMutablePointer<Float>?) -> Void) {
    if !streaming {
        body(nil)
        return
    }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: stageCount) { buffer in
        body(buffer.baseAddress)
    }
    StreamingStore.fence()
}

/// Floats per staging buffer.
private let stageCount = 1024

/// Has `body(start, destination, count)` produce `out[0..<n]`: directly, or (for outputs
/// larger than the caches) chunk by chunk into the L1-resident `stage`, which is then
/// streamed out; that saves the read-for-ownership of every output line.
@inline(__always)
private func emit(_ stage: UnsafeMutablePointer<Float>?, _ out: UnsafeMutablePointer<Float>, _ n: Int,
                  _ body: (Int, UnsafeMutablePointer<Float>, Int) -> Void) {
    guard let stage else {
        body(0, out, n)
        return
    }
    var i = 0
    while i < n {
        let m = min(stageCount, n - i)
        body(i, stage, m)
        StreamingStore.copy(stage, to: out + i, count: m)
        i += m
    }
}

/// One run of a unary map; strides 1 and 0 get their own (vectorisable) loops.
@inline(__always)
private func mapRun<F: FloatMap>(_ f: F, _ x: UnsafePointer<Float>, _ sx: Int, _ out: UnsafeMutablePointer<Float>,
                                 _ n: Int) {
    switch sx {
    case 1: for i in 0..<n { out[i] = f(x[i]) }
    case 0: out.update(repeating: f(x[0]), count: n)
    default: for i in 0..<n { out[i] = f(x[i * sx]) }
    }
}

/// One run of a binary map; the contiguous and row/column-broadcast shapes get their own loops.
@inline(__always)
private func zipRun<F: FloatZip>(_ f: F, _ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int,
                                 _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    switch (sa, sb) {
    case (1, 1): for i in 0..<n { out[i] = f(a[i], b[i]) }
    case (1, 0):
        let y = b[0]
        for i in 0..<n { out[i] = f(a[i], y) }
    case (0, 1):
        let x = a[0]
        for i in 0..<n { out[i] = f(x, b[i]) }
    default: for i in 0..<n { out[i] = f(a[i * sa], b[i * sb]) }
    }
}

// MARK: - Scalar math

/// A scalar function the elementwise loops are specialised over.
protocol FloatMap {
    func callAsFunction(_ x: Float) -> Float
}

/// A scalar function of two arguments the elementwise loops are specialised over.
protocol FloatZip {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

/// `f(s, x)` for an immediate `s`.
struct ScalarFirst<F: FloatZip>: FloatMap {
    let f: F, s: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { f(s, x) }
}

/// `f(x, s)` for an immediate `s`.
struct ScalarSecond<F: FloatZip>: FloatMap {
    let f: F, s: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { f(x, s) }
}

// Coefficients of e^r = 1 + r q(r) on [-ln2/2, ln2/2], q of degree 4 fitted by relative
// least squares on Chebyshev nodes: 1.7e-7 worst relative error in float arithmetic (the
// degree-6 Taylor polynomial reaches 2.4e-7 with two more operations).
private let c0: Float = 1, c1: Float = 0.999_999_52, c2: Float = 0.499_991_42
private let c3: Float = 0.166_681_14, c4: Float = 0.041_898_753, c5: Float = 0.008_261_532_5

/// `e^x` for `x <= 0`, to about 2 ulp, written with operations that vectorise (no libm call).
///
/// Cody-Waite reduction `x = k ln2 + r`, `|r| <= ln2/2`, a degree-5 near-minimax polynomial
/// for `e^r` and `2^k` assembled in the exponent bits. The scalar and vector versions round
/// identically.
/// Inputs below -87 give about 1.6e-38 instead of a denormal; NaN stays NaN. The sigmoid
/// surrogate and `sigmoid` only need `e^-|x|`, which is why positive inputs are not handled.
@inline(__always)
func expNonPositive(_ x: Float) -> Float {
    let magic: Float = 12_582_912  // 1.5 * 2^23: adding it rounds to an integer kept in the mantissa
    let y = -87 >= x ? -87 : x  // max(x, -87), written so that NaN passes through
    let t = y * 1.442_695_04 + magic
    let k = t - magic
    let r = (y - k * 0.693_145_752) - k * 1.428_606_77e-6
    let p = c0 + r * (c1 + r * (c2 + r * (c3 + r * (c4 + r * c5))))
    // t's bits minus magic's bits is k (both lie in [2^23, 2^24), where one ulp is 1).
    let scale = Float(bitPattern: UInt32(truncatingIfNeeded: (t.bitPattern &- magic.bitPattern &+ 127) &<< 23))
    return p * scale
}

/// ``expNonPositive(_:)`` lane by lane, for the hand-vectorised surrogate.
@inline(__always)
func expNonPositive(_ x: Lanes) -> Lanes {
    let magic: Float = 12_582_912
    let y = x.replacing(with: -87, where: x .< -87)  // NaN compares false and passes through
    // The same steps as the scalar version, split up for the type checker.
    let t: Lanes = y * Float(1.442_695_04) + magic
    let k: Lanes = t - magic
    let r: Lanes = (y - k * Float(0.693_145_752)) - k * Float(1.428_606_77e-6)
    var p = Lanes(repeating: c5)
    p = p * r + c4
    p = p * r + c3
    p = p * r + c2
    p = p * r + c1
    p = p * r + c0
    let bits: LaneBits = (unsafeBitCast(t, to: LaneBits.self) &- magic.bitPattern &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: Lanes.self)
}

private struct Negate: FloatMap { func callAsFunction(_ x: Float) -> Float { -x } }
private struct Exp: FloatMap { func callAsFunction(_ x: Float) -> Float { expf(x) } }
private struct Log: FloatMap { func callAsFunction(_ x: Float) -> Float { logf(x) } }
private struct Abs: FloatMap { func callAsFunction(_ x: Float) -> Float { Swift.abs(x) } }
private struct Sign: FloatMap { func callAsFunction(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) } }
private struct Sqrt: FloatMap { func callAsFunction(_ x: Float) -> Float { x.squareRoot() } }
private struct Square: FloatMap { func callAsFunction(_ x: Float) -> Float { x * x } }
private struct Reciprocal: FloatMap { func callAsFunction(_ x: Float) -> Float { 1 / x } }

/// `max(x, 0)` with the reference's NaN behaviour (`Swift.max(NaN, 0)` is NaN).
private struct ReLU: FloatMap { func callAsFunction(_ x: Float) -> Float { 0 >= x ? 0 : x } }

/// `1 / (1 + e^-x)` from `e^-|x|`, which never overflows and keeps tiny results accurate.
private struct Sigmoid: FloatMap {
    func callAsFunction(_ x: Float) -> Float {
        let e = expNonPositive(-Swift.abs(x))
        return (x >= 0 ? 1 : e) / (1 + e)
    }
}

/// `min(max(x, low), high)` spelled like `Swift.min`/`Swift.max`, so NaN passes through.
private struct Clamp: FloatMap {
    let low: Float, high: Float
    func callAsFunction(_ x: Float) -> Float {
        let m = low >= x ? low : x
        return high < m ? high : m
    }
}

private struct Add: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
private struct Subtract: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b } }
private struct Multiply: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b } }
private struct Divide: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b } }
private struct Power: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { powf(a, b) } }

/// `Swift.max(a, b)`, i.e. `b >= a ? b : a` (NaN handling included).
private struct Maximum: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { b >= a ? b : a } }

/// `Swift.min(a, b)`, i.e. `b < a ? b : a`.
private struct Minimum: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { b < a ? b : a } }

// Comparisons return 1 or 0 in the input dtype; one struct each so each loop vectorises.
private struct Equal: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a == b ? 1 : 0 } }
private struct NotEqual: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a != b ? 1 : 0 } }
private struct Less: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a < b ? 1 : 0 } }
private struct LessEqual: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a <= b ? 1 : 0 } }
private struct Greater: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a > b ? 1 : 0 } }
private struct GreaterEqual: FloatZip { func callAsFunction(_ a: Float, _ b: Float) -> Float { a >= b ? 1 : 0 } }
