import SNNLayers
import SNNTensor
import SNNTestSupport
import Testing

/// Layers on frames and on time-major sequences.
@Suite("layers")
struct LayersTests {
    /// `(x - mean) / √(var + ε)` per channel of `x` viewed as `[rows, C, inner]`, with
    /// statistics (biased variance) over rows and inner positions: BN's training output with
    /// γ = 1, β = 0, written out in Double.
    private static func normalised(_ x: [Double], rows: Int, channels: Int, inner: Int, epsilon: Double) -> [Double] {
        var out = x
        for c in 0..<channels {
            let indices = (0..<rows).flatMap { r in (0..<inner).map { (r * channels + c) * inner + $0 } }
            let n = Double(indices.count)
            let mean = indices.map { x[$0] }.reduce(0, +) / n
            let variance = indices.map { (x[$0] - mean) * (x[$0] - mean) }.reduce(0, +) / n
            for i in indices { out[i] = (x[i] - mean) / (variance + epsilon).squareRoot() }
        }
        return out
    }

    @Test(
        "BatchNorm normalises over C: [T, N, C] folds to [T·N, C], [T, N, C, H, W] to [T·N, C, H, W]",
        arguments: [[3, 5, 5], [4, 3], [2, 3, 4, 2, 2], [6, 4, 2, 2]])
    func batchNormChannels(shape: [Int]) {
        // [T, N, C] with N = C, so normalising over the wrong axis fails the comparison (a
        // mismatched channel count would stop at a precondition instead).
        let sequence = shape.count == 3 || shape.count == 5
        let channels = shape[sequence ? 2 : 1]
        let rows = sequence ? shape[0] * shape[1] : shape[0]
        let inner = shape.count >= 4 ? shape[shape.count - 2] * shape[shape.count - 1] : 1
        let x = RandomInputs(seed: 80).normal(shape, mean: 1, std: 2, dtype: .float32)
        let bn = BatchNorm(channels, momentum: 0.1, epsilon: 1e-5, device: .reference)
        let y = bn(x)
        let expected = Self.normalised(x.toDoubles(), rows: rows, channels: channels, inner: inner, epsilon: 1e-5)
        // Float32 results of a float64-exact formula on unit-scale outputs: elementwise tolerance.
        assertClose(y, expected, shape: shape, .float32Elementwise, "output")
        #expect(bn.runningMean.value.shape == [channels])
        // running mean = 0.9 · 0 + 0.1 · the batch mean of each channel.
        let values = x.toDoubles()
        let means = (0..<channels).map { c in
            let indices = (0..<rows).flatMap { r in (0..<inner).map { (r * channels + c) * inner + $0 } }
            return 0.1 * indices.map { values[$0] }.reduce(0, +) / Double(indices.count)
        }
        assertClose(bn.runningMean.value, means, shape: [channels], .float32Elementwise, "running mean")
    }
}
