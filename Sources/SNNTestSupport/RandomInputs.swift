import SNNTensor

/// Seeded random test inputs. Every draw goes through one ``RandomGenerator``, so a test's
/// inputs depend only on its seed and the order of its draws.
///
/// Defaults are the gradient-check setting: float64 on the reference backend.
public final class RandomInputs {
    public let generator: RandomGenerator

    public init(seed: UInt64) {
        generator = RandomGenerator(seed: seed)
    }

    /// Standard-normal values scaled and shifted, as `Double`s.
    public func normalValues(_ count: Int, mean: Double = 0, std: Double = 1) -> [Double] {
        generator.normal(count).map { mean + std * Double($0) }
    }

    /// Uniform values in `[low, high)`, as `Double`s.
    public func uniformValues(_ count: Int, low: Double = 0, high: Double = 1) -> [Double] {
        generator.uniform(count).map { low + (high - low) * Double($0) }
    }

    /// A normal tensor.
    public func normal(
        _ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float64,
        device: Device = .reference
    ) -> Tensor {
        Tensor(
            doubles: rounded(normalValues(ShapeUtil.count(shape), mean: mean, std: std), dtype), shape: shape,
            dtype: dtype, device: device)
    }

    /// A uniform tensor in `[low, high)`.
    public func uniform(
        _ shape: [Int], low: Double = 0, high: Double = 1, dtype: DType = .float64,
        device: Device = .reference
    ) -> Tensor {
        Tensor(
            doubles: rounded(uniformValues(ShapeUtil.count(shape), low: low, high: high), dtype), shape: shape,
            dtype: dtype, device: device)
    }

    /// Normal values kept at least `margin` away from every point of `kinks`, for functions that
    /// are not differentiable there (relu and abs at 0, clamp at its bounds). A value closer than
    /// `margin` to a kink is moved to `margin` on its own side.
    public func awayFromKinks(
        _ shape: [Int], kinks: [Double], margin: Double = 0.05, mean: Double = 0, std: Double = 1,
        dtype: DType = .float64, device: Device = .reference
    ) -> Tensor {
        let values = normalValues(ShapeUtil.count(shape), mean: mean, std: std).map { v in
            var x = v
            for k in kinks where Swift.abs(x - k) < margin { x = k + (x >= k ? margin : -margin) }
            return x
        }
        return Tensor(doubles: rounded(values, dtype), shape: shape, dtype: dtype, device: device)
    }

    /// Distinct values `offset + spacing·k` for k = 0..<count in random order: no ties, and
    /// any two elements differ by at least `spacing` (max reductions and max pooling, whose
    /// gradient is not defined at ties). The default offset centres the values on 0.
    public func distinct(
        _ shape: [Int], spacing: Double = 0.1, offset: Double? = nil, dtype: DType = .float64,
        device: Device = .reference
    ) -> Tensor {
        let n = ShapeUtil.count(shape)
        let offset = offset ?? -spacing * Double(n) / 2
        let values = generator.permutation(n).map { offset + spacing * Double($0) }
        return Tensor(doubles: values, shape: shape, dtype: dtype, device: device)
    }

    /// Integer class labels in `0..<classes` as an int32 `[count]` tensor.
    public func labels(_ count: Int, classes: Int, device: Device = .reference) -> Tensor {
        let values = (0..<count).map { _ in Double(generator.integer(below: classes)) }
        return Tensor(doubles: values, shape: [count], dtype: .int32, device: device)
    }

    /// Values as the dtype will store them, so tensors built from them on two devices agree.
    private func rounded(_ values: [Double], _ dtype: DType) -> [Double] {
        dtype == .float32 ? values.map { Double(Float($0)) } : values
    }
}

extension Tensor {
    /// A new leaf with the same values on `device` (the storage is copied, so gradients and
    /// in-place updates of the two never mix), optionally requiring a gradient.
    public func leafCopy(on device: Device, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(doubles: toDoubles(), shape: shape, dtype: dtype, device: device)
        t.requiresGrad = requiresGrad
        return t
    }

    /// A float32 copy on the reference backend (float64 test inputs rounded for device parity).
    public var float32Copy: Tensor { Tensor(doubles: toDoubles(), shape: shape, dtype: .float32, device: .reference) }

    /// A float64 copy on the reference backend (for comparing results of any dtype).
    public var float64Copy: Tensor { Tensor(doubles: toDoubles(), shape: shape, dtype: .float64, device: .reference) }
}
