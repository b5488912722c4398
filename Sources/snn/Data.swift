import ArgumentParser
import Foundation
import SNNData

/// `snn data ...`: look inside data files.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Inspect data set files.", subcommands: [DataInspect.self])
}

/// `snn data inspect FILE`: what an event file holds.
struct DataInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print what an event file holds: format, events, sensor size, time span, polarity counts.",
        discussion: """
            Formats: aedat2 (jAER AEDAT 2.0: CIFAR10-DVS, DVS128), nmnist and ncaltech101 (the ATIS 40-bit \
            encoding; SLAYER's .bs2 files are the same). Without --format it is inferred from the header \
            ('#!AER-DAT2.0') or the extension (.aedat, .bin, .bs2; .bin files are N-MNIST-sized unless an \
            event lies outside 34×34, then N-Caltech101's 240×180).
            """)

    @Argument(help: "The file.")
    var file: String

    @Option(help: "aedat2, nmnist or ncaltech101; inferred when omitted.")
    var format: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if let f = format, !["aedat2", "nmnist", "ncaltech101"].contains(f) {
            throw ValidationError("--format accepts aedat2, nmnist, ncaltech101 today; got \(f)")
        }
    }

    /// The format named or inferred from the first bytes and the extension.
    private func detect() throws -> String {
        if let format { return format }
        let head = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: 16)) ?? nil
        if let head, head.starts(with: Data("#!AER-DAT2".utf8)) { return "aedat2" }
        switch URL(fileURLWithPath: file).pathExtension.lowercased() {
        case "aedat": return "aedat2"
        case "bin", "bs2": return "nmnist"
        default: throw CLIError("\(file): cannot tell the format from the header or the extension; pass --format aedat2|nmnist|ncaltech101")
        }
    }

    func run() throws {
        var format = try detect()
        let events: EventStream
        do {
            switch format {
            case "aedat2": events = try EventFiles.readAEDAT2(file)
            case "ncaltech101": events = try EventFiles.readATIS(file, width: 240, height: 180)
            default:
                do {
                    events = try EventFiles.readATIS(file, width: 34, height: 34)
                } catch let error as DataFileError where self.format == nil && error.reason.contains("outside") {
                    format = "ncaltech101"
                    events = try EventFiles.readATIS(file, width: 240, height: 180)
                }
            }
        } catch {
            throw CLIError("\(error)")
        }
        let on = events.polarity.reduce(0) { $0 + Int($1) }
        var object: [String: Any] = [
            "file": file, "format": format, "events": events.count, "width": events.width, "height": events.height,
            "on_events": on, "off_events": events.count - on,
        ]
        if let first = events.timestamp.first, let last = events.timestamp.last {
            object["t_first_us"] = first
            object["t_last_us"] = last
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("\(file): \(format), \(events.count) events on a \(events.width)×\(events.height) sensor")
        if let first = events.timestamp.first, let last = events.timestamp.last {
            print("time \(first)–\(last) µs (\(String(format: "%.3f", Double(last - first) / 1e6)) s), \(on) ON / \(events.count - on) OFF")
        }
    }
}
