import Foundation
import SNNCPU
import SNNTensor
import SNNTraining
import Testing

/// SwiftSNN's optimisers take the same steps as PyTorch's: three steps on one [2, 3] float64
/// parameter, compared with goldens written by scripts/make_optimizer_fixture.py.
@Suite("optimizers against PyTorch's steps")
struct OptimizersTests {
    struct Case: Decodable, CustomStringConvertible, Sendable {
        let name: String, kind: String
        let learning_rate: Double, weight_decay: Double
        let parameters_after_each_step: [[Double]]
        let state_after_last_step: [String: [Double]]
        var description: String { name }
    }

    struct Fixture: Decodable {
        let shape: [Int]
        let initial: [Double]
        let gradients: [[Double]]
        let cases: [Case]
    }

    static let fixture: Fixture? = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/optimizer/steps.json")
        return (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(Fixture.self, from: $0) }
    }()

    static var cases: [Case] { fixture?.cases ?? [] }

    /// Float64 on both sides and the same formulas, grouped a little differently (PyTorch's
    /// fused addcdiv, foreach kernels): a few ulps per step, so 1e-12 relative. The absolute
    /// part, 1e-14, covers the parameter entry that starts at 0 (an ulp of 1 is 2.2e-16).
    private static func expectClose(_ actual: [Double], _ expected: [Double], _ what: String,
                                    sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.count == expected.count, "\(what): count", sourceLocation: sourceLocation)
        for (i, (a, e)) in zip(actual, expected).enumerated() where !(Swift.abs(a - e) <= 1e-14 + 1e-12 * Swift.abs(e)) {
            Issue.record("\(what): element \(i) is \(a), PyTorch \(e) (diff \(Swift.abs(a - e)))", sourceLocation: sourceLocation)
        }
    }

    @Test("the fixture is there and covers every optimizer kind")
    func fixturePresent() throws {
        let f = try #require(Self.fixture, "Fixtures/optimizer/steps.json is missing or unreadable")
        #expect(Set(f.cases.map(\.kind)) == Set(Optimizer.Kind.allCases.map(\.rawValue)))
    }

    @Test("three steps equal PyTorch's, parameters and state", arguments: cases)
    func steps(_ c: Case) throws {
        let f = try #require(Self.fixture)
        let kind = try #require(Optimizer.Kind(rawValue: c.kind))
        let optimizer = Optimizer(kind, learningRate: c.learning_rate, weightDecay: c.weight_decay)
        let p = Tensor(doubles: f.initial, shape: f.shape, dtype: .float64, device: .reference)
        for (step, g) in f.gradients.enumerated() {
            let gradient = Tensor(doubles: g, shape: f.shape, dtype: .float64, device: .reference)
            optimizer.step([(key: "w", value: p)], gradients: ["w": gradient])
            Self.expectClose(p.toDoubles(), c.parameters_after_each_step[step], "\(c) step \(step + 1)")
        }
        for (key, expected) in c.state_after_last_step {
            let state = try #require(optimizer.state["w.\(key)"], "\(c): no state w.\(key)")
            Self.expectClose(state.toDoubles(), expected, "\(c) state \(key)")
        }
    }

    @Test("the flat step over all parameters at once gives the per-parameter steps' bits", arguments: cases)
    func flatStep(_ c: Case) throws {
        let f = try #require(Self.fixture)
        let kind = try #require(Optimizer.Kind(rawValue: c.kind))
        // Three parameters of different shapes; the flat side is moved into one buffer.
        let shapes = [[2, 3], [5], [1, 4, 2]]
        let r = RandomGenerator(seed: UInt64(c.name.utf8.count))
        let initial = shapes.map { Tensor.normal($0, generator: r, dtype: .float32, device: .reference) }
        let perView = initial.map { $0.contiguous().detached() }
        let flatSide = initial.map { $0.contiguous().detached() }
        let named = { (ps: [Tensor]) in ps.enumerated().map { (key: "p\($0.offset)", value: $0.element) } }
        let flat = Tensor.flattenParameters(flatSide)
        let buffer = GradientBuffer(parameters: flatSide)
        let (a, b) = (Optimizer(kind, learningRate: c.learning_rate, weightDecay: c.weight_decay),
                      Optimizer(kind, learningRate: c.learning_rate, weightDecay: c.weight_decay))
        for _ in f.gradients.indices {
            let grads = shapes.map { Tensor.normal($0, generator: r, dtype: .float32, device: .reference) }
            a.step(named(perView), gradients: Dictionary(uniqueKeysWithValues: grads.enumerated().map { ("p\($0.offset)", $0.element) }))
            for (view, g) in zip(buffer.views, grads) { view.assign(g) }
            b.step(flat: flat, gradients: buffer.flat, named: named(flatSide))
        }
        for (x, y) in zip(perView, flatSide) {
            #expect(x.toFloats() == y.toFloats(), "\(c)")
            #expect(y.storage === flat.storage, "\(c): the parameter is a view into the flat buffer")
        }
    }

    @Test("on the CPU the fused flat step gives the bits of the composite per-parameter steps, split across cores",
          arguments: Optimizer.Kind.allCases, [0.0, 0.05])
    func fusedOnTheCPU(kind: Optimizer.Kind, weightDecay: Double) throws {
        CPUBackend.register()
        let backend = try #require(Device.cpu.backend as? any FusedOptimizerBackend, "the CPU backend has a fused step")
        #expect(backend.fusesOptimizerSteps)
        // 77 100 + 1 111 + 105 floats: several ranges per core, a partial last vector.
        let shapes = [[257, 300], [1_111], [3, 5, 7]]
        let r = RandomGenerator(seed: 91)
        let initial = shapes.map { Tensor.normal($0, std: 0.1, generator: r, dtype: .float32, device: .cpu).toFloats() }
        let perView = zip(initial, shapes).map { Tensor($0, shape: $1) }
        let flatSide = zip(initial, shapes).map { Tensor($0, shape: $1) }
        let named = { (ps: [Tensor]) in ps.enumerated().map { (key: "p\($0.offset)", value: $0.element) } }
        let flat = Tensor.flattenParameters(flatSide)
        let buffer = GradientBuffer(parameters: flatSide)
        let (composite, fused) = (Optimizer(kind, learningRate: 0.01, weightDecay: weightDecay),
                                  Optimizer(kind, learningRate: 0.01, weightDecay: weightDecay))
        for _ in 0..<3 {
            let grads = shapes.map { Tensor.normal($0, generator: r, dtype: .float32, device: .cpu) }
            composite.step(named(perView),
                           gradients: Dictionary(uniqueKeysWithValues: grads.enumerated().map { ("p\($0.offset)", $0.element) }))
            for (view, g) in zip(buffer.views, grads) { view.assign(g) }
            fused.step(flat: flat, gradients: buffer.flat, named: named(flatSide))
        }
        for (i, (x, y)) in zip(perView, flatSide).enumerated() {
            let (a, b) = (x.toFloats(), y.toFloats())
            let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(kind), decay \(weightDecay): parameter \(i) differs in \(differing) of \(a.count) values")
        }
        for (key, state) in composite.state.sorted(by: { $0.key < $1.key }) {
            let flatState = try #require(fused.state[key], "no fused state \(key)")
            #expect(state.toFloats().map(\.bitPattern) == flatState.toFloats().map(\.bitPattern), "\(kind): state \(key)")
        }
        #expect(zip(initial, flatSide).allSatisfy { $0 != $1.toFloats() }, "the steps must move every parameter")
    }
}
