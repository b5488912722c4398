import SNNTensor
import Testing

/// Programmer mistakes trap with an `[op] expected …, got …` message (STYLE §3, §4.9). Each
/// bad call runs in a child process (an exit test) whose standard error is checked.
@Suite("shape errors trap with an [op] message")
struct ShapeErrorTests {
    private func expectMessage(
        _ result: ExitTest.Result?, _ fragments: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        for f in fragments {
            #expect(stderr.contains(f), "standard error lacks \"\(f)\": \(stderr)", sourceLocation: sourceLocation)
        }
    }

    @Test("add with non-broadcastable shapes")
    func addShapes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ =
                Tensor.zeros([2, 3], dtype: .float64, device: .reference)
                + Tensor.zeros([4], dtype: .float64, device: .reference)
        }
        expectMessage(result, ["[add] expected broadcastable shapes", "[2, 3]", "[4]"])
    }

    @Test("matmul with mismatched inner dimensions")
    func matmulInner() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = matmul(
                Tensor.zeros([2, 3], dtype: .float64, device: .reference),
                Tensor.zeros([4, 5], dtype: .float64, device: .reference))
        }
        expectMessage(result, ["[matmul] expected inner dimensions to agree", "[2, 3]", "[4, 5]"])
    }

    @Test("conv2d with an input of the wrong channel count")
    func convChannels() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = conv2d(
                Tensor.zeros([1, 2, 5, 5], dtype: .float64, device: .reference),
                weight: Tensor.zeros([4, 3, 3, 3], dtype: .float64, device: .reference))
        }
        expectMessage(result, ["[conv2d] expected input channels 3", "[1, 2, 5, 5]"])
    }

    @Test("reshape to a different element count")
    func reshapeCount() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3], dtype: .float64, device: .reference).reshaped([4, 2])
        }
        expectMessage(result, ["[reshape] expected a shape with 6 elements", "[4, 2]"])
    }

    @Test("crossEntropy with labels of the wrong shape")
    func crossEntropyLabels() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crossEntropy(
                logits: Tensor.zeros([4, 3], dtype: .float64, device: .reference),
                labels: Tensor(labels: [0, 1, 2], device: .reference))
        }
        expectMessage(result, ["[crossEntropy] expected labels of shape [4]", "[3]"])
    }
}
