import SNNTensor
import SNNTestSupport
import Testing

/// Axes to reduce over and whether to keep them.
struct ReduceCase: Sendable, CustomStringConvertible {
    let axes: [Int]?
    let keepDims: Bool
    var description: String { "axes \(axes.map { "\($0)" } ?? "all") keepDims \(keepDims)" }
}

@Suite("reductions")
struct ReduceTests {
    static let cases = [
        ReduceCase(axes: nil, keepDims: false), ReduceCase(axes: nil, keepDims: true),
        ReduceCase(axes: [0], keepDims: false), ReduceCase(axes: [1], keepDims: true),
        ReduceCase(axes: [-1], keepDims: false), ReduceCase(axes: [0, 2], keepDims: false),
        ReduceCase(axes: [2, 0], keepDims: true), ReduceCase(axes: [0, 1, 2], keepDims: false),
    ]

    @Test("sum gradients match finite differences", arguments: cases)
    func sumGradients(c: ReduceCase) {
        expectGradientsMatchFiniteDifferences([RandomInputs(seed: 31).normal([2, 3, 4])]) {
            $0[0].sum(axes: c.axes, keepDims: c.keepDims)
        }
    }

    @Test("mean gradients match finite differences", arguments: cases)
    func meanGradients(c: ReduceCase) {
        expectGradientsMatchFiniteDifferences([RandomInputs(seed: 32).normal([2, 3, 4])]) {
            $0[0].mean(axes: c.axes, keepDims: c.keepDims)
        }
    }

    @Test("max gradients match finite differences (distinct values)", arguments: cases)
    func maxGradients(c: ReduceCase) {
        expectGradientsMatchFiniteDifferences([RandomInputs(seed: 33).distinct([2, 3, 4])]) {
            $0[0].max(axes: c.axes, keepDims: c.keepDims)
        }
    }

    @Test("reductions of a strided view")
    func reduceViews() {
        let r = RandomInputs(seed: 34)
        expectGradientsMatchFiniteDifferences([r.distinct([3, 4])]) { x in
            x[0].transposed().max(axes: [1]) + x[0].transposed().sum(axes: [1]) * x[0].sliced(axis: 0, 1..<2).mean()
        }
    }

    @Test("forward values by hand")
    func values() {
        // x = [[1, 2, 3], [4, 5, 6]]: column sums [5, 7, 9], row sums [6, 15], total 21;
        // row means [2, 5]; column maxima [4, 5, 6]; row maxima [3, 6].
        let x = Tensor(doubles: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        assertClose(x.sum(axes: [0]), [5, 7, 9], shape: [3])
        assertClose(x.sum(axes: [1], keepDims: true), [6, 15], shape: [2, 1])
        assertClose(x.sum(), [21], shape: [])
        assertClose(x.mean(axes: [-1]), [2, 5], shape: [2])
        assertClose(x.mean(), [3.5], shape: [])
        assertClose(x.max(axes: [0]), [4, 5, 6], shape: [3])
        assertClose(x.max(axes: [1], keepDims: true), [3, 6], shape: [2, 1])
        assertClose(Tensor(doubles: [-3, -1, -2], shape: [3]).max(), [-1], shape: [])
        #expect(Tensor(doubles: [0, 5, 5, 1, 9, 2], shape: [2, 3]).argmaxRows() == [1, 1])
    }

    @Test("argmaxMatches counts what argmaxRows compared with the labels counts: first maximum on ties, a NaN row never")
    func argmaxMatches() {
        let r = RandomInputs(seed: 41)
        // 37 rows of 5 classes, values from {0, 1, 2} so that rows tie often.
        var values = r.uniformValues(37 * 5, low: 0, high: 3).map { $0.rounded(.down) }
        values[5 * 3 + 1] = .nan
        let x = Tensor(doubles: values, shape: [37, 5])
        let labels = r.uniformValues(37, low: 0, high: 5).map { Int($0) }
        let ties = (0..<37).filter { n in values[(n * 5)..<(n * 5 + 5)].filter { $0 == values[(n * 5)..<(n * 5 + 5)].max()! }.count > 1 }
        #expect(ties.count > 5, "the rows must tie often to test the first maximum: \(ties.count) ties")
        var expected = zip(x.argmaxRows(), labels).filter { $0 == $1 }.count
        if x.argmaxRows()[3] == labels[3] { expected -= 1 }   // the NaN row has no maximum
        let counted = x.argmaxMatches(Tensor(labels: labels, device: .reference), indices: Tensor.argmaxIndices(5, dtype: .float64, device: .reference))
        #expect(counted.shape == [] && counted.item() == Double(expected), "\(counted.item()) against \(expected)")
        // Labels on the first tied maximum count; on a later one they do not.
        let tied = Tensor(doubles: [2, 5, 5, 1], shape: [1, 4])
        #expect(tied.argmaxMatches(Tensor(labels: [1], device: .reference), indices: Tensor.argmaxIndices(4, dtype: .float64, device: .reference)).item() == 1)
        #expect(tied.argmaxMatches(Tensor(labels: [2], device: .reference), indices: Tensor.argmaxIndices(4, dtype: .float64, device: .reference)).item() == 0)
    }

    @Test("max shares the gradient equally among tied maxima")
    func maxTies() {
        // max over [1, 3, 3] has two winners; each gets half of the upstream gradient 1.
        let x = Tensor(doubles: [1, 3, 3, 2, 0, 2], shape: [2, 3])
        x.requiresGrad = true
        x.max(axes: [1]).sum().backward()
        assertClose(x.grad ?? x, [0, 0.5, 0.5, 0.5, 0, 0.5], shape: [2, 3])
    }
}
