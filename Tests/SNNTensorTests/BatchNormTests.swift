import SNNTensor
import SNNTestSupport
import Testing

@Suite("batch norm")
struct BatchNormTests {
    static let shapes: [[Int]] = [[4, 3], [2, 3, 2, 2], [3, 2, 4]]

    @Test("training-mode gradients (x, gamma, beta) match finite differences", arguments: shapes)
    func trainingGradients(shape: [Int]) {
        let r = RandomInputs(seed: 71)
        let c = shape[1]
        let inputs = [r.normal(shape, mean: 0.5, std: 2), r.uniform([c], low: 0.5, high: 1.5), r.normal([c])]
        expectGradientsMatchFiniteDifferences(inputs) { t in
            // Fresh running statistics per call: training mode updates them in place.
            batchNorm(
                t[0], gamma: t[1], beta: t[2], runningMean: Tensor.zeros([c], dtype: .float64, device: .reference),
                runningVar: Tensor.ones([c], dtype: .float64, device: .reference), training: true)
        }
    }

    @Test("eval-mode gradients (x, gamma, beta) match finite differences", arguments: shapes)
    func evalGradients(shape: [Int]) {
        let r = RandomInputs(seed: 72)
        let c = shape[1]
        let runningMean = r.normal([c])
        let runningVar = r.uniform([c], low: 0.5, high: 2)
        let inputs = [r.normal(shape), r.uniform([c], low: 0.5, high: 1.5), r.normal([c])]
        expectGradientsMatchFiniteDifferences(inputs) { t in
            batchNorm(t[0], gamma: t[1], beta: t[2], runningMean: runningMean, runningVar: runningVar, training: false)
        }
    }

    @Test("training normalises with batch statistics and updates running stats with the unbiased variance")
    func runningStatistics() {
        // x is [N = 4, C = 2]: channel 0 = [1, 2, 3, 6], channel 1 = [0, 0, 4, 4].
        // Channel 0: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, biased var 14/4 = 3.5,
        //            unbiased var 14/3. Channel 1: mean 2, squared deviations 16, biased 4, unbiased 16/3.
        let x = Tensor(doubles: [1, 0, 2, 0, 3, 4, 6, 4], shape: [4, 2])
        let gamma = Tensor(doubles: [1, 2], shape: [2])
        let beta = Tensor(doubles: [0, 0.5], shape: [2])
        let runningMean = Tensor(doubles: [0, 1], shape: [2])
        let runningVar = Tensor(doubles: [1, 1], shape: [2])
        let y = batchNorm(
            x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
            training: true, momentum: 0.1, epsilon: 0)
        // y = (x - mean)/√(biased var)·γ + β: channel 0 (x - 3)/√3.5; channel 1 (x - 2)/2·2 + 0.5.
        let s = 3.5.squareRoot()
        assertClose(y, [-2 / s, -1.5, -1 / s, -1.5, 0, 2.5, 3 / s, 2.5], shape: [4, 2], .float64)
        // running = 0.9·running + 0.1·stat: mean [0.3, 0.9 + 0.2], var [0.9 + 1.4/3, 0.9 + 1.6/3].
        assertClose(runningMean, [0.3, 1.1], shape: [2], .float64)
        assertClose(runningVar, [0.9 + 1.4 / 3, 0.9 + 1.6 / 3], shape: [2], .float64)
    }

    @Test("momentum weights the new statistics; a second step compounds")
    func momentum() {
        // One channel, x = [2, 4] then [0, 2]: means 3 and 1, unbiased variances 2 and 2.
        let runningMean = Tensor(doubles: [0], shape: [1])
        let runningVar = Tensor(doubles: [1], shape: [1])
        let one = Tensor(doubles: [1], shape: [1])
        let zero = Tensor(doubles: [0], shape: [1])
        for values in [[2.0, 4], [0, 2]] {
            _ = batchNorm(
                Tensor(doubles: values, shape: [2, 1]), gamma: one, beta: zero, runningMean: runningMean,
                runningVar: runningVar, training: true, momentum: 0.25)
        }
        // mean: 0 → 0.75·0 + 0.25·3 = 0.75 → 0.75·0.75 + 0.25·1 = 0.8125.
        // var:  1 → 0.75 + 0.5 = 1.25 → 0.9375 + 0.5 = 1.4375.
        assertClose(runningMean, [0.8125], shape: [1], .float64)
        assertClose(runningVar, [1.4375], shape: [1], .float64)
    }

    @Test("eval mode uses the running statistics and leaves them unchanged")
    func evalValues() {
        // y = (x - 1)/√4 · 2 + 0.5: x = 3 → 2.5, x = -1 → -1.5.
        let runningMean = Tensor(doubles: [1], shape: [1])
        let runningVar = Tensor(doubles: [4], shape: [1])
        let y = batchNorm(
            Tensor(doubles: [3, -1], shape: [2, 1]), gamma: Tensor(doubles: [2], shape: [1]),
            beta: Tensor(doubles: [0.5], shape: [1]), runningMean: runningMean, runningVar: runningVar,
            training: false, epsilon: 0)
        assertClose(y, [2.5, -1.5], shape: [2, 1])
        assertClose(runningMean, [1], shape: [1])
        assertClose(runningVar, [4], shape: [1])
    }

    @Test("training output has zero mean and unit (biased) variance per channel before the affine map")
    func normalised() {
        let r = RandomInputs(seed: 73)
        let x = r.normal([4, 3, 2, 2], mean: 2, std: 3)
        let y = batchNorm(
            x, gamma: Tensor.ones([3], dtype: .float64, device: .reference),
            beta: Tensor.zeros([3], dtype: .float64, device: .reference),
            runningMean: Tensor.zeros([3], dtype: .float64, device: .reference),
            runningVar: Tensor.ones([3], dtype: .float64, device: .reference), training: true, epsilon: 0)
        assertClose(y.mean(axes: [0, 2, 3]), [0, 0, 0], shape: [3], Tolerance(rtol: 0, atol: 1e-12))
        assertClose(y.square().mean(axes: [0, 2, 3]), [1, 1, 1], shape: [3], Tolerance(rtol: 0, atol: 1e-12))
    }
}
