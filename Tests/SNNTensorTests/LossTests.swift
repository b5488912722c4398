import Foundation
import SNNTensor
import SNNTestSupport
import Testing

@Suite("losses, softmax, one-hot and dropout")
struct LossTests {
    @Test("logSoftmax gradients match finite differences", arguments: [([3, 4], -1), ([3, 4], 0), ([2, 3, 4], 1)])
    func logSoftmaxGradients(shape: [Int], axis: Int) {
        expectGradientsMatchFiniteDifferences([RandomInputs(seed: 81).normal(shape, std: 2)]) {
            logSoftmax($0[0], axis: axis)
        }
    }

    @Test(
        "crossEntropy gradients with respect to logits match finite differences", arguments: [(4, 5), (1, 3), (6, 2)])
    func crossEntropyGradients(n: Int, k: Int) {
        let r = RandomInputs(seed: 82)
        let labels = r.labels(n, classes: k)
        expectGradientsMatchFiniteDifferences([r.normal([n, k], std: 2)]) {
            crossEntropy(logits: $0[0], labels: labels)
        }
    }

    @Test("mse gradients match finite differences, with a broadcast target")
    func mseGradients() {
        let r = RandomInputs(seed: 83)
        expectGradientsMatchFiniteDifferences([r.normal([3, 4]), r.normal([3, 4])]) { mse($0[0], $0[1]) }
        expectGradientsMatchFiniteDifferences([r.normal([3, 4]), r.normal([4])]) { mse($0[0], $0[1]) }
    }

    @Test("forward values by hand: logSoftmax and crossEntropy")
    func values() {
        // softmax([0, ln 2, ln 3]) = [1, 2, 3]/6, so logSoftmax = [ln 1/6, ln 2/6, ln 3/6].
        let x = Tensor(doubles: [0, log(2), log(3)], shape: [1, 3])
        assertClose(logSoftmax(x), [log(1.0 / 6), log(2.0 / 6), log(3.0 / 6)], shape: [1, 3])
        // Shift invariance and stability: [1000, 1000] gives [-ln 2, -ln 2], not NaN.
        assertClose(logSoftmax(Tensor(doubles: [1000, 1000], shape: [1, 2])), [-log(2), -log(2)], shape: [1, 2])
        // Uniform logits over K classes: CE = ln K whatever the label.
        let uniform = Tensor.zeros([2, 3], dtype: .float64, device: .reference)
        assertClose(
            crossEntropy(logits: uniform, labels: Tensor(labels: [0, 2], device: .reference)), [log(3)], shape: [])
        // Logits [0, ln 3] give softmax [1/4, 3/4]: label 1 costs ln(4/3), label 0 costs ln 4; the mean over the batch.
        let logits = Tensor(doubles: [0, log(3), 0, log(3)], shape: [2, 2])
        let ce = crossEntropy(logits: logits, labels: Tensor(labels: [1, 0], device: .reference))
        assertClose(ce, [(log(4.0 / 3) + log(4)) / 2], shape: [])
        // The same with int64 labels.
        let labels64 = Tensor(doubles: [1, 0], shape: [2], dtype: .int64)
        assertClose(crossEntropy(logits: logits, labels: labels64), [(log(4.0 / 3) + log(4)) / 2], shape: [])
        // mse([1, 2, 3], [1, 0, 0]) = (0 + 4 + 9)/3.
        let p = Tensor(doubles: [1, 2, 3], shape: [3])
        let t = Tensor(doubles: [1, 0, 0], shape: [3])
        assertClose(mse(p, t), [13.0 / 3], shape: [])
    }

    @Test("crossEntropy gradient by hand: (softmax - onehot)/N")
    func crossEntropyGradientValues() {
        let logits = Tensor(doubles: [0, log(3), 0, log(3)], shape: [2, 2])
        logits.requiresGrad = true
        crossEntropy(logits: logits, labels: Tensor(labels: [1, 0], device: .reference)).backward()
        // Row 0: ([1/4, 3/4] - [0, 1])/2 = [1/8, -1/8]; row 1: ([1/4, 3/4] - [1, 0])/2 = [-3/8, 3/8].
        assertClose(logits.grad ?? logits, [0.125, -0.125, -0.375, 0.375], shape: [2, 2])
    }

    @Test("oneHot rows")
    func oneHotValues() {
        let y = oneHot(Tensor(labels: [2, 0, 1], device: .reference), classes: 4, dtype: .float64)
        assertClose(y, [0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0], shape: [3, 4])
        #expect(y.dtype == .float64)
        #expect(oneHot(Tensor(labels: [1], device: .reference), classes: 2).dtype == .float32)
    }

    @Test(
        "dropout zeroes about p of the elements, scales the rest by 1/(1-p) and routes gradients the same way",
        arguments: [0.2, 0.5, 0.9])
    func dropoutTraining(p: Double) {
        let n = 20_000
        let x = Tensor.ones([n], dtype: .float64, device: .reference)
        x.requiresGrad = true
        let y = dropout(x, p: p, training: true, generator: RandomGenerator(seed: 84))
        let values = y.toDoubles()
        let kept = values.filter { $0 != 0 }
        #expect(kept.allSatisfy { Swift.abs($0 - 1 / (1 - p)) < 1e-12 }, "kept values are scaled by 1/(1-p)")
        // The kept fraction is Binomial(n, 1-p)/n: standard error √(p(1-p)/n) ≤ 0.0036.
        let keptFraction = Double(kept.count) / Double(n)
        #expect(Swift.abs(keptFraction - (1 - p)) < 0.02, "kept fraction \(keptFraction), expected \(1 - p)")
        // The expectation is preserved (inverted dropout).
        let mean = values.reduce(0, +) / Double(n)
        #expect(Swift.abs(mean - 1) < 0.02 / (1 - p) + 0.02, "mean \(mean)")
        // For x = 1, y = mask/(1-p) and dy/dx is the same mask/(1-p).
        y.sum().backward()
        assertClose(x.grad ?? x, y, .exact)
    }

    @Test("dropout is the identity in eval mode and for p = 0")
    func dropoutIdentity() {
        let x = RandomInputs(seed: 85).normal([3, 4])
        let eval = dropout(x, p: 0.5, training: false, generator: RandomGenerator(seed: 1))
        let zero = dropout(x, p: 0, training: true, generator: RandomGenerator(seed: 1))
        assertClose(eval, x, .exact)
        assertClose(zero, x, .exact)
    }

    @Test("dropout with the same seed drops the same elements")
    func dropoutDeterminism() {
        let x = Tensor.ones([64], dtype: .float64, device: .reference)
        let a = dropout(x, p: 0.5, training: true, generator: RandomGenerator(seed: 9))
        let b = dropout(x, p: 0.5, training: true, generator: RandomGenerator(seed: 9))
        let c = dropout(x, p: 0.5, training: true, generator: RandomGenerator(seed: 10))
        assertClose(a, b, .exact)
        #expect(a.toDoubles() != c.toDoubles())
    }
}
