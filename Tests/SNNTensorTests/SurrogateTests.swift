import SNNTensor
import SNNTestSupport
import Testing

/// Where a surrogate's derivative is discontinuous (its primitive has a kink).
private func kinks(_ s: Surrogate) -> [Double] {
    switch s {
    case .triangle(let g): return [-g, 0, g]
    case .sigmoid: return []
    case .rectangle(let a): return [-a / 2, a / 2]
    }
}

@Suite("surrogates")
struct SurrogateTests {
    static let all: [Surrogate] = [
        .triangle(gamma: 1), .triangle(gamma: 0.5), .triangle(gamma: 2),
        .sigmoid(alpha: 1), .sigmoid(alpha: 4), .rectangle(width: 1), .rectangle(width: 0.5),
    ]

    @Test("contract: derivative equals the central finite difference of primitive (float64)", arguments: all)
    func derivativeIsPrimitivesSlope(s: Surrogate) {
        let h = 1e-6
        // 1201 points on [-3, 3], skipping those within 1e-3 of a kink.
        let points = (0...1200).map { -3 + 6 * Double($0) / 1200 + 1e-4 }
            .filter { u in kinks(s).allSatisfy { Swift.abs(u - $0) > 1e-3 } }
        #expect(points.count > 1100)
        let analytic = points.map { s.derivative($0) }
        let numeric = points.map { (s.primitive($0 + h) - s.primitive($0 - h)) / (2 * h) }
        assertClose(analytic, numeric, tolerance: .surrogateContract, "\(s)")
    }

    @Test("contract: the primitive runs from 0 to 1 and is continuous at the kinks; g ≥ 0", arguments: all)
    func primitiveLimits(s: Surrogate) {
        let far = 60 / s.parameter + 60
        #expect(Swift.abs(s.primitive(-far)) < 1e-12)
        #expect(Swift.abs(s.primitive(far) - 1) < 1e-12)
        #expect(Swift.abs(s.primitive(0) - 0.5) < 1e-12, "every surrogate here is symmetric about 0")
        for k in kinks(s) {
            #expect(Swift.abs(s.primitive(k + 1e-9) - s.primitive(k - 1e-9)) < 1e-8, "continuous at \(k)")
        }
        let grid = (0...2000).map { -5 + 10 * Double($0) / 2000 }
        #expect(grid.allSatisfy { s.derivative($0) >= 0 })
    }

    @Test("forward values by hand (TRT-SPEC §1)")
    func values() {
        // triangle: g(u) = (1/γ)²·max(γ - |u|, 0). γ = 1: g(0) = 1, g(±0.25) = 0.75, g(±1.5) = 0.
        // γ = 2: g(0) = 2/4 = 0.5, g(1) = 1/4.
        let t1 = Surrogate.triangle(gamma: 1)
        let t2 = Surrogate.triangle(gamma: 2)
        #expect(
            t1.derivative(0) == 1 && t1.derivative(0.25) == 0.75 && t1.derivative(-0.25) == 0.75
                && t1.derivative(1.5) == 0)
        #expect(t2.derivative(0) == 0.5 && t2.derivative(1) == 0.25)
        // sigmoid: g(u) = α σ(αu)(1 - σ(αu)); at 0, σ = 1/2, so g(0) = α/4.
        #expect(Swift.abs(Surrogate.sigmoid(alpha: 4).derivative(0) - 1) < 1e-15)
        // rectangle: 1/a inside |u| < a/2, else 0 (the edge itself is outside).
        let r = Surrogate.rectangle(width: 0.5)
        #expect(r.derivative(0.2) == 2 && r.derivative(-0.2) == 2 && r.derivative(0.25) == 0 && r.derivative(0.3) == 0)
    }

    @Test("parsing kind names and parameters")
    func parsing() {
        #expect(Surrogate(kind: "triangle", parameter: 1) == .triangle(gamma: 1))
        #expect(Surrogate(kind: "Sigmoid", parameter: 4) == .sigmoid(alpha: 4))
        #expect(Surrogate(kind: "rect", parameter: 0.5) == .rectangle(width: 0.5))
        #expect(Surrogate(kind: "atan", parameter: 2) == nil)
        #expect(Surrogate(kind: "triangle", parameter: 0) == nil)
        #expect(Surrogate(kind: "triangle", parameter: .infinity) == nil)
        #expect(Surrogate.sigmoid(alpha: 4).kind == "sigmoid" && Surrogate.sigmoid(alpha: 4).parameter == 4)
    }

    @Test("the backend's surrogateGradient is derivative, elementwise", arguments: all)
    func backendSurrogateGradient(s: Surrogate) {
        let u = RandomInputs(seed: 91).uniform([40], low: -3, high: 3)
        let g = Device.reference.backend.surrogateGradient(u, s)
        assertClose(g, u.toDoubles().map { s.derivative($0) }, shape: [40], .exact)
    }
}
