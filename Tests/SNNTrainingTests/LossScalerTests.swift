import SNNTraining
import Testing

@Suite("Dynamic loss scaling (--amp fp16)")
struct LossScalerTests {
    @Test("an overflowing step is skipped and halves the scale; the scale doubles after the growth interval of finite steps")
    func rule() {
        let scaler = LossScaler(scale: 1024, growthInterval: 3)
        #expect(scaler.update(finite: true) && scaler.update(finite: true))
        #expect(!scaler.update(finite: false))
        #expect(scaler.scale == 512 && scaler.goodSteps == 0 && scaler.skippedSteps == 1)
        #expect(scaler.update(finite: true) && scaler.update(finite: true) && scaler.scale == 512)
        #expect(scaler.update(finite: true) && scaler.scale == 1024 && scaler.goodSteps == 0, "three finite steps in a row")
        #expect(LossScaler().scale == 65536 && LossScaler().growthInterval == 2000, "PyTorch's GradScaler defaults")
    }
}
