import Foundation
import SNNReports
import Testing

@Suite("HTML report")
struct ReportTests {
    /// A run folder as snn train and snn analyze write it, with `epochs` epochs.
    func makeRun(_ name: String, epochs: Int, fisher: Bool, landscape: Bool) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-report-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/analysis", withIntermediateDirectories: true)
        var metrics = "epoch,train_loss,train_acc,test_loss,test_acc,lr,samples_per_second,firing_rate/layers.0.lif,firing_rate/layers.1.lif,information_centroid\n"
        for e in 1...epochs { metrics += "\(e),\(2.0 / Double(e)),\(0.2 * Double(e)),\(2.5 / Double(e)),\(0.15 * Double(e)),0.001,80,0.05,0.1,\(3.0 - 0.1 * Double(e))\n" }
        try metrics.write(toFile: dir + "/metrics.csv", atomically: true, encoding: .utf8)
        if fisher { try "epoch,t,fisher_information\n2,1,0.3\n2,2,0.2\n2,3,0.1\n4,1,0.5\n4,2,0.2\n4,3,0.05\n".write(toFile: dir + "/fisher.csv", atomically: true, encoding: .utf8) }
        if landscape {
            var loss: [[Double]] = []
            for i in -1...1 { loss.append((-1...1).map { (j: Int) -> Double in Double(i * i + j * j) + 0.5 }) }
            let object: [String: Any] = ["coordinates": [-1.0, 0.0, 1.0], "loss": loss]
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: dir + "/analysis/landscape.json"))
        }
        let summary: [String: Any] = ["best_test_accuracy": 0.6, "best_epoch": epochs, "config": ["loss": ["trt": [:]], "timesteps": 3],
                                      "environment": ["swiftsnn": "0.1.0"]]
        try JSONSerialization.data(withJSONObject: summary).write(to: URL(fileURLWithPath: dir + "/summary.json"))
        return dir
    }

    @Test("exponential smoothing: s0 = x0, s_i = w s_{i-1} + (1 - w) x_i")
    func smoothing() {
        #expect(Report.smoothed([1, 3, 5], weight: 0.5) == [1, 2, 3.5])
        #expect(Report.smoothed([4, 0], weight: 0) == [4, 0])
        #expect(Report.smoothed([], weight: 0.5).isEmpty)
    }

    @Test("two runs overlay in every figure they have; what neither has is said, not an error")
    func figures() throws {
        let a = try makeRun("a", epochs: 4, fisher: true, landscape: true), b = try makeRun("b", epochs: 3, fisher: false, landscape: false)
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        let runs = try [a, b].map(RunRecord.load)
        let figures = Report.figures(runs, smoothing: 0.5)
        let byStem = Dictionary(figures.map { ($0.stem, $0) }, uniquingKeysWith: { x, _ in x })
        // Loss and accuracy: a raw and a smoothed line per run.
        for stem in ["train_loss", "test_loss", "train_acc", "test_acc"] {
            let svg = try #require(byStem[stem]?.svg, "\(stem)")
            #expect(svg.components(separatedBy: "class=\"series\"").count - 1 == 4, "\(stem)")
            #expect(svg.contains("<text class=\"xlabel\"") && svg.contains(">epoch<") && svg.contains("class=\"ylabel\""))
        }
        #expect(byStem["train_loss"]?.csv.split(separator: "\n").count == 1 + 4 + 3)
        // FI: one line per measured epoch of run a; IC for both runs; rates: bars for 2 layers × 2 runs.
        #expect(byStem["fisher_information"]?.svg?.components(separatedBy: "class=\"series\"").count == 3)
        #expect(byStem["information_centroid"]?.svg?.components(separatedBy: "class=\"series\"").count == 3)
        #expect(byStem["firing_rates"]?.svg?.components(separatedBy: "class=\"bar\"").count == 5)
        // The landscape: 3×3 cells and contour lines around the minimum at the centre.
        let landscape = try #require(byStem["landscape_1"]?.svg)
        #expect(landscape.components(separatedBy: "class=\"cell\"").count == 10 && landscape.contains("class=\"contour\""))
        // And in 3-D: 2×2 shaded quadrilaterals between the 3×3 points, the highest corner drawn
        // highest on the page (the minimum is at the centre).
        let surface = try #require(byStem["landscape_1_3d"]?.svg)
        #expect(surface.components(separatedBy: "<polygon class=\"cell\"").count - 1 == 4, "\(surface)")
        #expect(surface.contains(">loss ") && surface.contains("direction 1 →") && surface.contains("direction 2 →"))
        #expect(!surface.contains("nan") && !surface.contains("inf"))
        let html = Report.html(runs, figures: figures)
        #expect(html.hasPrefix("<!DOCTYPE html>") && !html.contains("<script"))
        #expect(!html.contains("src=") && !html.contains("href="), "nothing fetched")
        #expect(html.contains("No operations or energy measured"), "a missing series is said")
        #expect(html.components(separatedBy: "<svg").count - 1 == figures.filter { $0.svg != nil }.count)
    }

    @Test("a folder that holds no run is refused with what was expected")
    func emptyFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-report-empty-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: ReportError.self) { try RunRecord.load(dir) }
        #expect(throws: ReportError.self) { try RunRecord.load(dir + "/missing") }
        do { _ = try RunRecord.load(dir) } catch { #expect("\(error)".contains("holds no run (no summary.json and no metrics.csv)")) }
    }

    @Test("text in figures is escaped")
    func escaping() {
        #expect(SVG.escape("a<b & \"c\">") == "a&lt;b &amp; &quot;c&quot;&gt;")
        let svg = SVG.lineChart(title: "<x>", xLabel: "e", yLabel: "y", series: [SVG.Series(name: "r&d", points: [(1, 1), (2, 3)], color: "#000")])
        #expect(svg.contains("&lt;x&gt;") && svg.contains("r&amp;d") && !svg.contains("<x>"))
    }
}
