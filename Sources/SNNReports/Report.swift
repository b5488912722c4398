import Foundation

/// What a run directory holds for a report: its summary, per-epoch metrics, Fisher information
/// and the outputs of `snn analyze ... --output RUN/analysis`. Every part is optional; a report
/// says which are missing instead of failing.
public struct RunRecord {
    public var directory: String
    public var name: String
    /// `summary.json`, when the run wrote one.
    public var summary: [String: Any]?
    /// `metrics.csv`: column name → value per epoch row, and the epochs.
    public var epochs: [Double] = []
    public var columns: [String: [Double]] = [:]
    /// `fisher.csv`: epoch → FI_t for t = 1...T.
    public var fisher: [(epoch: Int, values: [Double])] = []
    /// `analysis/landscape.json` and `analysis/rates.json`.
    public var landscape: [String: Any]?
    public var rates: [String: Any]?

    /// Reads `directory`; refuses a folder that holds no run at all (no metrics, no summary).
    public static func load(_ directory: String) throws -> RunRecord {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder), isFolder.boolValue else {
            throw ReportError("\(directory): no such run folder")
        }
        let config = (json("\(directory)/summary.json")?["config"] as? [String: Any])
        var record = RunRecord(directory: directory, name: runLabel(directory, config: config))
        record.summary = json("\(directory)/summary.json")
        if let table = csv("\(directory)/metrics.csv"), let epochs = table["epoch"] {
            record.epochs = epochs
            record.columns = table
        }
        if let table = csv("\(directory)/fisher.csv"), let e = table["epoch"], let t = table["t"], let fi = table["fisher_information"] {
            var byEpoch: [Int: [(Int, Double)]] = [:]
            for k in 0..<min(e.count, t.count, fi.count) { byEpoch[Int(e[k]), default: []].append((Int(t[k]), fi[k])) }
            record.fisher = byEpoch.keys.sorted().map { ($0, byEpoch[$0]!.sorted { $0.0 < $1.0 }.map(\.1)) }
        }
        record.landscape = json("\(directory)/analysis/landscape.json")
        record.rates = json("\(directory)/analysis/rates.json")
        guard record.summary != nil || !record.epochs.isEmpty else {
            throw ReportError("\(directory): holds no run (no summary.json and no metrics.csv); expected a folder snn train wrote, runs/result/<run>")
        }
        return record
    }

    /// "TRT T=8" from the configuration, else the folder's name (``Report/figures(_:smoothing:)``
    /// numbers runs that would share a label).
    static func runLabel(_ directory: String, config: [String: Any]?) -> String {
        guard let config, let loss = config["loss"] as? [String: Any], let method = loss.keys.first else {
            return URL(fileURLWithPath: directory).lastPathComponent
        }
        return method.uppercased() + (config["timesteps"].map { " T=\($0)" } ?? "")
    }

    static func json(_ path: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// A CSV file with a header as columns of numbers (non-numbers become NaN).
    static func csv(_ path: String) -> [String: [Double]]? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = lines.first else { return nil }
        var columns: [String: [Double]] = [:]
        for (k, name) in header.enumerated() { columns[name] = lines.dropFirst().map { k < $0.count ? Double($0[k]) ?? .nan : .nan } }
        return columns
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One self-contained HTML report of one or more runs (inline SVG and CSS, no scripts, nothing
/// fetched), and each figure as an SVG file and its numbers as CSV.
public enum Report {
    /// Exponential smoothing: s_0 = x_0, s_i = w·s_{i-1} + (1 - w)·x_i (TRT-SPEC.md §5).
    public static func smoothed(_ x: [Double], weight w: Double) -> [Double] {
        var out: [Double] = []
        for v in x { out.append(out.last.map { w * $0 + (1 - w) * v } ?? v) }
        return out
    }

    /// A figure: its file stem, its SVG (or nil with the reason it is missing) and its numbers.
    public struct Figure {
        public var stem: String
        public var title: String
        public var svg: String?
        public var missing: String?
        public var csv: String
    }

    /// The figures of `runs`, in report order.
    public static func figures(_ runs: [RunRecord], smoothing: Double) -> [Figure] {
        let runs = distinctNames(runs)
        func color(_ i: Int) -> String { SVG.palette[i % SVG.palette.count] }
        var figures: [Figure] = []
        for (column, title, axis) in [("train_loss", "training loss", "loss"), ("test_loss", "test loss", "loss"),
                                      ("train_acc", "training accuracy", "accuracy"), ("test_acc", "test accuracy", "accuracy")] {
            var series: [SVG.Series] = []
            var csv = "run,epoch,\(column),smoothed\n"
            for (i, run) in runs.enumerated() {
                guard let values = run.columns[column], !values.isEmpty else { continue }
                let smooth = smoothed(values, weight: smoothing)
                series.append(SVG.Series(name: "\(run.name) raw", points: zip(run.epochs, values).map { ($0, $1) }, dashed: true, color: color(i)))
                series.append(SVG.Series(name: "\(run.name) smoothed", points: zip(run.epochs, smooth).map { ($0, $1) }, color: color(i)))
                for k in 0..<values.count { csv += "\(run.name),\(run.epochs[k]),\(values[k]),\(smooth[k])\n" }
            }
            figures.append(Figure(stem: column, title: "\(title) (smoothing \(smoothing))",
                                  svg: series.isEmpty ? nil : SVG.lineChart(title: "\(title), raw and smoothed (w = \(smoothing))", xLabel: "epoch",
                                                                            yLabel: axis, series: series, integerX: true),
                                  missing: series.isEmpty ? "no run has per-epoch \(column) (metrics.csv)" : nil, csv: csv))
        }
        // Fisher information per timestep, one line per measured epoch and run.
        var fiSeries: [SVG.Series] = []
        var fiCSV = "run,epoch,t,fisher_information\n"
        for (i, run) in runs.enumerated() {
            for (k, (epoch, values)) in run.fisher.enumerated() {
                // The run's colour; earlier epochs dashed, the last solid.
                fiSeries.append(SVG.Series(name: "\(run.name) epoch \(epoch)", points: values.enumerated().map { (Double($0.offset + 1), $0.element) },
                                           dashed: k < run.fisher.count - 1, color: color(i)))
                for (t, v) in values.enumerated() { fiCSV += "\(run.name),\(epoch),\(t + 1),\(v)\n" }
            }
        }
        figures.append(Figure(stem: "fisher_information", title: "Fisher information per timestep",
                              svg: fiSeries.isEmpty ? nil : SVG.lineChart(title: "Fisher information per timestep", xLabel: "timestep t",
                                                                           yLabel: "FI_t", series: fiSeries, integerX: true),
                              missing: fiSeries.isEmpty ? "no Fisher information was measured (snn train --observe_fi 1 --fi_epochs ...)" : nil, csv: fiCSV))
        // The information centroid over epochs.
        var icSeries: [SVG.Series] = []
        var icCSV = "run,epoch,information_centroid\n"
        for (i, run) in runs.enumerated() {
            guard let ic = run.columns["information_centroid"] else { continue }
            let points = zip(run.epochs, ic).filter { $0.1.isFinite }.map { (x: $0.0, y: $0.1) }
            guard !points.isEmpty else { continue }
            icSeries.append(SVG.Series(name: run.name, points: points, color: color(i)))
            for p in points { icCSV += "\(run.name),\(p.x),\(p.y)\n" }
        }
        figures.append(Figure(stem: "information_centroid", title: "information centroid",
                              svg: icSeries.isEmpty ? nil : SVG.lineChart(title: "information centroid over training", xLabel: "epoch",
                                                                           yLabel: "IC (timestep)", series: icSeries, integerX: true),
                              missing: icSeries.isEmpty ? "no information centroid was measured (snn train --observe_ic 1)" : nil, csv: icCSV))
        // Firing rates per spiking layer: the last epoch's test-set rates from metrics.csv.
        let layers = Array(Set(runs.flatMap { $0.columns.keys.filter { $0.hasPrefix("firing_rate/") } })).sorted()
        var rateCSV = "run,layer,firing_rate\n"
        let rateSeries = runs.enumerated().map { i, run -> (name: String, values: [Double], color: String) in
            let values = layers.map { run.columns[$0]?.last ?? .nan }
            for (l, v) in zip(layers, values) { rateCSV += "\(run.name),\(l.dropFirst("firing_rate/".count)),\(v)\n" }
            return (run.name, values, color(i))
        }
        figures.append(Figure(stem: "firing_rates", title: "firing rate per spiking layer",
                              svg: layers.isEmpty ? nil : SVG.barChart(title: "firing rate per spiking layer (test set, last epoch)", yLabel: "firing rate",
                                                                       groups: layers.map { String($0.dropFirst("firing_rate/".count)) }, series: rateSeries),
                              missing: layers.isEmpty ? "no firing rates in metrics.csv" : nil, csv: rateCSV))
        // Loss landscapes, one per run that has one.
        for (i, run) in runs.enumerated() {
            guard let l = run.landscape, let axis = l["coordinates"] as? [Double], let loss = l["loss"] as? [[Double]] else { continue }
            var csv = "x,y,loss\n"
            for (a, row) in zip(axis, loss) { for (b, v) in zip(axis, row) { csv += "\(a),\(b),\(v)\n" } }
            figures.append(Figure(stem: "landscape_\(i + 1)", title: "loss landscape: \(run.name)",
                                  svg: SVG.heatmap(title: "loss landscape: \(run.name)", axis: axis, values: loss), missing: nil, csv: csv))
            figures.append(Figure(stem: "landscape_\(i + 1)_3d", title: "loss landscape in 3-D: \(run.name)",
                                  svg: SVG.surface(title: "loss landscape in 3-D: \(run.name)", axis: axis, values: loss), missing: nil, csv: csv))
        }
        if !runs.contains(where: { $0.landscape != nil }) {
            figures.append(Figure(stem: "landscape", title: "loss landscape", svg: nil,
                                  missing: "no run has a landscape (snn analyze landscape --checkpoint RUN/weights/best --output RUN/analysis)", csv: ""))
        }
        return figures
    }

    /// `runs` with a number after names that more than one run has ("TRT T=4 #2").
    static func distinctNames(_ runs: [RunRecord]) -> [RunRecord] {
        var seen: [String: Int] = [:]
        let counts = Dictionary(runs.map { ($0.name, 1) }, uniquingKeysWith: +)
        return runs.map { run in
            guard counts[run.name, default: 0] > 1 else { return run }
            var copy = run
            seen[run.name, default: 0] += 1
            copy.name = "\(run.name) #\(seen[run.name]!)"
            return copy
        }
    }

    /// The HTML page: figures, then for each run its energy table (when measured), summary,
    /// configuration and environment.
    /// A row of a reproduction table: this run's best test accuracy beside the paper's.
    public struct Comparison {
        public var method: String
        public var accuracy: Double
        public var paper: Double?
        public var epochs: Int
        public init(method: String, accuracy: Double, paper: Double?, epochs: Int) {
            (self.method, self.accuracy, self.paper, self.epochs) = (method, accuracy, paper, epochs)
        }
    }

    public static func html(_ runs: [RunRecord], figures: [Figure], title: String = "SwiftSNN report",
                            comparison: [Comparison] = [], paperEpochs: Int = 300) -> String {
        let runs = distinctNames(runs)
        var body = "<h1>\(SVG.escape(title))</h1>\n<p>\(runs.count) run\(runs.count == 1 ? "" : "s"): "
            + runs.map { SVG.escape($0.name) }.joined(separator: ", ") + "</p>\n"
        if !comparison.isEmpty {
            body += "<section id=\"comparison\"><h2>best test accuracy beside the paper's</h2>\n<table>\n"
            body += "<tr><td>method</td><td>epochs here</td><td>this run</td><td>paper (\(paperEpochs) epochs)</td></tr>\n"
            for c in comparison {
                let paper = c.paper.map { String(format: "%.2f%%", $0) } ?? "not in the specification"
                body += "<tr><td>\(SVG.escape(c.method))</td><td>\(c.epochs)</td><td>\(String(format: "%.2f%%", c.accuracy * 100))</td><td>\(paper)</td></tr>\n"
            }
            body += "</table></section>\n"
        }
        for f in figures {
            body += "<section class=\"figure\" id=\"\(f.stem)\">\n<h2>\(SVG.escape(f.title))</h2>\n"
            body += f.svg ?? "<p class=\"missing\">Not in these runs: \(SVG.escape(f.missing ?? "no data")).</p>\n"
            body += "</section>\n"
        }
        for run in runs {
            body += "<section class=\"run\">\n<h2>\(SVG.escape(run.name))</h2>\n<p><code>\(SVG.escape(run.directory))</code></p>\n"
            if let rates = run.rates {
                body += "<h3>operations and energy per sample</h3>\n<table>\n"
                for (key, label) in [("macs", "MACs (analog input)"), ("synaptic_operations", "synaptic operations"), ("ann_macs", "MACs as an ANN"),
                                     ("energy_joules", "energy (J)"), ("ann_energy_joules", "energy as an ANN (J)"),
                                     ("mac_energy_pj", "pJ per MAC"), ("ac_energy_pj", "pJ per accumulate")] {
                    if let v = rates[key] as? Double { body += "<tr><td>\(label)</td><td>\(SVG.label(v))</td></tr>\n" }
                }
                body += "</table>\n"
            } else {
                body += "<p class=\"missing\">No operations or energy measured (snn analyze rates --checkpoint RUN/weights/best --output RUN/analysis).</p>\n"
            }
            if let summary = run.summary {
                body += "<h3>summary</h3>\n<table>\n"
                for key in ["best_test_accuracy", "best_epoch", "final_test_accuracy", "epochs", "wall_seconds", "samples_per_second", "interrupted"] {
                    if let v = summary[key] { body += "<tr><td>\(key)</td><td>\(SVG.escape("\(v)"))</td></tr>\n" }
                }
                body += "</table>\n"
                for (title, key) in [("configuration", "config"), ("environment", "environment")] {
                    if let object = summary[key], let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
                        body += "<h3>\(title)</h3>\n<pre>\(SVG.escape(String(decoding: data, as: UTF8.self)))</pre>\n"
                    }
                }
            } else {
                body += "<p class=\"missing\">No summary.json (the run has not finished or was killed).</p>\n"
            }
            body += "</section>\n"
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(SVG.escape(title))</title>
            <style>
            body { font-family: sans-serif; margin: 2em; max-width: 1000px; color: #222; }
            section { margin-bottom: 2em; } h2 { font-size: 1.15em; } svg { max-width: 100%; height: auto; }
            table { border-collapse: collapse; } td { border: 1px solid #ccc; padding: 2px 8px; }
            pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 11px; } .missing { color: #a00; }
            </style></head><body>
            \(body)</body></html>

            """
    }
}
