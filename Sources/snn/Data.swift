import ArgumentParser
import Foundation
import SNNData

/// `snn data ...`: look inside data files.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Prepare and inspect data sets.", subcommands: [DataPrepare.self, DataInspect.self])
}

/// `snn data prepare`: integrate every recording of an event data set into its frame cache.
struct DataPrepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Fill the frame cache of DVSCIFAR10 or NCaltech101 so training reads frames, not events.",
        discussion: "The cache lives in DATA-DIR/.snn-frames/<options>/ and is safe to delete. CIFAR needs no preparation.")

    @Option(name: .customLong("dataset"), help: "DVSCIFAR10 or NCaltech101.")
    var dataset: String
    @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "The folder of class folders.")
    var dataDir: String
    @Option(name: [.customLong("T"), .customShort("T")], help: "Frames per recording.")
    var timesteps: Int = 10
    @Flag(name: .customLong("skip-corrupt"), help: "Skip unreadable recordings and say how many.")
    var skipCorrupt = false

    func validate() throws {
        guard EventFolderDataset.Kind(rawValue: dataset) != nil else { throw ValidationError("--dataset accepts DVSCIFAR10, NCaltech101; got \(dataset)") }
        guard timesteps >= 1 else { throw ValidationError("--T must be positive, got \(timesteps)") }
    }

    func run() throws {
        SNN.prepare()
        guard let kind = EventFolderDataset.Kind(rawValue: dataset) else { return }
        let terminal = isatty(STDOUT_FILENO) != 0
        let start = Date()
        var total = 0, skipped = 0
        for train in [true, false] {
            let split = train ? "train" : "test"
            let set: EventFolderDataset
            do {
                set = try EventFolderDataset(kind: kind, root: dataDir, train: train, timesteps: timesteps, augment: false, seed: 0,
                                             skipCorrupt: skipCorrupt) { done, count in
                    guard terminal else { return }
                    let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-3)
                    print(String(format: "\r%@ %d/%d recordings, %.0f/s", split, done, count, rate), terminator: "")
                    fflush(stdout)
                }
            } catch {
                throw CLIError("\(error)")
            }
            if terminal { print("") }
            total += set.count
            skipped += set.skipped.count
        }
        let cache = "\(dataDir)/.snn-frames/\(EventFolderDataset.cacheFolder(kind: kind, timesteps: timesteps, size: 48))"
        print("prepared \(total) recordings\(skipped > 0 ? ", skipped \(skipped) unreadable" : "") in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \(cache)")
    }
}

/// `snn data inspect FILE`: what an event file holds.
struct DataInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print what a data file holds: events, sensor size and time span, or images and labels.",
        discussion: """
            Formats: aedat2 (jAER AEDAT 2.0: CIFAR10-DVS, DVS128), nmnist and ncaltech101 (the ATIS 40-bit \
            encoding; SLAYER's .bs2 files are the same), cifar-bin and cifar-py (CIFAR-10 batches; \
            cifar100-bin and cifar100-py for CIFAR-100). Without --format it is inferred from the header \
            ('#!AER-DAT2.0', a pickle), the name (data_batch_*, test_batch, train, test) or the extension \
            (.aedat, .bin, .bs2; .bin files are N-MNIST-sized unless an event lies outside 34×34, then \
            N-Caltech101's 240×180).
            """)

    @Argument(help: "The file.")
    var file: String

    @Option(help: "aedat2, nmnist or ncaltech101; inferred when omitted.")
    var format: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if let f = format, !DataInspect.formats.contains(f) {
            throw ValidationError("--format accepts \(DataInspect.formats.joined(separator: ", ")); got \(f)")
        }
    }

    /// The label a class-folder layout gives a file: the folder's name when the file name
    /// repeats it (`airplane/cifar10_airplane_3.aedat`) or the folder is a digit (N-MNIST) or a
    /// Caltech101 class (`image_0001.bin`).
    static func classFolderLabel(file: String, folder: String) -> String? {
        if file.contains("_\(folder)_") || (folder.count == 1 && folder.first?.isNumber == true) || file.hasPrefix("image_") {
            return folder
        }
        return nil
    }

    static let formats = ["aedat2", "nmnist", "ncaltech101", "cifar-bin", "cifar-py", "cifar100-bin", "cifar100-py"]

    /// The format named or inferred from the first bytes, the name and the extension.
    private func detect() throws -> String {
        if let format { return format }
        let head = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: 16)) ?? nil
        if let head, head.starts(with: Data("#!AER-DAT2".utf8)) { return "aedat2" }
        let name = URL(fileURLWithPath: file).lastPathComponent
        let pickle = head?.first == 0x80
        if name.hasPrefix("data_batch_") || name.hasPrefix("test_batch") { return pickle ? "cifar-py" : "cifar-bin" }
        if ["train", "test"].contains(name) && pickle { return "cifar100-py" }
        if ["train.bin", "test.bin"].contains(name) { return "cifar100-bin" }
        switch URL(fileURLWithPath: file).pathExtension.lowercased() {
        case "aedat": return "aedat2"
        case "bin", "bs2": return "nmnist"
        default: throw CLIError("\(file): cannot tell the format from the header or the extension; pass --format aedat2|nmnist|ncaltech101")
        }
    }

    func run() throws {
        var format = try detect()
        if format.hasPrefix("cifar") { return try inspectImages(format) }
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
        // In the class-folder layouts (CIFAR10-DVS, N-Caltech101, N-MNIST) the folder is the label.
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
        if let label = DataInspect.classFolderLabel(file: URL(fileURLWithPath: file).lastPathComponent, folder: folder) {
            object["label"] = label
        }
        if json { return try Output.printJSON(object) }
        print("\(file): \(format), \(events.count) events on a \(events.width)×\(events.height) sensor\(object["label"].map { ", label \($0)" } ?? "")")
        if let first = events.timestamp.first, let last = events.timestamp.last {
            print("time \(first)–\(last) µs (\(String(format: "%.3f", Double(last - first) / 1e6)) s), \(on) ON / \(events.count - on) OFF")
        }
    }

    /// CIFAR batches: image count, size and label histogram.
    private func inspectImages(_ format: String) throws {
        let variant: CIFARBinary.Variant = format.hasPrefix("cifar100") ? .cifar100 : .cifar10
        let batch: CIFARBinary.Batch
        do {
            batch = format.hasSuffix("-py") ? try CIFARPython.read(file, variant: variant) : try CIFARBinary.read(file, variant: variant)
        } catch {
            throw CLIError("\(error)")
        }
        var counts = [Int](repeating: 0, count: variant.classes)
        for l in batch.labels { counts[l] += 1 }
        let object: [String: Any] = ["file": file, "format": format, "images": batch.count, "width": 32, "height": 32,
                                     "channels": 3, "classes": variant.classes, "label_counts": counts,
                                     "first_labels": Array(batch.labels.prefix(10))]
        if json { return try Output.printJSON(object) }
        print("\(file): \(format), \(batch.count) images of 3×32×32, \(variant.classes) classes")
        print("first labels: \(batch.labels.prefix(10).map(String.init).joined(separator: " "))")
    }
}
