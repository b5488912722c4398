import Foundation
@testable import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

/// The CPU backend's fused TRT penalty (float32) against the reference backend in float64, on
/// weights below and above the parallel split, contiguous and not, and its reproducibility.
@Suite("CPU trtRegularizer")
struct CPUTRTRegularizerTests {
    init() { CPUBackend.register() }

    /// `c_t = e^{d t} - 1` for the given schedule.
    static func coefficients(decay: Double, steps: Int) -> [Double] {
        (0..<steps).map { Foundation.exp(decay * Double($0)) - 1 }
    }

    /// Float32 weights of the given shapes (normal values scaled by `std`, with both signs,
    /// zeros and values near zero mixed in), on the CPU.
    static func weights(_ shapes: [[Int]], seed: UInt64, std: Float = 0.5) -> [Tensor] {
        let generator = RandomGenerator(seed: seed)
        let special: [Float] = [0, 1e-3, -1e-3, 1e-4, -2e-4, 3, -2.5]
        return shapes.map { shape in
            let n = ShapeUtil.count(shape)
            var values = generator.normal(n).map { $0 * std }
            for (i, v) in special.enumerated() where i * 13 < n { values[i * 13] = v }
            return Tensor(values, shape: shape)
        }
    }

    /// Compares the CPU result with the reference backend on float64 copies of the same values.
    private func expectMatchesReference(_ weights: [Tensor], lambda: Double, coefficients: [Double], epsilon: Double,
                                        _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let (value, gradients) = CPUBackend.shared.trtRegularizer(
            weights, lambda: lambda, coefficients: coefficients, epsilon: epsilon)
        let (expected, expectedGradients) = ReferenceBackend.shared.trtRegularizer(
            weights.map(\.float64Copy), lambda: lambda, coefficients: coefficients, epsilon: epsilon)
        #expect(value.shape == [] && value.dtype == .float32 && value.device == .cpu, "\(label): value tensor",
                sourceLocation: sourceLocation)
        assertClose(value, expected, .float32TRTRegularizer, "\(label): value", sourceLocation: sourceLocation)
        #expect(gradients.count == weights.count, sourceLocation: sourceLocation)
        for (i, (g, e)) in zip(gradients, expectedGradients).enumerated() {
            #expect(g.dtype == .float32 && g.device == .cpu, "\(label): gradient \(i) dtype/device",
                    sourceLocation: sourceLocation)
            assertClose(g, e, .float32TRTRegularizer, "\(label): gradient \(i)", sourceLocation: sourceLocation)
        }
    }

    @Test("float32 equals the reference on small weights of many shapes",
          arguments: [(1, 0.5), (4, 0.5), (3, 0.0), (10, 0.25)])
    func smallWeights(steps: Int, decay: Double) {
        // Lengths below, at and just above the lane width and the block, and a scalar-like [1].
        let shapes: [[Int]] = [[1], [3], [4], [5], [64], [6, 2, 3, 3], [4095], [4097], [37, 41]]
        let ws = Self.weights(shapes, seed: 71)
        expectMatchesReference(ws, lambda: 5e-5, coefficients: Self.coefficients(decay: decay, steps: steps),
                               epsilon: 1e-5, "T=\(steps) d=\(decay)")
    }

    @Test("float32 equals the reference on strided and offset views")
    func views() {
        let base = Self.weights([[41, 37], [9_000]], seed: 72)
        // A transpose (copied to contiguous first) and a slice starting one float in, so loads
        // start 4 bytes past the allocation's alignment.
        let ws = [base[0].permuted([1, 0]), base[1].sliced(axis: 0, 1..<8_999)]
        expectMatchesReference(ws, lambda: 1e-5, coefficients: Self.coefficients(decay: 0.5, steps: 10),
                               epsilon: 1e-5, "views")
    }

    @Test("above the parallel split: parity, and the same bits on every call")
    func parallel() {
        // 300 001 elements (above Parallel.serialThreshold, not a multiple of the block or the
        // lane width) after two small weights, and a sliced weight whose data is misaligned.
        #expect(300_001 > Parallel.serialThreshold)
        let big = Self.weights([[37], [3], [300_001], [70_003]], seed: 73)
        let ws = [big[0], big[1], big[2], big[3].sliced(axis: 0, 1..<70_002)]
        let coefficients = Self.coefficients(decay: 0.5, steps: 10)
        expectMatchesReference(ws, lambda: 5e-5, coefficients: coefficients, epsilon: 1e-5, "large")
        let first = CPUBackend.shared.trtRegularizer(ws, lambda: 5e-5, coefficients: coefficients, epsilon: 1e-5)
        let second = CPUBackend.shared.trtRegularizer(ws, lambda: 5e-5, coefficients: coefficients, epsilon: 1e-5)
        #expect(first.value.toFloats().map(\.bitPattern) == second.value.toFloats().map(\.bitPattern))
        for (a, b) in zip(first.gradients, second.gradients) {
            #expect(a.toFloats().map(\.bitPattern) == b.toFloats().map(\.bitPattern))
        }
    }

    @Test("the front end on .cpu: a 0-d float32 value on the device and gradients through backward")
    func frontEnd() {
        let ws = Self.weights([[3, 5], [7]], seed: 74)
        for w in ws { w.requiresGrad = true }
        let y = trtRegularization(ws, lambda: 1e-2, decay: 0.5, steps: 4, epsilon: 1e-5)
        #expect(y.shape == [] && y.dtype == .float32 && y.device == .cpu)
        y.backward()
        let (_, expected) = ReferenceBackend.shared.trtRegularizer(
            ws.map(\.float64Copy), lambda: 1e-2, coefficients: Self.coefficients(decay: 0.5, steps: 4), epsilon: 1e-5)
        for (w, e) in zip(ws, expected) { assertClose(w.grad ?? w, e, .float32TRTRegularizer, "gradient") }
    }

    @Test("float64 weights are refused by name on the cpu device (the dtype policy)")
    func float64Refused() async {
        await #expect(processExitsWith: .failure) {
            let ws = [Tensor.zeros([5], dtype: .float64, device: .cpu)]
            _ = CPUBackend.shared.trtRegularizer(ws, lambda: 0.1, coefficients: [0], epsilon: 1e-5)
        }
    }
}
