import CSNNKernels
import SNNTensor
#if arch(x86_64) && os(Linux)
import _Builtin_intrinsics.intel
import Synchronization
#endif

/// Strided views of one shape walked in the row-major order of a contiguous output.
///
/// Dimensions of size 1 are dropped and neighbours that every input steps through evenly are
/// merged, so a contiguous tensor, a sliced row block or a broadcast scalar becomes one long
/// run, and a `[C]` vector broadcast over NCHW becomes `[C, H*W]` with inner stride 0. Kernels
/// then see long runs with inner strides 1 (contiguous), 0 (broadcast) or other (a permuted
/// view), and only the odometer over the outer dimensions is generic.
struct StridedLayout {
    /// The collapsed shape, rank >= 1.
    let shape: [Int]
    /// Strides of up to three inputs over `shape`; absent inputs have stride 0.
    let strides: [[Int]]

    /// Collapses `shape` for inputs with the given (uncollapsed) strides.
    init(_ shape: [Int], _ inputStrides: [[Int]]) {
        var dims: [Int] = []
        var st: [[Int]] = Array(repeating: [], count: 3)
        for axis in shape.indices where shape[axis] != 1 {
            let s = (0..<3).map { $0 < inputStrides.count ? inputStrides[$0][axis] : 0 }
            // Merge into the previous dimension when each input steps evenly across both.
            if let last = dims.last, (0..<3).allSatisfy({ st[$0][st[$0].count - 1] == s[$0] * shape[axis] }) {
                dims[dims.count - 1] = last * shape[axis]
                for k in 0..<3 { st[k][st[k].count - 1] = s[k] }
            } else {
                dims.append(shape[axis])
                for k in 0..<3 { st[k].append(s[k]) }
            }
        }
        if dims.isEmpty {
            dims = [1]
            st = [[0], [0], [0]]
        }
        self.shape = dims
        self.strides = st
    }

    /// The number of elements.
    var count: Int { shape.reduce(1, *) }

    /// The innermost stride of input `k`.
    func innerStride(_ k: Int) -> Int { strides[k][shape.count - 1] }

    /// Calls `body(outIndex, offset0, offset1, offset2, length)` for each run along the
    /// innermost dimension that covers part of `range` (output positions, row-major).
    func forEachRun(_ range: Range<Int>, _ body: (Int, Int, Int, Int, Int) -> Void) {
        let rank = shape.count, inner = shape[rank - 1]
        let s0 = strides[0], s1 = strides[1], s2 = strides[2]
        // Decompose the start position into a multi-index and per-input offsets.
        var index = [Int](repeating: 0, count: rank)
        var (o0, o1, o2) = (0, 0, 0)
        var rest = range.lowerBound
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let i = rest % shape[axis]
            rest /= shape[axis]
            index[axis] = i
            o0 += i * s0[axis]; o1 += i * s1[axis]; o2 += i * s2[axis]
        }
        var position = range.lowerBound
        while position < range.upperBound {
            let n = min(inner - index[rank - 1], range.upperBound - position)
            body(position, o0, o1, o2, n)
            position += n
            // Step the innermost index by n, then carry like an odometer.
            index[rank - 1] += n
            o0 += n * s0[rank - 1]; o1 += n * s1[rank - 1]; o2 += n * s2[rank - 1]
            var axis = rank - 1
            while axis > 0 && index[axis] == shape[axis] {
                o0 -= shape[axis] * s0[axis]; o1 -= shape[axis] * s1[axis]; o2 -= shape[axis] * s2[axis]
                index[axis] = 0
                axis -= 1
                index[axis] += 1
                o0 += s0[axis]; o1 += s1[axis]; o2 += s2[axis]
            }
        }
    }
}

/// Memory, copies and dtype conversions.
extension CPUBackend {
    // MARK: - Memory (host memory, like the reference device's)

    public func allocate(_ shape: [Int], dtype: DType) throws(DeviceError) -> Tensor {
        try HostMemory.allocate(shape, dtype: dtype, device: .cpu)
    }

    public func fill(_ x: Tensor, with value: Double) {
        guard x.dtype == .float32, x.isContiguous else { return HostMemory.fill(x, with: value) }
        let p = x.pointer(as: Float.self), v = Float(value)
        Parallel.forEachRange(x.count) { range in (p + range.lowerBound).update(repeating: v, count: range.count) }
    }

    /// Same-dtype copies move words across cores (either side may be strided); a dtype change
    /// converts first.
    public func copy(_ source: Tensor, into destination: Tensor) {
        precondition(source.shape == destination.shape,
                     "[copy] expected equal shapes, got \(ShapeUtil.describe(source.shape)) and \(ShapeUtil.describe(destination.shape))")
        let src = source.dtype == destination.dtype ? source : cast(source, to: destination.dtype)
        switch src.dtype.size {
        case 1: copyStrided(src, destination, UInt8.self)
        case 2: copyStrided(src, destination, UInt16.self)
        case 4: copyStrided(src, destination, UInt32.self)
        default: copyStrided(src, destination, UInt64.self)
        }
    }

    public func upload(_ bytes: UnsafeRawBufferPointer, into x: Tensor) { HostMemory.upload(bytes, into: x) }
    public func download(_ x: Tensor, into bytes: UnsafeMutableRawBufferPointer) { HostMemory.download(x, into: bytes) }
    public func random(_ distribution: RandomDistribution, into x: Tensor, seed: UInt64, counter: UInt64) {
        HostMemory.random(distribution, into: x, seed: seed, counter: counter)
    }
    /// Every method has finished when it returns (oneDNN runs synchronously on CPU streams).
    public func synchronize() throws(DeviceError) {}

    // MARK: - Copies

    /// A contiguous copy of any view, for every dtype (a copy moves bits, so it needs no
    /// dtype-specific code beyond the element size).
    public func contiguous(_ x: Tensor) -> Tensor {
        let out = Tensor.empty(x.shape, dtype: x.dtype, device: .cpu)
        switch x.dtype.size {
        case 1: copyStrided(x, out, UInt8.self)
        case 2: copyStrided(x, out, UInt16.self)
        case 4: copyStrided(x, out, UInt32.self)
        default: copyStrided(x, out, UInt64.self)
        }
        return out
    }

    /// A copy converted to `dtype`: direct between float32, float64, int32, int64 and uint8
    /// (through `Double`, exactly like the reference; to integers truncated and saturated), the
    /// reference backend otherwise.
    public func cast(_ x: Tensor, to dtype: DType) -> Tensor {
        if dtype == x.dtype { return contiguous(x) }
        switch x.dtype {
        case .float32: return cast(x, from: Float.self, to: dtype)
        case .float64: return cast(x, from: Double.self, to: dtype)
        case .int32: return cast(x, from: Int32.self, to: dtype)
        case .int64: return cast(x, from: Int64.self, to: dtype)
        case .uint8: return cast(x, from: UInt8.self, to: dtype)
        case .float16, .bfloat16: return reference.cast(x, to: dtype)
        }
    }

    private func cast<S: CastableElement>(_ x: Tensor, from: S.Type, to dtype: DType) -> Tensor {
        if S.self == Float.self && dtype == .uint8 && x.isContiguous { return spikeCodes(x) }
        switch dtype {
        case .float32: return convert(x, S.self, Float.self)
        case .float64: return convert(x, S.self, Double.self)
        case .int32: return convert(x, S.self, Int32.self)
        case .int64: return convert(x, S.self, Int64.self)
        case .uint8: return convert(x, S.self, UInt8.self)
        case .float16, .bfloat16: return reference.cast(x, to: dtype)
        }
    }

    private func convert<S: CastableElement, D: CastableElement>(_ x: Tensor, _: S.Type, _: D.Type) -> Tensor {
        let out = Tensor.empty(x.shape, dtype: D.castDType, device: .cpu)
        if x.count == 0 { return out }
        let layout = StridedLayout(x.shape, [x.strides])
        let src = x.pointer(as: S.self), dst = out.pointer(as: D.self)
        let step = layout.innerStride(0)
        Parallel.forEachRange(layout.count) { range in
            layout.forEachRun(range) { o, a, _, _, n in
                let s = src + a, d = dst + o
                if step == 1 {
                    for i in 0..<n { d[i] = D(castFrom: s[i].castDouble) }
                } else {
                    for i in 0..<n { d[i] = D(castFrom: s[i * step].castDouble) }
                }
            }
        }
        return out
    }

    /// A contiguous float32 tensor as uint8 (the saved spike codes' cast, on every spiking layer's
    /// output): the C loop, which vectorises, over ranges in parallel.
    private func spikeCodes(_ x: Tensor) -> Tensor {
        let out = Tensor.empty(x.shape, dtype: .uint8, device: .cpu)
        let src = UnsafePointer(x.pointer(as: Float.self)), dst = out.pointer(as: UInt8.self)
        Parallel.forEachRange(x.count) { range in
            snn_saturate_f32_u8(src + range.lowerBound, dst + range.lowerBound, range.count)
        }
        return withExtendedLifetime(x) { out }
    }

    /// `[N]` int32 or int64 labels to `[N, classes]` one-hot rows (float32 or float64); other
    /// dtypes go to the reference backend.
    public func oneHot(_ labels: Tensor, classes: Int, dtype: DType) -> Tensor {
        switch (labels.dtype, dtype) {
        case (.int32, .float32): return oneHot(labels, Int32.self, classes, Float.self)
        case (.int64, .float32): return oneHot(labels, Int64.self, classes, Float.self)
        case (.int32, .float64): return oneHot(labels, Int32.self, classes, Double.self)
        case (.int64, .float64): return oneHot(labels, Int64.self, classes, Double.self)
        default: return reference.oneHot(labels, classes: classes, dtype: dtype)
        }
    }

    private func oneHot<L: BinaryInteger, D: CastableElement>(_ labels: Tensor, _: L.Type, _ classes: Int,
                                                                _: D.Type) -> Tensor {
        let n = labels.count
        let out = Tensor.zeros([n, classes], dtype: D.castDType, device: .cpu)
        let src = labels.storage.data.assumingMemoryBound(to: L.self) + labels.offset
        let step = labels.rank == 0 ? 0 : labels.strides[labels.rank - 1]
        let dst = out.pointer(as: D.self)
        for i in 0..<n {
            let y = Int(src[i * step])
            precondition(y >= 0 && y < classes, "[oneHot] expected labels in 0..<\(classes), got \(y) at index \(i)")
            dst[i * classes + y] = D(castFrom: 1)
        }
        return out
    }

    /// Copies `x` into `out` (same shape, either may be strided) moving elements as opaque words
    /// of type `W`.
    private func copyStrided<W>(_ x: Tensor, _ out: Tensor, _: W.Type) {
        if x.count == 0 { return }
        let layout = StridedLayout(x.shape, [out.strides, x.strides])
        let src = UnsafePointer(x.storage.data.assumingMemoryBound(to: W.self) + x.offset)
        let dst = out.storage.data.assumingMemoryBound(to: W.self) + out.offset
        let (outStep, step) = (layout.innerStride(0), layout.innerStride(1))
        Parallel.forEachRange(layout.count) { range in
            layout.forEachRun(range) { _, o, a, _, n in
                let s = src + a, d = dst + o
                switch (outStep, step) {
                case (1, 1): d.update(from: s, count: n)
                case (1, 0): d.update(repeating: s[0], count: n)
                default: for i in 0..<n { d[i * outStep] = s[i * step] }
                }
            }
        }
    }
}

/// The element types `cast` converts between directly.
protocol CastableElement {
    static var castDType: DType { get }
    var castDouble: Double { get }
    init(castFrom value: Double)
}

extension Float: CastableElement {
    static var castDType: DType { .float32 }
    var castDouble: Double { Double(self) }
    init(castFrom value: Double) { self.init(value) }
}

extension Double: CastableElement {
    static var castDType: DType { .float64 }
    var castDouble: Double { self }
    init(castFrom value: Double) { self = value }
}

extension Int32: CastableElement {
    static var castDType: DType { .int32 }
    var castDouble: Double { Double(self) }
    init(castFrom value: Double) { self.init(truncatingSaturating: value) }
}

extension Int64: CastableElement {
    static var castDType: DType { .int64 }
    var castDouble: Double { Double(self) }
    init(castFrom value: Double) { self.init(truncatingSaturating: value) }
}

extension UInt8: CastableElement {
    static var castDType: DType { .uint8 }
    var castDouble: Double { Double(self) }
    init(castFrom value: Double) { self.init(truncatingSaturating: value) }
}

/// The float vector the hand-vectorised kernels (the neuron scan) compute on: one SSE
/// register, since the package builds for baseline x86-64 (SSE2, no AVX or FMA); wider
/// vectors only spilled registers in the sigmoid surrogate.
typealias Lanes = SIMD4<Float>
/// The same lanes as bits.
typealias LaneBits = SIMD4<UInt32>
/// The number of lanes.
let laneWidth = 4

/// Non-temporal (cache-bypassing) stores for outputs far larger than the caches.
///
/// A plain store first reads the destination line into the cache (read-for-ownership), so a
/// kernel that writes two streams and reads one moves 20 bytes per element instead of 12;
/// streaming stores skip that read and do not evict the inputs. A worker calls ``fence()``
/// after its last streaming store. Only x86-64 Linux streams; elsewhere stores are plain.
enum StreamingStore {
    /// Outputs of at least this many bytes are streamed; smaller ones stay cached for the
    /// next op, which usually reads them at once. Tests lower it to cover the streaming path
    /// (both paths give identical results, so changing it concurrently is harmless).
    nonisolated(unsafe) static var minimumBytes = 8 << 20

    /// Whether an output of `count` floats should be streamed on this machine.
    static func enabled(forCount count: Int) -> Bool {
        #if arch(x86_64) && os(Linux)
        return count * 4 >= minimumBytes
        #else
        return false
        #endif
    }

    /// Whether streaming stores may start at `p` (they need 16-byte alignment).
    @inline(__always)
    static func aligned(_ p: UnsafeMutablePointer<Float>) -> Bool { Int(bitPattern: p) & 15 == 0 }

    /// Stores one vector at `p`: streaming when `streaming` (then `p` must be 16-byte
    /// aligned), else a plain unaligned store.
    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, streaming: Bool) {
        #if arch(x86_64) && os(Linux)
        if streaming {
            _mm_stream_ps(p, v)
            return
        }
        #endif
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    /// Copies `count` floats from an L1-resident staging buffer to `dst` with streaming
    /// stores, for kernels whose inner loops are left to the auto-vectoriser.
    @inline(__always)
    static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i < n && !aligned(dst + i) {
            dst[i] = src[i]
            i += 1
        }
        while i + laneWidth <= n {
            store(src.loadLanes(i), dst + i, streaming: true)
            i += laneWidth
        }
        while i < n {
            dst[i] = src[i]
            i += 1
        }
    }

    /// Orders this thread's streaming stores before its later stores (a locked instruction
    /// drains the write-combining buffers on x86), so the joining thread sees every result.
    @inline(__always)
    static func fence() {
        #if arch(x86_64) && os(Linux)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        #endif
    }
}

extension UnsafePointer where Pointee == Float {
    /// One vector from `self + i` (any alignment).
    @inline(__always)
    func loadLanes(_ i: Int) -> Lanes { UnsafeRawPointer(self + i).loadUnaligned(as: Lanes.self) }

    /// The `count < laneWidth` floats from `self + i`, the other lanes zero (for tails).
    @inline(__always)
    func loadLanes(_ i: Int, count: Int) -> Lanes {
        var v = Lanes()
        for j in 0..<count { v[j] = self[i + j] }
        return v
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// Writes the first `count` lanes of `v` here.
    @inline(__always)
    func storeLanes(_ v: Lanes, count: Int) {
        for j in 0..<count { self[j] = v[j] }
    }
}
