import Foundation
import SNNCPU
import SNNTensor
@testable import SNNTraining
import Testing

/// Each loss against values computed by hand (in Double, from the formulas of TRT-SPEC.md §3).
@Suite("losses")
struct LossTests {
    // o: [T=2, N=2, K=3] on the reference backend in float64.
    let values: [Double] = [0.5, -1.0, 2.0, 1.5, 0.0, -0.5,
                            -0.2, 0.3, 1.1, 0.7, 0.7, -1.3]
    var outputs: Tensor { Tensor(doubles: values, shape: [2, 2, 3]) }
    let labels = Tensor(doubles: [2, 0], shape: [2], dtype: .int32, device: .reference)

    private func ce(_ row: [Double], _ y: Int) -> Double {
        let m = row.max() ?? 0
        return -(row[y] - m - Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +)))
    }
    private func row(_ t: Int, _ n: Int) -> [Double] { Array(values[(t * 2 + n) * 3..<(t * 2 + n) * 3 + 3]) }

    /// Mean squared difference of two [N][K] tables.
    private func meanSquare(_ a: [[Double]], _ b: [[Double]]) -> Double {
        var total = 0.0, count = 0.0
        for (x, y) in zip(a, b) {
            for (p, q) in zip(x, y) {
                let d: Double = p - q
                total += d * d
                count += 1
            }
        }
        return total / count
    }

    @Test("SDT cross-entropy is CE of the time-mean output")
    func sdt() {
        let mean = (0..<2).map { n in (0..<3).map { k in (row(0, n)[k] + row(1, n)[k]) / 2 } }
        let expected = (ce(mean[0], 2) + ce(mean[1], 0)) / 2
        #expect(abs(TrainingLoss.sdt(.crossEntropy)(outputs, labels: labels, parameters: []).item() - expected) < 1e-12)
        // MSE against one-hot of the mean: over all N·K elements.
        let y: [[Double]] = [[0, 0, 1], [1, 0, 0]]
        let mse = meanSquare(mean, y)
        #expect(abs(TrainingLoss.sdt(.mse)(outputs, labels: labels, parameters: []).item() - mse) < 1e-12)
    }

    @Test("TET mixes per-timestep CE with MSE to the constant φ over the whole output")
    func tet() {
        let (lambda, phi) = (0.3, 1.0)
        let ceMean = (0..<2).map { t in (ce(row(t, 0), 2) + ce(row(t, 1), 0)) / 2 }.reduce(0, +) / 2
        let reg = meanSquare([values], [[Double](repeating: phi, count: 12)])
        let expected = (1 - lambda) * ceMean + lambda * reg
        #expect(abs(TrainingLoss.tet(lambda: lambda, means: phi)(outputs, labels: labels, parameters: []).item() - expected) < 1e-12)
    }

    @Test("TRT adds the time-decaying penalty on weights and BN γ, not on biases")
    func trt() {
        let (lambda, decay, eps, eta) = (0.01, 0.5, 1e-5, 0.05)
        let w = Tensor(doubles: [0.5, -2, 0.1], shape: [3]), gammaBN = Tensor(doubles: [1.5], shape: [1])
        let bias = Tensor(doubles: [7, 7], shape: [2])
        let params: [(key: String, value: Tensor)] = [("layers.0.conv2d_layer.module.0.weight", w),
                                                       ("layers.0.conv2d_layer.module.1.weight", gammaBN),
                                                       ("layers.1.module.bias", bias)]
        let y: [[Double]] = [[0, 0, 1], [1, 0, 0]]
        var expected = 0.0
        for t in 0..<2 {
            let ceT = (ce(row(t, 0), 2) + ce(row(t, 1), 0)) / 2
            let mseT = meanSquare([row(t, 0), row(t, 1)], y)
            let c = Foundation.exp(decay * Double(t)) - 1
            let r = ([0.5, -2, 0.1, 1.5] as [Double]).map { lambda * $0 * $0 / (1 + c * (abs($0) + eps)) }.reduce(0, +)
            expected += (1 - eta) * ceT + eta * mseT + r
        }
        expected /= 2
        let loss = TrainingLoss.trt(lambda: lambda, decay: decay, epsilon: eps, eta: eta)(outputs, labels: labels, parameters: params)
        #expect(abs(loss.item() - expected) < 1e-12)
    }

    @Test("the TRT penalty's gradient is the closed form of TRT-SPEC.md §3, fused and composite")
    func trtGradient() {
        let (lambda, decay, steps, eps) = (0.2, 0.5, 4, 1e-5)
        let raw: [Double] = [0.7, -1.3, 0.05, -0.02, 0]
        let expected = raw.map { x in
            (0..<steps).map { t -> Double in
                let c = Foundation.exp(decay * Double(t)) - 1, d = 1 + c * (abs(x) + eps)
                let sign: Double = x > 0 ? 1 : (x < 0 ? -1 : 0)
                return lambda * (2 * x * d - x * x * c * sign) / (d * d)
            }.reduce(0, +)
        }
        let penalties: [(String, ([Tensor]) -> Tensor)] = [
            ("fused", { trtRegularization($0, lambda: lambda, decay: decay, steps: steps, epsilon: eps) }),
            ("composite", { trtRegularizationComposite($0, lambda: lambda, decay: decay, steps: steps, epsilon: eps) }),
        ]
        for (name, penalty) in penalties {
            let w = Tensor(doubles: raw, shape: [5])
            let (_, grads) = valueAndGradients(of: ["w": w]) { penalty([w]) }
            let got = grads["w"]?.toDoubles() ?? []
            #expect(got.count == raw.count, "\(name)")
            for (a, b) in zip(got, expected) { #expect(abs(a - b) < 1e-12, "\(name): \(a) vs \(b)") }
        }
    }

    /// The TRT loss as it was before the fused penalty: `R_t` recorded op by op inside the loop
    /// over timesteps (the oracle for the fused formulation).
    private static func previousTRTLoss(_ outputs: Tensor, labels: Tensor, parameters: [(key: String, value: Tensor)],
                                        lambda: Double, decay: Double, epsilon: Double, eta: Double) -> Tensor {
        let steps = outputs.shape[0]
        let target = oneHot(labels.to(outputs.device), classes: outputs.shape[2], dtype: outputs.dtype)
        var total = outputs.like(0)
        let weights = parameters.filter { !$0.key.contains("bias") }.map(\.value)
        for t in 0..<steps {
            let o = outputs.selected(axis: 0, t)
            total = total + (1 - eta) * crossEntropy(logits: o, labels: labels) + eta * mse(o, target)
            let c = Foundation.exp(decay * Double(t)) - 1
            let penalty = weights.map { w in (w.square() / ((w.abs() + epsilon) * c + 1)).sum() }
            total = total + penalty.reduce(weights[0].like(0), +) * lambda
        }
        return total / Double(steps)
    }

    /// `|a - b| <= rtol |b| + atol` elementwise.
    private static func expectClose(_ a: Tensor, _ b: Tensor, rtol: Double, atol: Double, _ what: String,
                                    sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.shape == b.shape, "\(what): shape \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
        let bad = zip(a.toDoubles(), b.toDoubles()).enumerated().first { !(abs($1.0 - $1.1) <= rtol * abs($1.1) + atol) }
        #expect(bad == nil, "\(what): element \(bad?.offset ?? -1): \(bad?.element.0 ?? 0) vs \(bad?.element.1 ?? 0)",
                sourceLocation: sourceLocation)
    }

    /// Float64 on the reference backend: the same terms summed in another order, so 1e-12.
    /// Float32 on the CPU: both sides round every op to float32 (softmax, sums over N·K and over
    /// the weights), so a relative 1e-4; gradients of the outputs and weights are at least ~1e-4
    /// in size here except where they cancel to ~1e-9, hence the stated absolute 1e-8.
    @Test("the TRT loss with the fused penalty equals the previous composite formulation, value and gradients",
          arguments: [(DType.float64, Device.reference), (.float32, .cpu)])
    func trtFusedMatchesPrevious(dtype: DType, device: Device) {
        CPUBackend.register()
        let (lambda, decay, eps, eta) = (0.02, 0.5, 1e-5, 0.05)
        let (rtol, atol) = dtype == .float64 ? (1e-12, 1e-12) : (1e-4, 1e-8)
        func make(_ shape: [Int], _ seed: UInt64, _ scale: Double) -> Tensor {
            let n = shape.reduce(1, *)
            let v = RandomGenerator(seed: seed).normal(n).map { Double($0) * scale }
            return Tensor(doubles: v, shape: shape, dtype: dtype, device: device)
        }
        let labels = Tensor(doubles: [2, 0, 4, 1], shape: [4], dtype: .int32, device: device)
        func run(_ loss: (Tensor, [(key: String, value: Tensor)]) -> Tensor) -> (Tensor, [String: Tensor]) {
            let params: [(key: String, value: Tensor)] = [
                ("layers.0.conv2d_layer.module.0.weight", make([6, 2, 3, 3], 1, 0.3)),
                ("layers.0.conv2d_layer.module.1.weight", make([6], 2, 1)),
                ("layers.0.conv2d_layer.module.1.bias", make([6], 3, 1)),
                ("layers.2.module.weight", make([5, 24], 4, 0.2)),
                ("layers.2.module.bias", make([5], 5, 0.2)),
            ]
            let outputs = make([3, 4, 5], 6, 1.5)
            var all = Dictionary(uniqueKeysWithValues: params.map { ($0.key, $0.value) })
            all["outputs"] = outputs
            return valueAndGradients(of: all) { loss(outputs, params) }
        }
        let (fused, fusedGrads) = run { o, p in
            TrainingLoss.trt(lambda: lambda, decay: decay, epsilon: eps, eta: eta)(o, labels: labels, parameters: p)
        }
        let (previous, previousGrads) = run { o, p in
            Self.previousTRTLoss(o, labels: labels, parameters: p, lambda: lambda, decay: decay, epsilon: eps, eta: eta)
        }
        #expect(fused.dtype == dtype && fused.device == device)
        Self.expectClose(fused, previous, rtol: rtol, atol: 0, "\(dtype) loss")
        #expect(fusedGrads.keys.sorted() == previousGrads.keys.sorted())
        for (key, g) in previousGrads {
            Self.expectClose(fusedGrads[key] ?? g.like(.nan), g, rtol: rtol, atol: atol, "\(dtype) gradient of \(key)")
        }
        // Biases get no penalty: their gradient is zero.
        #expect(fusedGrads["layers.2.module.bias"]?.toDoubles().allSatisfy { $0 == 0 } == true)
    }

    @Test("cosine annealing goes from the base rate to 0 over the epochs")
    func cosine() {
        let s = CosineSchedule(baseRate: 0.1, epochs: 4)
        #expect(s.rate(epoch: 0) == 0.1)
        #expect(abs(s.rate(epoch: 2) - 0.05) < 1e-15)
        #expect(abs(s.rate(epoch: 4)) < 1e-15)
        #expect(CosineSchedule(baseRate: 0.1, epochs: 4, enabled: false).rate(epoch: 3) == 0.1)
    }

    @Test("optimiser updates match PyTorch's rules on one parameter", arguments: Optimizer.Kind.allCases)
    func optimizers(_ kind: Optimizer.Kind) {
        let p = Tensor(doubles: [1.0, -2.0], shape: [2])
        let g = Tensor(doubles: [0.5, 0.25], shape: [2])
        let opt = Optimizer(kind, learningRate: 0.1, weightDecay: 0.01)
        opt.step([("p", p)], gradients: ["p": g])
        opt.step([("p", p)], gradients: ["p": g])
        // Hand iteration of each rule for two steps.
        var x: [Double] = [1.0, -2.0]
        var m = [0.0, 0.0], v = [0.0, 0.0], buf: [Double]? = nil
        for step in 1...2 {
            for i in 0..<2 {
                var gi = [0.5, 0.25][i]
                switch kind {
                case .sgd:
                    gi += 0.01 * x[i]
                    var b = buf ?? [0, 0]
                    b[i] = buf == nil ? gi : 0.9 * b[i] + gi
                    if i == 1 { buf = b } else { buf = buf ?? [b[0], 0]; buf?[0] = b[0] }
                    x[i] -= 0.1 * b[i]
                case .adam, .adamW:
                    if kind == .adam { gi += 0.01 * x[i] } else { x[i] *= 1 - 0.1 * 0.01 }
                    m[i] = 0.9 * m[i] + 0.1 * gi
                    v[i] = 0.999 * v[i] + 0.001 * gi * gi
                    let c1 = 1 - pow(0.9, Double(step)), c2 = 1 - pow(0.999, Double(step))
                    x[i] -= 0.1 / c1 * m[i] / (v[i].squareRoot() / c2.squareRoot() + 1e-8)
                case .rmsprop:
                    gi += 0.01 * x[i]
                    v[i] = 0.99 * v[i] + 0.01 * gi * gi
                    x[i] -= 0.1 * gi / (v[i].squareRoot() + 1e-8)
                }
            }
        }
        for (a, b) in zip(p.toDoubles(), x) { #expect(abs(a - b) < 1e-12, "\(kind)") }
    }
}
