import SNNTensor
import SNNTestSupport
import Testing

@Suite("flat gradient buffer")
struct GradientBufferTests {
    /// A three-layer chain `w2 · tanh-free(w1 · (w0 · x))` with an unused parameter `u`.
    private static func chain() -> (params: [Tensor], loss: () -> Tensor) {
        let r = RandomInputs(seed: 11)
        let (x, w0, w1, w2, u) = (r.normal([3, 4]), r.normal([4, 5]), r.normal([5, 6]), r.normal([6, 2]), r.normal([7]))
        let params = [w0, w1, w2, u]
        return (params, { matmul(matmul(matmul(x, w0).square(), w1).sigmoid(), w2).sum() })
    }

    @Test("views tile the flat buffer in parameter order; backward(into:) writes what gradients() returns, zeros elsewhere")
    func sameGradients() {
        let (params, loss) = Self.chain()
        for p in params { p.requiresGrad = true }
        let buffer = GradientBuffer(parameters: params)
        #expect(buffer.flat.count == params.map(\.count).reduce(0, +))
        var offset = 0
        for (v, p) in zip(buffer.views, params) {
            #expect(v.storage === buffer.flat.storage && v.offset == offset && v.shape == p.shape)
            offset += p.count
        }
        let expected = loss().gradients()
        loss().backward(into: buffer)
        for (leaf, g) in expected {
            guard let i = params.firstIndex(where: { $0 === leaf }) else { continue }
            #expect(buffer.views[i].toDoubles() == g.toDoubles())
        }
        #expect(buffer.views[3].toDoubles() == [Double](repeating: 0, count: 7), "an unused parameter's gradient is zero")
        // A second pass overwrites (not accumulates).
        loss().backward(into: buffer)
        for (leaf, g) in expected {
            guard let i = params.firstIndex(where: { $0 === leaf }) else { continue }
            #expect(buffer.views[i].toDoubles() == g.toDoubles())
        }
    }

    @Test("a bucket is announced as soon as its gradients are done: the last layer's first, every bucket once")
    func bucketsFireDuringBackward() {
        let (params, loss) = Self.chain()
        for p in params { p.requiresGrad = true }
        // One parameter per bucket (1-byte target).
        let buffer = GradientBuffer(parameters: params, bucketBytes: 1)
        #expect(buffer.buckets == [0..<1, 1..<2, 2..<3, 3..<4])
        var fired: [Int] = []
        var firstLayerWrittenWhenLastFired = true
        buffer.onBucketReady = { b in
            if b == 2 { firstLayerWrittenWhenLastFired = buffer.views[0].toDoubles().contains { $0 != 0 } }
            fired.append(b)
        }
        buffer.flat.assign(Tensor.zeros(buffer.flat.shape, dtype: .float64, device: .reference))
        loss().backward(into: buffer)
        // w2 (last layer) completes first, w0 last; the unused u is finished at the end.
        #expect(fired == [2, 1, 0, 3])
        #expect(!firstLayerWrittenWhenLastFired, "bucket 2 fired only after the whole backward pass")
    }

    @Test("buckets group consecutive parameters up to the target size")
    func bucketSizes() {
        let params = [4, 4, 4, 10, 1].map { Tensor.zeros([$0], dtype: .float64, device: .reference) }
        // 8 bytes per element: 32, 32, 32, 80, 8 bytes; target 64 bytes.
        let buffer = GradientBuffer(parameters: params, bucketBytes: 64)
        #expect(buffer.buckets == [0..<2, 2..<4, 4..<5])
    }
}
