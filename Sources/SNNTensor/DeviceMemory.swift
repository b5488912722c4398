import Foundation

/// A failure of a device: out of memory, or an error a queued op met.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    /// The device could not hold a new tensor of `bytes` bytes while tensors held `held`.
    case outOfMemory(device: Device, bytes: Int, held: Int)
    /// An op failed on the device (a library call, a kernel launch).
    case failure(device: Device, op: String, message: String)

    public var description: String {
        switch self {
        case let .outOfMemory(device, bytes, held):
            return "out of memory on the \(device) device: could not allocate \(DeviceError.size(bytes)) "
                + "with \(DeviceError.size(held)) already held by tensors; try a smaller --batch_size"
        case let .failure(device, op, message):
            return "[\(op)] failed on the \(device) device: \(message)"
        }
    }

    /// `bytes` in the largest binary unit that keeps it at or above 1.
    static func size(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}

/// How a device failure inside an op (which cannot throw) ends the process.
public enum DeviceFailure {
    /// Runs before the process exits: a program registers what must reach the disk (a log line,
    /// a summary); files already written are never touched, since every write is atomic.
    nonisolated(unsafe) public static var beforeExit: [@Sendable (DeviceError) -> Void] = []

    /// Prints `error: <error> (<context>)` on stderr, runs ``beforeExit`` and exits with status 1.
    public static func report(_ error: DeviceError, context: String) -> Never {
        FileHandle.standardError.write(Data("error: \(error) (\(context))\n".utf8))
        for hook in beforeExit { hook(error) }
        exit(1)
    }
}

/// What a backend keeps from a fused op's forward pass for its backward pass.
///
/// A backend's backward method takes it back with ``from(_:op:)``.
///
/// The front end holds it without looking inside: only the backend that made it reads it, so
/// the CPU can keep float32 potentials or bytes and a GPU another form.
public protocol SavedState: AnyObject, Sendable {
    /// The bytes it holds on its device.
    var byteCount: Int { get }
}

extension SavedState {
    /// `saved` as this type, trapping with a message when another backend made it.
    public static func from(_ saved: any SavedState, op: String) -> Self {
        guard let s = saved as? Self else {
            preconditionFailure("[\(op)] expected state saved as \(Self.self), got \(type(of: saved))")
        }
        return s
    }
}

/// A random distribution a backend draws from (see ``Backend/random(_:into:seed:counter:)``).
public enum RandomDistribution: Hashable, Sendable {
    /// Uniform in `[low, high)`: `low + (high − low)·u` with `u = (w >> 8)·2⁻²⁴` from one word.
    case uniform(low: Double, high: Double)
    /// Normal: `mean + std·z`, `z` from Box–Muller on two words (the first word's `u` taken in
    /// `(0, 1]` so the logarithm is finite).
    case normal(mean: Double, std: Double)
    /// 1 with probability `p` (`u < p`, one word), else 0.
    case bernoulli(probability: Double)

    /// Philox words each element consumes.
    public var wordsPerElement: Int {
        if case .normal = self { return 2 }
        return 1
    }
}

// MARK: - Host memory

/// The memory methods of a backend whose device keeps its data in host memory (the reference
/// and CPU devices): the implementations both share, written once.
public enum HostMemory {
    /// A new host tensor on `device` (contents undefined).
    public static func allocate(_ shape: [Int], dtype: DType, device: Device) throws(DeviceError) -> Tensor {
        var count = dtype.size, overflow = false
        for d in shape where !overflow { (count, overflow) = count.multipliedReportingOverflow(by: d) }
        guard !overflow, shape.allSatisfy({ $0 >= 0 }) else {
            throw .failure(device: device, op: "allocate", message: "a tensor of shape \(ShapeUtil.describe(shape)) is too large to address")
        }
        return Tensor(storage: try Storage(hostByteCount: count, device: device), shape: shape, dtype: dtype, device: device)
    }

    /// Sets every element of `x` to `value` rounded to its dtype.
    public static func fill(_ x: Tensor, with value: Double) {
        let n = x.count
        if n == 0 { return }
        guard x.isContiguous else {
            forEachOffset(x) { x.dtype.store(value, x.storage.data, $0) }
            return
        }
        let p = x.storage.data + x.offset * x.dtype.size
        switch x.dtype {
        case .float32: p.assumingMemoryBound(to: Float.self).update(repeating: Float(value), count: n)
        case .float64: p.assumingMemoryBound(to: Double.self).update(repeating: value, count: n)
        default:
            x.dtype.store(value, p, 0)
            let size = x.dtype.size
            for i in 1..<n { (p + i * size).copyMemory(from: p, byteCount: size) }
        }
    }

    /// Copies `source` into `destination` (equal shapes, any strides), converting the dtype.
    public static func copy(_ source: Tensor, into destination: Tensor) {
        precondition(source.shape == destination.shape,
                     "[copy] expected equal shapes, got \(ShapeUtil.describe(source.shape)) and \(ShapeUtil.describe(destination.shape))")
        if source.count == 0 { return }
        if source.dtype == destination.dtype && source.isContiguous && destination.isContiguous {
            let size = source.dtype.size
            (destination.storage.data + destination.offset * size)
                .copyMemory(from: source.storage.data + source.offset * size, byteCount: source.count * size)
            return
        }
        let values = ReferenceBackend.shared.read(source)
        var i = 0
        forEachOffset(destination) { destination.dtype.store(values[i], destination.storage.data, $0); i += 1 }
    }

    /// Copies host bytes into the contiguous `x`.
    public static func upload(_ bytes: UnsafeRawBufferPointer, into x: Tensor) {
        precondition(x.isContiguous && bytes.count == x.count * x.dtype.size,
                     "[upload] expected \(x.count * x.dtype.size) bytes for a contiguous \(ShapeUtil.describe(x.shape)) \(x.dtype), got \(bytes.count)")
        if let base = bytes.baseAddress { (x.storage.data + x.offset * x.dtype.size).copyMemory(from: base, byteCount: bytes.count) }
    }

    /// Copies the contiguous `x` into host bytes.
    public static func download(_ x: Tensor, into bytes: UnsafeMutableRawBufferPointer) {
        precondition(x.isContiguous && bytes.count == x.count * x.dtype.size,
                     "[download] expected room for \(x.count * x.dtype.size) bytes, got \(bytes.count)")
        if let base = bytes.baseAddress { base.copyMemory(from: x.storage.data + x.offset * x.dtype.size, byteCount: bytes.count) }
    }

    /// Fills the contiguous floating-point `x` with draws (see ``RandomDistribution``); large
    /// fills are generated concurrently with the same result.
    public static func random(_ distribution: RandomDistribution, into x: Tensor, seed: UInt64, counter: UInt64) {
        precondition(x.isContiguous && x.dtype.isFloatingPoint,
                     "[random] expected a contiguous floating-point tensor, got \(x.dtype) \(ShapeUtil.describe(x.shape))")
        let n = x.count
        if n == 0 { return }
        let base = x.storage.data + x.offset * x.dtype.size, dtype = x.dtype
        // Rounded through Float first, as the generator's float draws always were.
        let put: (Int, Float) -> Void = dtype == .float32
            ? { i, v in base.assumingMemoryBound(to: Float.self)[i] = v }
            : { i, v in dtype.store(Double(v), base, i) }
        switch distribution {
        case let .uniform(low, high):
            RandomGenerator.words(seed: seed, start: counter, count: n) { i, w in
                put(i, Float(low + (high - low) * Double(Float(w >> 8) * 0x1p-24)))
            }
        case let .bernoulli(p):
            RandomGenerator.words(seed: seed, start: counter, count: n) { i, w in
                put(i, Double(Float(w >> 8) * 0x1p-24) < p ? 1 : 0)
            }
        case let .normal(mean, std):
            // Word 2i is u1 and word 2i+1 is u2 of element i; both land in one 4-word block, so
            // u1 is always seen first.
            var u1 = [Double](repeating: 0, count: n)
            u1.withUnsafeMutableBufferPointer { first in
                RandomGenerator.words(seed: seed, start: counter, count: 2 * n) { i, w in
                    if i % 2 == 0 {
                        first[i / 2] = (Double(w >> 8) + 1) * 0x1p-24
                    } else {
                        let u2 = Double(w >> 8) * 0x1p-24
                        let z = Float((-2 * Foundation.log(first[i / 2])).squareRoot() * Foundation.cos(2 * Double.pi * u2))
                        put(i / 2, Float(mean + std * Double(z)))
                    }
                }
            }
        }
    }

    /// Calls `body` with the storage element offset of every element of `x` in row-major order.
    static func forEachOffset(_ x: Tensor, _ body: (Int) -> Void) {
        let n = x.count
        if n == 0 { return }
        var index = [Int](repeating: 0, count: x.rank)
        var position = x.offset
        for _ in 0..<n {
            body(position)
            var axis = x.rank - 1
            while axis >= 0 {
                index[axis] += 1
                position += x.strides[axis]
                if index[axis] < x.shape[axis] { break }
                position -= x.strides[axis] * x.shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}

// MARK: - Saved state of the fused neuron ops on host backends

/// The LIF scan's saved state on host backends: the charged potentials `h_t` and the neuron.
public final class SavedPotentials: SavedState, @unchecked Sendable {
    public let potentials: Tensor
    public let neuron: NeuronParameters
    public init(_ potentials: Tensor, _ neuron: NeuronParameters) {
        self.potentials = potentials
        self.neuron = neuron
    }
    public var byteCount: Int { potentials.count * potentials.dtype.size }
}

/// The fused batch norm + neuron's saved state on host backends: the pre-normalisation input,
/// γ, β, the `[C]` batch statistics and the residual (as bytes when it holds spikes); the
/// backward pass recomputes everything else.
public final class SavedBatchNormNeuron: SavedState, @unchecked Sendable {
    public let input: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor
    public let epsilon: Double, steps: Int, neuron: NeuronParameters
    public let residual: SavedActivation?

    public init(input: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                residual: Tensor?, steps: Int, neuron: NeuronParameters) {
        (self.input, self.gamma, self.beta, self.mean, self.variance) = (input, gamma, beta, mean, variance)
        (self.epsilon, self.steps, self.neuron) = (epsilon, steps, neuron)
        self.residual = residual.map(SavedActivation.init)
    }

    public var byteCount: Int {
        [input, gamma, beta, mean, variance].map { $0.count * $0.dtype.size }.reduce(0, +) + (residual?.byteCount ?? 0)
    }
}
