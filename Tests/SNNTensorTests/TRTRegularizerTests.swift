import Foundation
@testable import SNNTensor
import SNNTestSupport
import Testing

/// The fused TRT penalty (`trtRegularization`) against finite differences, hand values and its
/// composite reference, on the reference backend in float64.
@Suite("trtRegularization")
struct TRTRegularizerTests {
    /// `(steps, decay)`: one step (plain L2), several steps, decay 0 (every `c_t = 0`) and the
    /// CIFAR setting over T = 10.
    static let schedules: [(Int, Double)] = [(1, 0.5), (4, 0.5), (3, 0), (10, 0.25)]

    /// Weights of several shapes with both signs, exact zeros and values near zero, next to
    /// the normal bulk (a step of 1e-6 never crosses 0 except at 0 itself, where the penalty
    /// is even and its derivative is 0).
    static func weights(seed: UInt64) -> [Tensor] {
        let r = RandomInputs(seed: seed)
        let special: [Double] = [0, 1e-3, -1e-3, 0.02, -0.02, 2.5, -3]
        return [
            Tensor(doubles: special + r.normalValues(5), shape: [3, 4]),
            r.normal([5], std: 0.1),
            r.normal([2, 1, 3], std: 1.5),
        ]
    }

    @Test("gradients match finite differences (float64)", arguments: schedules)
    func gradients(steps: Int, decay: Double) {
        for lambda in [0.3, 1e-2] {
            expectGradientsMatchFiniteDifferences(Self.weights(seed: 31), "T=\(steps) d=\(decay) λ=\(lambda)") {
                trtRegularization($0, lambda: lambda, decay: decay, steps: steps, epsilon: 1e-5)
            }
        }
    }

    @Test("value and gradients equal the composite reference (float64)", arguments: schedules)
    func matchesComposite(steps: Int, decay: Double) {
        for epsilon in [1e-5, 0.1] {
            let label = "T=\(steps) d=\(decay) ε=\(epsilon)"
            let (fused, fusedGrads) = Self.valueAndGradients(Self.weights(seed: 32)) {
                trtRegularization($0, lambda: 0.05, decay: decay, steps: steps, epsilon: epsilon)
            }
            let (composite, compositeGrads) = Self.valueAndGradients(Self.weights(seed: 32)) {
                trtRegularizationComposite($0, lambda: 0.05, decay: decay, steps: steps, epsilon: epsilon)
            }
            #expect(fused.shape == [] && fused.dtype == .float64 && fused.device == .reference, "\(label)")
            // Same float64 terms, summed in a different order.
            assertClose(fused, composite, .float64, "\(label) value")
            for (i, (a, b)) in zip(fusedGrads, compositeGrads).enumerated() {
                assertClose(a, b, .float64, "\(label) gradient of weight \(i)")
            }
        }
    }

    @Test("values by hand: w = [1, -1, 0], λ = 1, ε = 0, c = [0, 1]")
    func valuesByHand() {
        // d = ln 2 gives c_0 = 0, c_1 = 1. R_0 = Σ w² = 2; R_1 = Σ w²/(1 + |w|) = 1/2 + 1/2 = 1.
        // dR_0/dw = 2w; dR_1/dw = [2w(1 + |w|) - w² sign(w)] / (1 + |w|)² = ±3/4, and 0 at w = 0.
        let w = Tensor(doubles: [1, -1, 0], shape: [3])
        let (value, grads) = Self.valueAndGradients([w]) {
            trtRegularization($0, lambda: 1, decay: Foundation.log(2), steps: 2, epsilon: 0)
        }
        assertClose(value, [3], shape: [], .float64)
        assertClose(grads[0], [2.75, -2.75, 0], shape: [3], .float64)
    }

    @Test("the backward pass scales the saved gradients by the output gradient")
    func scaledByOutputGradient() {
        let ws = Self.weights(seed: 33)
        for w in ws { w.requiresGrad = true }
        let y = trtRegularization(ws, lambda: 0.1, decay: 0.5, steps: 4, epsilon: 1e-5)
        y.backward(Tensor.scalar(2.5, dtype: .float64, device: .reference))
        let (_, unit) = Self.valueAndGradients(Self.weights(seed: 33)) {
            trtRegularization($0, lambda: 0.1, decay: 0.5, steps: 4, epsilon: 1e-5)
        }
        for (w, g) in zip(ws, unit) { assertClose(w.grad ?? w, g * 2.5, .float64) }
    }

    @Test("the fused op records one tape node over the weights; the composite records dozens")
    func oneTapeNode() {
        let ws = Self.weights(seed: 34)
        for w in ws { w.requiresGrad = true }
        let fused = trtRegularization(ws, lambda: 0.1, decay: 0.5, steps: 10, epsilon: 1e-5)
        #expect(Self.tapeNodes(fused) == 1)
        #expect(fused.node?.parents.count == ws.count)
        #expect(zip(fused.node?.parents ?? [], ws).allSatisfy { $0?.leaf === $1 }, "the node's parents are the weights' leaf nodes")
        // The composite: abs, add, mul, add, square, div, sum per weight and step, plus the sums.
        let composite = trtRegularizationComposite(ws, lambda: 0.1, decay: 0.5, steps: 10, epsilon: 1e-5)
        #expect(Self.tapeNodes(composite) > 10 * ws.count * 6)
    }

    @Test("nothing is recorded without gradients, and weights that need none get none")
    func recordingModes() {
        let ws = Self.weights(seed: 35)
        #expect(!trtRegularization(ws, lambda: 0.1, decay: 0.5, steps: 2, epsilon: 1e-5).requiresGrad)
        ws[1].requiresGrad = true
        let y = withoutGradients { trtRegularization(ws, lambda: 0.1, decay: 0.5, steps: 2, epsilon: 1e-5) }
        #expect(!y.requiresGrad)
        let leaves = trtRegularization(ws, lambda: 0.1, decay: 0.5, steps: 2, epsilon: 1e-5).gradients()
        #expect(leaves.count == 1 && leaves.first?.0 === ws[1])
    }

    @Test("weights of two dtypes trap with an [op] message")
    func mixedDtypes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = trtRegularization(
                [Tensor.zeros([2], dtype: .float64, device: .reference),
                 Tensor.zeros([2], dtype: .float32, device: .reference)],
                lambda: 1, decay: 0.5, steps: 2, epsilon: 1e-5)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("[trtRegularization] expected weights of one dtype"), "\(stderr)")
    }

    // MARK: - Helpers

    /// The value of `f` at fresh leaf copies of `weights`, and the gradient of each weight.
    static func valueAndGradients(_ weights: [Tensor], _ f: ([Tensor]) -> Tensor) -> (Tensor, [Tensor]) {
        let leaves = weights.map { $0.leafCopy(on: $0.device, requiresGrad: true) }
        let value = f(leaves)
        let byLeaf = Dictionary(value.gradients().map { (ObjectIdentifier($0.0), $0.1) }) { a, _ in a }
        return (value, leaves.map { byLeaf[ObjectIdentifier($0)] ?? Tensor.zeros($0.shape, dtype: $0.dtype, device: $0.device) })
    }

    /// The number of distinct tape nodes reachable from `t`.
    static func tapeNodes(_ t: Tensor) -> Int {
        var seen = Set<ObjectIdentifier>(), stack = t.node.map { [$0] } ?? [], count = 0
        while let node = stack.popLast() {
            guard node.leaf == nil, seen.insert(ObjectIdentifier(node)).inserted else { continue }
            count += 1
            stack.append(contentsOf: node.parents.compactMap { $0 })
        }
        return count
    }
}
