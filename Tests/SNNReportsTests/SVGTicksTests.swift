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

    @Test("integer ticks of an epoch axis keep the last epoch (a drifting sum gave 1.9999999999999998, not 2)")
    func integerTicks() {
        for last in 2...12 {
            let integers = SVG.ticks(1, Double(last)).filter { $0 == $0.rounded() }
            #expect(integers.last == Double(last) || Double(last).truncatingRemainder(dividingBy: integers.count > 1 ? integers[1] - integers[0] : 1) != 0,
                    "1...\(last): \(integers)")
        }
        #expect(SVG.ticks(1, 2).filter { $0 == $0.rounded() } == [1, 2])
    }
}
