import SNNTensor
import SNNTestSupport
import Testing

/// A named shape op applied to one `[2, 3, 4]` input (or as stated).
struct MovementCase: Sendable, CustomStringConvertible {
    let name: String
    let shape: [Int]
    let apply: @Sendable (Tensor) -> Tensor
    var description: String { name }
}

@Suite("movement ops")
struct MovementTests {
    static let cases: [MovementCase] = [
        MovementCase(name: "reshape", shape: [2, 3, 4]) { $0.reshaped([4, 6]) },
        MovementCase(name: "reshape -1", shape: [2, 3, 4]) { $0.reshaped([3, -1, 2]) },
        MovementCase(name: "flatten from 1", shape: [2, 3, 4]) { $0.flattened(from: 1) },
        MovementCase(name: "unsqueeze/squeeze", shape: [2, 3, 4]) { $0.unsqueezed(1).unsqueezed(-1).squeezed(1) },
        MovementCase(name: "permute", shape: [2, 3, 4]) { $0.permuted([2, 0, 1]) },
        MovementCase(name: "transpose", shape: [2, 3, 4]) { $0.transposed(0, 2) },
        MovementCase(name: "transpose then reshape (copy)", shape: [2, 3, 4]) { $0.transposed().reshaped([2, 12]) },
        MovementCase(name: "slice axis 1", shape: [2, 3, 4]) { $0.sliced(axis: 1, 1..<3) },
        MovementCase(name: "slice axis -1 middle", shape: [2, 3, 4]) { $0.sliced(axis: -1, 1..<2) },
        MovementCase(name: "slice of a permuted view", shape: [2, 3, 4]) {
            $0.permuted([1, 2, 0]).sliced(axis: 1, 0..<3)
        },
        MovementCase(name: "select", shape: [2, 3, 4]) { $0.selected(axis: 1, 2) },
        MovementCase(name: "expand", shape: [3, 1]) { $0.expanded(to: [2, 3, 4]) },
        MovementCase(name: "contiguous of a transpose", shape: [2, 3, 4]) { $0.transposed(1, 2).contiguous() },
        MovementCase(name: "repeat", shape: [2, 3]) { $0.repeated([2, 1, 3]) },
        MovementCase(name: "repeat same rank", shape: [2, 3]) { $0.repeated([3, 2]) },
        MovementCase(name: "concat of slices", shape: [2, 3, 4]) {
            concat([$0.sliced(axis: 2, 0..<1), $0.sliced(axis: 2, 2..<4)], axis: 2)
        },
    ]

    @Test("shape op gradients match finite differences", arguments: cases)
    func gradients(op: MovementCase) {
        let r = RandomInputs(seed: 21)
        expectGradientsMatchFiniteDifferences([r.normal(op.shape)], op.name) { op.apply($0[0]) }
    }

    @Test("concat and stack gradients match finite differences", arguments: [0, 1, -1])
    func concatStackGradients(axis: Int) {
        let r = RandomInputs(seed: 22)
        var shapes = [[2, 3, 2], [2, 3, 2], [2, 3, 2]]
        let a = axis < 0 ? 2 : axis
        shapes[1][a] = 1
        shapes[2][a] = 3
        expectGradientsMatchFiniteDifferences(shapes.map { r.normal($0) }, "concat axis \(axis)") {
            concat($0, axis: axis)
        }
        expectGradientsMatchFiniteDifferences((0..<3).map { _ in r.normal([2, 3]) }, "stack axis \(axis)") {
            stack($0, axis: axis)
        }
    }

    @Test("forward values by hand: transpose, slice, repeat, concat, stack")
    func values() {
        let x = Tensor(doubles: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        // [[1,2,3],[4,5,6]]ᵀ = [[1,4],[2,5],[3,6]].
        assertClose(x.transposed(), [1, 4, 2, 5, 3, 6], shape: [3, 2])
        #expect(x.transposed().isContiguous == false)
        assertClose(x.transposed().contiguous(), [1, 4, 2, 5, 3, 6], shape: [3, 2])
        assertClose(x.sliced(axis: 1, 1..<3), [2, 3, 5, 6], shape: [2, 2])
        assertClose(x.selected(axis: 0, 1), [4, 5, 6], shape: [3])
        // repeat([2, 1]) stacks two copies of the rows; repeat([1, 2]) tiles each row.
        assertClose(x.repeated([2, 1]), [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], shape: [4, 3])
        assertClose(x.repeated([1, 2]), [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6], shape: [2, 6])
        let y = Tensor(doubles: [7, 8], shape: [2, 1])
        assertClose(concat([x, y], axis: 1), [1, 2, 3, 7, 4, 5, 6, 8], shape: [2, 4])
        assertClose(stack([y, y * 2], axis: 1), [7, 14, 8, 16], shape: [2, 2, 1])
        assertClose(stack([y, y * 2], axis: -1), [7, 14, 8, 16], shape: [2, 1, 2])
        assertClose(
            Tensor(doubles: [1, 2], shape: [2, 1]).expanded(to: [2, 2, 3]),
            [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2], shape: [2, 2, 3])
        // permute([2, 0, 1]) of [2, 1, 3]: out[k, i, j] = x[i, j, k].
        assertClose(x.reshaped([2, 1, 3]).permuted([2, 0, 1]), [1, 4, 2, 5, 3, 6], shape: [3, 2, 1])
        assertClose(x.reshaped([-1]), [1, 2, 3, 4, 5, 6], shape: [6])
    }

    @Test("a slice gradient is zero outside the slice")
    func sliceGradientValues() {
        let x = Tensor(doubles: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        x.requiresGrad = true
        (x.sliced(axis: 1, 1..<2) * 5).sum().backward()
        assertClose(x.grad ?? x, [0, 5, 0, 0, 5, 0], shape: [2, 3])
    }

    @Test("an expand gradient sums over the broadcast axes")
    func expandGradientValues() {
        let x = Tensor(doubles: [1, 2], shape: [2, 1])
        x.requiresGrad = true
        let w = Tensor(doubles: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], shape: [2, 2, 3])
        (x.expanded(to: [2, 2, 3]) * w).sum().backward()
        // Row 0 gets w[:, 0, :] = 1+2+3+7+8+9 = 30; row 1 gets 4+5+6+10+11+12 = 48.
        assertClose(x.grad ?? x, [30, 48], shape: [2, 1])
    }
}
