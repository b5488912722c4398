@testable import SNNReports
import Testing

@Suite("axis ticks")
struct SVGTicksTests {
    @Test("ticks are multiples of a round step and reach both ends when they fall on one", arguments: [
        (1.0, 2.0, [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]),
        (0.0, 3.0, [0.0, 1.0, 2.0, 3.0]),
        (1.0, 9.0, [2.0, 4.0, 6.0, 8.0]),
        (-0.3, 0.3, [-0.2, 0.0, 0.2]),
        (0.7, 0.7, [0.7]),
    ])
    func ticks(_ c: (Double, Double, [Double])) {
        let t = SVG.ticks(c.0, c.1)
        #expect(t.count == c.2.count, "\(t)")
        for (a, b) in zip(t, c.2) { #expect(abs(a - b) < 1e-12, "\(t)") }
        // Labels print the round value, never 1.7999999999.
        #expect(t.map(SVG.label).allSatisfy { $0.count <= 4 }, "\(t.map(SVG.label))")
    }
}
