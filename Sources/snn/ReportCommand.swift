import ArgumentParser
import Foundation
import SNNReports
import SNNTensor

/// `snn report`: one self-contained HTML page of one or more runs, and each figure as SVG, PNG and CSV.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML report of one or more runs (inline SVG, no scripts).",
        discussion: """
            Figures: training and test loss and accuracy per epoch, raw and smoothed (s_i = w·s_{i-1} + (1-w)·x_i); \
            Fisher information per timestep for every measured epoch (train --observe_fi) and the information \
            centroid over epochs (train --observe_ic); firing rate per spiking layer; the loss landscape and the \
            operations and energy of runs analysed with `snn analyze landscape|rates --output RUN/analysis`; \
            and each run's summary, configuration and environment. Several runs overlay with a legend. A series \
            that no run has is said in the report, never an error. Each figure is also written as SVG and PNG \
            (twice the SVG's size, drawn by librsvg, loaded when there: Debian's librsvg2-2; without it \
            one line says the PNGs were skipped) and its numbers as CSV into the figures folder.
            """)

    @Argument(help: "Run folders (runs/result/<run>).")
    var runs: [String]
    @Option(help: "The HTML file to write.")
    var output: String = "report.html"
    @Option(help: "Folder for each figure's SVG, PNG and CSV (default: the report's name without .html, plus _figures).")
    var figures: String?
    @Option(help: "Exponential smoothing weight w of the learning curves, in [0, 1).")
    var smoothing: Double = 0.5

    func validate() throws {
        if runs.isEmpty { throw FlagError("name at least one run folder (runs/result/<run>)") }
        try requireFinite([("--smoothing", smoothing)])
        if smoothing < 0 || smoothing >= 1 { throw FlagError("--smoothing must be in [0, 1), got \(smoothing)") }
        do { try FileSystem.checkCreatable(FileSystem.parent(output)) } catch { throw FlagError("--output: \(error)") }
    }

    func run() throws {
        let records: [RunRecord]
        do { records = try runs.map(RunRecord.load) } catch { throw CLIError("\(error)") }
        let all = Report.figures(records, smoothing: smoothing)
        let folder = figures ?? (output.hasSuffix(".html") ? String(output.dropLast(5)) : output) + "_figures"
        let png = try ReportCommand.write(Report.html(records, figures: all), figures: all, to: output, figuresIn: folder)
        let drawn = all.filter { $0.svg != nil }
        print("\(output): \(records.count) run\(records.count == 1 ? "" : "s"), \(drawn.count) figures; \(png ? "SVG, PNG" : "SVG") and CSV of each in \(folder)/")
        for f in all where f.svg == nil { print("  not in these runs: \(f.title): \(f.missing ?? "")") }
    }

    /// Writes the page to `output` and each figure's SVG, PNG and CSV into `folder`; returns
    /// whether it wrote PNGs. Without librsvg it prints one line saying so and writes the rest.
    @discardableResult
    static func write(_ html: String, figures: [Report.Figure], to output: String, figuresIn folder: String) throws -> Bool {
        let renderer = PNGRenderer.shared
        if renderer == nil, figures.contains(where: { $0.svg != nil }), let reason = PNGRenderer.unavailable { print(reason) }
        do {
            try AtomicFile.write(Data(html.utf8), to: output, durable: false)
            for f in figures {
                if let svg = f.svg {
                    try AtomicFile.write(Data(svg.utf8), to: "\(folder)/\(f.stem).svg", durable: false)
                    if let renderer {
                        let png: Data
                        do { png = try renderer.png(fromSVG: svg) } catch { throw CLIError("\(folder)/\(f.stem).png: cannot draw it: \(error)") }
                        try AtomicFile.write(png, to: "\(folder)/\(f.stem).png", durable: false)
                    }
                }
                if !f.csv.isEmpty { try AtomicFile.write(Data(f.csv.utf8), to: "\(folder)/\(f.stem).csv", durable: false) }
            }
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(error)")
        }
        return renderer != nil
    }
}
