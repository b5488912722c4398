import SNNTensor
import SNNTestSupport
import Testing

/// An op whose recorded output must not outlive the last reference to it.
enum TapeOp: String, CaseIterable, Sendable, CustomStringConvertible {
    case square, relu, multiply, add, matmul, conv2d, batchNorm, neuronScan, sum
    case exp, sqrt, sigmoid, divide, power, max, maxPool, avgPool, logSoftmax, crossEntropy

    var description: String { rawValue }

    func apply(_ h: Tensor) -> Tensor {
        switch self {
        case .square: return h.square()
        case .relu: return h.relu()
        case .multiply: return h * h
        case .add: return h + h
        case .matmul: return SNNTensor.matmul(h.reshaped([2, 2]), h.reshaped([2, 2]))
        case .conv2d: return SNNTensor.conv2d(h, weight: h)
        case .batchNorm:
            func constant(_ v: Double) -> Tensor { Tensor.full([1], v, dtype: .float64, device: .reference) }
            return SNNTensor.batchNorm(
                h, gamma: constant(1), beta: constant(0), runningMean: constant(0), runningVar: constant(1),
                training: true)
        case .neuronScan: return SNNTensor.neuronScan(h, NeuronParameters())
        case .sum: return h.sum(axes: [2])
        case .exp: return h.exp()
        case .sqrt: return h.sqrt()
        case .sigmoid: return h.sigmoid()
        case .divide: return h / (h + 1)
        case .power: return SNNTensor.pow(h, 2)
        case .max: return h.max(axes: [3])
        case .maxPool: return SNNTensor.maxPool2d(h, kernel: (2, 2))
        case .avgPool: return SNNTensor.avgPool2d(h, kernel: (2, 2))
        case .logSoftmax: return SNNTensor.logSoftmax(h.reshaped([2, 2]))
        case .crossEntropy:
            return SNNTensor.crossEntropy(
                logits: h.reshaped([2, 2]), labels: Tensor(labels: [0, 1], device: .reference))
        }
    }
}

/// The tape holds activations; it must be freed when the loss goes out of scope, or every
/// training step leaks its whole graph.
@Suite("tape memory")
struct TapeMemoryTests {
    /// Runs `op` on an intermediate `h = 2x` of a leaf `x`, back-propagates, drops every strong
    /// reference, and reports which of the output and `h` survived.
    private func survivors(_ op: TapeOp) -> (output: Bool, input: Bool) {
        weak var weakOutput: Tensor?
        weak var weakInput: Tensor?
        do {
            let x = RandomInputs(seed: 1).uniform([1, 1, 2, 2], low: 0.5, high: 2)
            x.requiresGrad = true
            let h = x * 2
            let y = op.apply(h)
            (weakOutput, weakInput) = (y, h)
            y.sum().backward()
        }
        return (weakOutput != nil, weakInput != nil)
    }

    @Test(
        "an op's output and the graph behind it are freed after backward and the last reference",
        arguments: TapeOp.allCases)
    func freed(op: TapeOp) {
        // Regression test: rules that need their op's result capture a detached alias, so no
        // output -> node -> rule -> output cycle keeps the tape alive (exp, sqrt, sigmoid,
        // divide, power, max and pool2d used to leak).
        let (output, input) = survivors(op)
        #expect(!output, "the output of \(op) is still alive")
        #expect(!input, "the input of \(op) (and everything upstream on the tape) is still alive")
    }

    @Test("withoutGradients records nothing, so nothing is retained")
    func evaluationFreesEverything() {
        weak var weakOutput: Tensor?
        do {
            let x = RandomInputs(seed: 2).uniform([4], low: 0.5, high: 2)
            x.requiresGrad = true
            let y = withoutGradients { x.exp().sqrt().sigmoid() }
            weakOutput = y
            #expect(!y.requiresGrad)
        }
        #expect(weakOutput == nil)
    }
}
