import SNNTensor
import SNNTestSupport
import Testing

@Suite("autograd tape")
struct AutogradTests {
    private func leaf(_ values: [Double], _ shape: [Int]) -> Tensor {
        let t = Tensor(doubles: values, shape: shape)
        t.requiresGrad = true
        return t
    }

    @Test("two backward() calls accumulate: .grad doubles")
    func accumulation() {
        let x = leaf([1, -2, 3], [3])
        // L = Σ x² → dL/dx = 2x.
        x.square().sum().backward()
        assertClose(x.grad ?? x, [2, -4, 6], shape: [3])
        x.square().sum().backward()
        assertClose(x.grad ?? x, [4, -8, 12], shape: [3])
    }

    @Test("gradients() returns the leaves' gradients without touching .grad")
    func gradientsLeavesGradAlone() {
        let x = leaf([1, 2], [2])
        let w = leaf([3, 4], [2])
        let leaves = (x * w).sum().gradients()
        #expect(x.grad == nil && w.grad == nil)
        #expect(leaves.count == 2)
        for (t, g) in leaves {
            // d/dx Σ x·w = w and d/dw = x.
            assertClose(g, t === x ? [3, 4] : [1, 2], shape: [2])
        }
    }

    @Test("a tensor used twice gets the sum of both paths")
    func diamond() {
        // L = Σ (x·x + 3x) → dL/dx = 2x + 3.
        let x = leaf([1, 2], [2])
        (x * x + x * 3).sum().backward()
        assertClose(x.grad ?? x, [5, 7], shape: [2])
    }

    @Test("an explicit seed weights the output gradient")
    func seeded() {
        let x = leaf([1, 2, 3], [3])
        (x * 2).backward(Tensor(doubles: [1, 10, 100], shape: [3]))
        assertClose(x.grad ?? x, [2, 20, 200], shape: [3])
    }

    @Test("withoutGradients records nothing and restores recording")
    func withoutGradientsRecordsNothing() {
        let x = leaf([1, 2], [2])
        let y = withoutGradients { (x * x).exp().sum() }
        #expect(!y.requiresGrad)
        #expect(GradMode.isEnabled)
        // Nested: the inner block does not re-enable recording for the outer one.
        let z = withoutGradients { () -> Tensor in
            _ = withoutGradients { x + x }
            return x * 3
        }
        #expect(!z.requiresGrad)
        #expect((x * 3).requiresGrad)
    }

    @Test("detached() and constants stop the gradient")
    func detached() {
        let x = leaf([2], [1])
        // L = x·stop(x) → dL/dx = stop(x) = 2, not 2x = 4.
        (x * x.detached()).sum().backward()
        assertClose(x.grad ?? x, [2], shape: [1])
        #expect(!Tensor(doubles: [1], shape: [1]).exp().requiresGrad)
    }

    @Test("to(device) passes the gradient back to the original device")
    func deviceMove() {
        let x = leaf([1, 2], [2])
        // Moving to the same device is the identity; the tape is kept either way.
        let y = x.to(.reference)
        (y * y).sum().backward()
        assertClose(x.grad ?? x, [2, 4], shape: [2])
        #expect(x.grad?.device == .reference)
    }

    @Test("valueAndGradients: the value, and one gradient per key (zeros for unused parameters)")
    func valueAndGradientsKeys() {
        let w = Tensor(doubles: [1, 2], shape: [2])
        let b = Tensor(doubles: [0.5], shape: [1])
        let unused = Tensor(doubles: [7, 7, 7], shape: [3])
        let x = Tensor(doubles: [3, 4], shape: [2])
        let params = ["layers.0.weight": w, "layers.0.bias": b, "head.weight": unused]
        let (value, grads) = valueAndGradients(of: params) { (w * x).sum() + b.sum() }
        // L = 1·3 + 2·4 + 0.5 = 11.5; dL/dw = x, dL/db = 1, dL/dunused = 0.
        assertClose(value, [11.5], shape: [])
        #expect(Set(grads.keys) == Set(params.keys))
        assertClose(grads["layers.0.weight"] ?? w, [3, 4], shape: [2])
        assertClose(grads["layers.0.bias"] ?? b, [1], shape: [1])
        assertClose(grads["head.weight"] ?? unused, [0, 0, 0], shape: [3])
        #expect(w.grad == nil, ".grad is left untouched")
    }

    @Test("valueAndGradients of a value that does not depend on the parameters gives zeros")
    func valueAndGradientsConstant() {
        let w = Tensor(doubles: [1, 2], shape: [2])
        let (value, grads) = valueAndGradients(of: ["w": w]) { Tensor(doubles: [5], shape: []) }
        assertClose(value, [5], shape: [])
        assertClose(grads["w"] ?? w, [0, 0], shape: [2])
    }

    @Test("gradients of a deep chain (1000 ops) do not overflow the stack")
    func deepGraph() {
        let x = leaf([1], [1])
        var y = x
        for _ in 0..<1000 { y = y * 1.001 }
        y.sum().backward()
        // d/dx (1.001^1000 x) = 1.001^1000.
        assertClose(x.grad ?? x, [repeatedProduct(1.001, 1000)], shape: [1], Tolerance(rtol: 1e-12, atol: 0))
    }
}

/// x^n by repeated multiplication, the same rounding sequence as the chain of ops.
private func repeatedProduct(_ x: Double, _ n: Int) -> Double { (0..<n).reduce(1.0) { acc, _ in acc * x } }
