/// An n-dimensional array on a device, with optional reverse-mode autograd.
///
/// A tensor is a view: `shape` and `strides` (in elements) over a shared ``Storage``,
/// starting at `offset`. Ops return new tensors and never modify their inputs. When any input
/// requires a gradient and gradient recording is on (see ``GradMode``), the result records a
/// tape node with exactly the tensors its gradient rule needs.
///
/// Sequences are time-major, `[T, N, ...]`; images are NCHW.
public final class Tensor: @unchecked Sendable {
    /// The memory the tensor views; moved only by ``Tensor/flattenParameters(_:)``.
    public private(set) var storage: Storage
    public let shape: [Int]
    public let strides: [Int]
    public private(set) var offset: Int
    public let dtype: DType
    public let device: Device

    /// Whether gradients flow to this tensor. Set it on leaves (parameters, inputs).
    public var requiresGrad: Bool
    /// The accumulated gradient of a leaf after ``backward()``; `nil` until then.
    public var grad: Tensor?
    /// The tape node that produced this tensor, when it was recorded.
    package var node: GradNode?
    /// Set when every element is known to be `k·q` for an integer `0 ≤ k ≤ 1/q`, with `q` a
    /// power of two: 1 for spikes, 1/4 for spikes average-pooled over 2×2 windows. Ops that
    /// save such a tensor for their backward pass keep it as one byte per element.
    public internal(set) var spikeQuantum: Double?

    /// Wraps a storage. Backends and views use this; users build tensors with the factories.
    public init(storage: Storage, shape: [Int], strides: [Int]? = nil, offset: Int = 0, dtype: DType, device: Device) {
        self.storage = storage
        self.shape = shape
        self.strides = strides ?? ShapeUtil.contiguousStrides(shape)
        self.offset = offset
        self.dtype = dtype
        self.device = device
        self.requiresGrad = false
    }

    /// The number of dimensions.
    public var rank: Int { shape.count }
    /// The number of elements.
    public var count: Int { ShapeUtil.count(shape) }
    /// The backend that computes on this tensor.
    public var backend: any Backend { device.backend }

    /// Whether the elements are laid out in row-major order without gaps.
    public var isContiguous: Bool {
        var expected = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// A pointer to the first element, typed, for backends and data loaders on host-memory
    /// devices (front-end ops never use it). The caller must respect `strides`.
    public func pointer<T>(as type: T.Type) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.size == dtype.size, "[pointer] expected a \(dtype) element type, got \(T.self)")
        precondition(device.isHostMemory, "[pointer] the \(device) device's memory is not host memory: copy the tensor to the host first")
        return storage.data.assumingMemoryBound(to: T.self) + offset
    }

    /// A copy on `device` (`self` when it is already there); the gradient flows back to this
    /// device. The copy is made by whichever of the two backends can reach the other's memory.
    public func to(_ device: Device) -> Tensor {
        if device == self.device { return self }
        let moved = Tensor.empty(shape, dtype: dtype, device: device)
        Device.copyingBackend(from: self.device, to: device).copy(self, into: moved)
        moved.spikeQuantum = spikeQuantum
        let home = self.device
        return recordUnary(moved, self) { g in [g.to(home)] }
    }

    /// Makes this tensor a view of `offset` in `storage` (same shape, contiguous); the caller
    /// has copied the values there.
    func rebind(to storage: Storage, offset: Int) {
        precondition(node == nil, "[rebind] expected a leaf tensor")
        self.storage = storage
        self.offset = offset
    }

    /// A tensor that shares the data but records no history.
    public func detached() -> Tensor {
        let out = Tensor(storage: storage, shape: shape, strides: strides, offset: offset, dtype: dtype, device: device)
        out.spikeQuantum = spikeQuantum  // a property of the values, which are the same
        return out
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = count <= 16 ? toDoubles().map { "\($0)" }.joined(separator: ", ") : "\(count) values"
        return "Tensor(\(ShapeUtil.describe(shape)), \(dtype), \(device): \(values))"
    }
}
