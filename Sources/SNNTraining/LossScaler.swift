/// Dynamic loss scaling for float16 mixed precision (`--amp fp16`), PyTorch's `GradScaler`
/// rule: the loss is multiplied by ``scale`` before the backward pass so that small gradients
/// survive float16 operands; the gradients are divided by it again before the optimiser step. A
/// step whose gradients hold an infinity or NaN is skipped and the scale halves; after
/// ``growthInterval`` steps in a row without one, it doubles.
public final class LossScaler {
    /// The factor the loss is multiplied by (2¹⁶ at first).
    public var scale: Double
    public let growthFactor = 2.0, backoffFactor = 0.5
    public let growthInterval: Int
    /// Finite steps since the scale last changed.
    public private(set) var goodSteps = 0
    /// Steps skipped for overflowing gradients.
    public private(set) var skippedSteps = 0

    public init(scale: Double = 65536, growthInterval: Int = 2000) {
        precondition(scale > 0 && growthInterval > 0, "[LossScaler] expected a positive scale and growth interval")
        (self.scale, self.growthInterval) = (scale, growthInterval)
    }

    /// Records a step's outcome and returns whether to apply it.
    public func update(finite: Bool) -> Bool {
        guard finite else {
            scale *= backoffFactor
            goodSteps = 0
            skippedSteps += 1
            return false
        }
        goodSteps += 1
        if goodSteps == growthInterval {
            scale *= growthFactor
            goodSteps = 0
        }
        return true
    }
}
