/// One persistent, contiguous gradient buffer for a list of parameters, in their order, with a
/// view per parameter and buckets of consecutive parameters.
///
/// ``Tensor/backward(into:)`` writes each parameter's gradient into its view as soon as the
/// backward pass has finished it, and calls ``onBucketReady`` the moment every parameter of a
/// bucket is done, so an all-reduce of that bucket can start while the backward pass goes on.
/// Reductions over all gradients (the clipping norm) run over ``flat`` in one call whose
/// summation order depends only on the size: bit-reproducible run to run and process to process.
public final class GradientBuffer {
    /// Every gradient, parameter after parameter: `[P]`.
    public let flat: Tensor
    /// Parameter `i`'s gradient: a contiguous view into ``flat`` of the parameter's shape.
    public let views: [Tensor]
    /// Consecutive parameter index ranges of about `bucketBytes` each (a parameter larger than
    /// that is a bucket of its own).
    public let buckets: [Range<Int>]
    /// Called with a bucket's index when all its gradients are written (in completion order).
    public var onBucketReady: ((Int) -> Void)?

    private let index: [ObjectIdentifier: Int]
    private let bucketOf: [Int]

    /// - Parameters:
    ///   - parameters: the tensors to hold gradients for, of one dtype and device.
    ///   - bucketBytes: the target size of a bucket (25 MiB, as PyTorch's DDP).
    public init(parameters: [Tensor], bucketBytes: Int = 25 << 20) {
        let dtype = parameters.first?.dtype ?? .float32, device = parameters.first?.device ?? .cpu
        precondition(parameters.allSatisfy { $0.dtype == dtype && $0.device == device },
                     "[GradientBuffer] expected parameters of one dtype and device")
        (flat, views) = Tensor.flatZeros(like: parameters)
        var buckets: [Range<Int>] = [], bucketStart = 0, bucketBytesSoFar = 0
        for (i, p) in parameters.enumerated() {
            bucketBytesSoFar += p.count * dtype.size
            if bucketBytesSoFar >= bucketBytes || i == parameters.count - 1 {
                buckets.append(bucketStart..<(i + 1))
                (bucketStart, bucketBytesSoFar) = (i + 1, 0)
            }
        }
        self.buckets = buckets
        var index: [ObjectIdentifier: Int] = [:]
        for (i, p) in parameters.enumerated() { index[ObjectIdentifier(p)] = i }
        self.index = index
        var bucketOf = [Int](repeating: 0, count: parameters.count)
        for (b, r) in buckets.enumerated() { for i in r { bucketOf[i] = b } }
        self.bucketOf = bucketOf
    }

    /// The position of `parameter` in the buffer, if it has one.
    func position(of parameter: Tensor) -> Int? { index[ObjectIdentifier(parameter)] }

    /// Tracks one backward pass: which gradients are written and which buckets are complete.
    final class Pass {
        let buffer: GradientBuffer
        private var written: [Bool]
        private var missing: [Int]

        init(_ buffer: GradientBuffer) {
            self.buffer = buffer
            written = [Bool](repeating: false, count: buffer.views.count)
            missing = buffer.buckets.map(\.count)
        }

        /// Stores parameter `i`'s final gradient and fires its bucket when it completes it.
        func write(_ i: Int, _ gradient: Tensor) {
            precondition(!written[i], "[backward] gradient of parameter \(i) written twice")
            buffer.views[i].assign(gradient)
            complete(i)
        }

        /// Zeroes the gradients no path reached and fires the remaining buckets.
        func finish() {
            for i in written.indices where !written[i] {
                buffer.views[i].assign(buffer.views[i].like(0).expanded(to: buffer.views[i].shape))
                complete(i)
            }
        }

        private func complete(_ i: Int) {
            written[i] = true
            let b = buffer.bucketOf[i]
            missing[b] -= 1
            if missing[b] == 0 { buffer.onBucketReady?(b) }
        }
    }
}

extension Tensor {
    /// One zeroed contiguous `[P]` tensor for `tensors` (of one dtype and device), and a
    /// contiguous view into it of each tensor's shape, in order: flat buffers for gradients
    /// and optimiser state.
    public static func flatZeros(like tensors: [Tensor]) -> (flat: Tensor, views: [Tensor]) {
        let dtype = tensors.first?.dtype ?? .float32, device = tensors.first?.device ?? .cpu
        let flat = Tensor.zeros([tensors.map(\.count).reduce(0, +)], dtype: dtype, device: device)
        var views: [Tensor] = [], offset = 0
        for t in tensors {
            views.append(Tensor(storage: flat.storage, shape: t.shape, offset: offset, dtype: dtype, device: device))
            offset += t.count
        }
        return (flat, views)
    }

    /// Moves `parameters` (contiguous leaves of one dtype and device) into one flat buffer in
    /// their order and returns it: each parameter keeps its identity and values and becomes a
    /// view into the buffer, so an optimiser updates every parameter with one pass over flat
    /// buffers (parameters, gradients, state), laid out alike. Views made of a parameter before
    /// the move keep the old memory: call this before any are made (the trainer does it when
    /// built).
    public static func flattenParameters(_ parameters: [Tensor]) -> Tensor {
        precondition(parameters.allSatisfy { $0.isContiguous && $0.node == nil },
                     "[flattenParameters] expected contiguous leaf tensors")
        let (flat, views) = flatZeros(like: parameters)
        for (p, view) in zip(parameters, views) {
            view.assign(p)
            p.rebind(to: flat.storage, offset: view.offset)
        }
        return flat
    }

    /// Back-propagates from this one-element loss and writes the gradient of every parameter of
    /// `buffer` into its view (zeros for parameters the loss does not depend on), firing
    /// `buffer.onBucketReady` as buckets complete. Leaves outside the buffer get nothing; `.grad`
    /// is not touched. The graph is consumed as by ``gradients(seed:retainGraph:)``.
    public func backward(into buffer: GradientBuffer) {
        let pass = GradientBuffer.Pass(buffer)
        if requiresGrad {
            traverse(seed: nil, retainGraph: false) { leaf, gradient in
                if let i = buffer.position(of: leaf) { pass.write(i, gradient) }
            }
        }
        withoutGradients { pass.finish() }
    }
}
