import ArgumentParser
import Foundation
import SNNData

/// `snn data ...`: look inside data files.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Prepare, arrange and inspect data sets.",
        subcommands: [DataPrepare.self, DataInspect.self, DataArrangeNMNIST.self])
}

/// `snn data prepare`: integrate every recording of an event data set into its frame cache, or
/// check that every JPEG of an ImageNet-style data set decodes.
struct DataPrepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Fill the frame cache of an event data set so training reads frames, not events; check every JPEG of ImageNet100.",
        discussion: """
            The frame cache lives in DATA-DIR/.snn-frames/<options>/ (with --cache-dir, DIR/<options>/) and is safe to \
            delete. When DATA-DIR cannot be written, frames go to a per-user cache, \
            $XDG_CACHE_HOME/swiftsnn/frames/<data folder>-<hash>/ (~/.cache when XDG_CACHE_HOME is unset), and \
            the command says so. CIFAR needs no preparation; for \
            ImageNet100 every image is decoded once and unreadable ones are listed.
            """)

    @Option(name: .customLong("dataset"), help: "DVSCIFAR10, NCaltech101, NMNIST, DVSGesture or ImageNet100.")
    var dataset: String
    @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "The data set's folder (see snn train --help).")
    var dataDir: String
    @Option(name: [.customLong("T"), .customShort("T")], help: "Frames per recording; default: the data set's (10).")
    var timesteps: Int?
    @Flag(name: [.customLong("skip-corrupt"), .customLong("skip_corrupt")], help: "Skip unreadable files and say how many.")
    var skipCorrupt = false
    @Option(name: [.customLong("dvs-frames"), .customLong("dvs_frames")], help: "DVSCIFAR10 frames: standard or reference (as for snn train).")
    var dvsFrames: String = "standard"
    @Option(name: [.customLong("frame-size"), .customLong("frame_size")], help: "Frame height and width; default 48 (34 for NMNIST).")
    var frameSize: Int?
    @Option(name: .customLong("classes"), help: "ImageNet100 classes: imagenet100, all, or a file of synsets.")
    var classes: String = "imagenet100"
    @Option(name: [.customLong("cache-dir"), .customLong("cache_dir")],
            help: ArgumentHelp("Cache frames in DIR/<options>/ instead of DATA-DIR/.snn-frames/<options>/.", valueName: "DIR"))
    var cacheDir: String?
    @OptionGroup var limits: ReaderLimitOptions

    func validate() throws {
        _ = try DatasetName.parse(dataset, among: [.dvsCIFAR10, .ncaltech101, .nmnist, .dvsGesture, .imagenet100])
        if let t = timesteps, t < 1 { throw FlagError("--T must be positive, got \(t)") }
        if let s = frameSize, s < 1 { throw FlagError("--frame-size must be positive, got \(s)") }
        if cacheDir?.isEmpty == true { throw FlagError("--cache-dir needs a folder") }
        guard EventFolderDataset.DVSFrames(rawValue: dvsFrames) != nil else { throw FlagError("--dvs-frames accepts standard, reference; got \(dvsFrames)") }
    }

    func run() throws {
        SNN.prepare()
        limits.apply()
        guard let name = DatasetName(named: dataset) else { return }
        let terminal = isatty(STDOUT_FILENO) != 0
        let start = Date()
        let options = DataOptions(augment: false, skipCorrupt: skipCorrupt, dvsFrames: EventFolderDataset.DVSFrames(rawValue: dvsFrames) ?? .standard,
                                  classes: classes, frameSize: frameSize, cacheDir: cacheDir)
        let progress = TerminalProgress(enabled: terminal)
        func show(_ split: String, _ done: Int, _ count: Int, _ unit: String) { progress.show(split, done, count, unit: unit) }
        let data = try name.loadForCommand(from: dataDir, timesteps: timesteps ?? name.defaultTimesteps, seed: 0, options: options,
                                           progress: { show($0, $1, $2, "samples") })
        if terminal { print("") }
        if name == .imagenet100 { return try verifyImages(data, start: start, show: show) }
        let counts = "\(data.train.count + data.test.count) samples (\(data.train.count) train, \(data.test.count) test)\(data.skipped.isEmpty ? "" : ", skipped \(data.skipped.count) unreadable")"
        let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
        // Filling the cache is this command's job: say so, and fail, when it could not be done.
        guard let cache = data.frameCache?.directory else {
            print("integrated \(counts) in \(seconds) s, but no frame cache could be written (see the note above)")
            throw ExitCode(1)
        }
        print("prepared \(counts) in \(seconds) s: \(cache)")
        if data.unwrittenFrames > 0 { throw ExitCode(1) }
    }

    /// Decodes every JPEG once, on all cores, and lists the unreadable ones.
    private func verifyImages(_ data: LoadedData, start: Date, show: (String, Int, Int, String) -> Void) throws {
        var bad: [String] = []
        var total = 0
        for (split, set) in [("train", data.train), ("val", data.test)] {
            guard let images = set as? ImageFolderDataset else { continue }
            var failures = [String?](repeating: nil, count: images.count)
            let lock = NSLock()
            var done = 0
            failures.withUnsafeMutableBufferPointer { failures in
                DispatchQueue.concurrentPerform(iterations: images.count) { i in
                    do { _ = try JPEG.read(images.files[i]) } catch { failures[i] = "\(error)" }
                    lock.withLock {
                        done += 1
                        if done % 64 == 0 || done == images.count { show(split, done, images.count, "images") }
                    }
                }
            }
            if isatty(STDOUT_FILENO) != 0 { print("") }
            bad += failures.compactMap { $0 }
            total += images.count
        }
        for line in bad.prefix(20) { print("unreadable: \(line)") }
        print("checked \(total) images in \(data.train.classes) classes in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \(bad.isEmpty ? "all readable" : "\(bad.count) unreadable (snn train --skip-corrupt replaces them by the next image of their class)")")
        if !bad.isEmpty && !skipCorrupt { throw ExitCode(1) }
    }
}

/// `snn data inspect FILE`: what an event file holds.
struct DataInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print what a data file holds: events, sensor size and time span, or images and labels.",
        discussion: """
            Formats: aedat2 (jAER AEDAT 2.0: CIFAR10-DVS, DVS128; cifar10-dvs is the same reader), aedat3 \
            (AEDAT 3.1: DVS128 Gesture; the labelled intervals of a *_labels.csv beside it are counted), \
            nmnist and ncaltech101 (the ATIS 40-bit encoding; SLAYER's .bs2 files are the same), cifar-bin \
            and cifar-py (CIFAR-10 batches; cifar100-bin and cifar100-py for CIFAR-100), jpeg (ImageNet), \
            nir (a network exported by snn export: see snn inspect-nir). \
            Without --format it is inferred from the header ('#!AER-DAT2.0', '#!AER-DAT3.1', a pickle, a \
            JPEG marker, HDF5's signature), the name (data_batch_*, test_batch, train, test) or the extension (.aedat, .bin, \
            .bs2, .jpg, .jpeg, .nir; .bin files are N-MNIST-sized unless an event lies outside 34×34, then \
            N-Caltech101's 240×180).
            """)

    @Argument(help: "The file.")
    var file: String

    @Option(help: "aedat2, aedat3, nmnist, cifar10-dvs, ncaltech101, cifar-bin, cifar-py, cifar100-bin, cifar100-py, jpeg or nir; inferred when omitted.")
    var format: String?

    @Flag(help: "Print one JSON object.")
    var json = false
    @OptionGroup var limits: ReaderLimitOptions

    func validate() throws {
        if let f = format, !DataInspect.formats.contains(f) {
            throw FlagError("--format accepts \(DataInspect.formats.joined(separator: ", ")); got \(f)")
        }
    }

    /// The label a class-folder layout gives a file: the folder's name when the file name
    /// repeats it (`airplane/cifar10_airplane_3.aedat`) or the folder is a digit (N-MNIST) or a
    /// Caltech101 class (`image_0001.bin`).
    static func classFolderLabel(file: String, folder: String) -> String? {
        let synset = folder.count == 9 && folder.first == "n" && folder.dropFirst().allSatisfy(\.isNumber)
        if file.contains("_\(folder)_") || (folder.count == 1 && folder.first?.isNumber == true) || file.hasPrefix("image_") || synset {
            return folder
        }
        return nil
    }

    static let formats = ["aedat2", "aedat3", "nmnist", "cifar10-dvs", "ncaltech101", "cifar-bin", "cifar-py", "cifar100-bin", "cifar100-py", "jpeg", "nir"]

    /// The format named or inferred from the first bytes, the name and the extension.
    private func detect() throws -> String {
        if let format { return format }
        let head = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: 16)) ?? nil
        if let head, head.starts(with: Data("#!AER-DAT2".utf8)) { return "aedat2" }
        if let head, head.starts(with: Data("#!AER-DAT3".utf8)) { return "aedat3" }
        if let head, head.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
        if let head, head.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return "nir" }
        let name = URL(fileURLWithPath: file).lastPathComponent
        let pickle = head?.first == 0x80
        if name.hasPrefix("data_batch_") || name.hasPrefix("test_batch") { return pickle ? "cifar-py" : "cifar-bin" }
        if ["train", "test"].contains(name) && pickle { return "cifar100-py" }
        if ["train.bin", "test.bin"].contains(name) { return "cifar100-bin" }
        switch URL(fileURLWithPath: file).pathExtension.lowercased() {
        case "aedat": return "aedat2"
        case "bin", "bs2": return "nmnist"
        case "jpg", "jpeg": return "jpeg"
        case "nir": return "nir"
        default: throw CLIError("\(file): cannot tell the format from the header or the extension; pass --format \(DataInspect.formats.joined(separator: "|"))")
        }
    }

    func run() throws {
        limits.apply()
        var format = try detect()
        if format.hasPrefix("cifar") && format != "cifar10-dvs" { return try inspectImages(format) }
        if format == "jpeg" { return try inspectJPEG() }
        if format == "nir" { return try InspectNIR.describe(file, json: json) }
        let events: EventStream
        var extra: [String: Any] = [:]
        do {
            switch format {
            case "aedat2", "cifar10-dvs": events = try EventFiles.readAEDAT2(file)
            case "aedat3":
                events = try EventFiles.readAEDAT3(file)
                let labels = file.replacingOccurrences(of: ".aedat", with: "") + "_labels.csv"
                if FileManager.default.fileExists(atPath: labels) {
                    extra["labelled_intervals"] = try EventFolderDataset.gestureLabels(labels).count
                    extra["labels_file"] = labels
                }
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
        object.merge(extra) { a, _ in a }
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
        if let n = extra["labelled_intervals"], let labels = extra["labels_file"] { print("\(n) labelled intervals in \(labels)") }
    }

    /// A JPEG: size, colour space and subsampling, after decoding it whole (so a damaged file shows).
    private func inspectJPEG() throws {
        let header: JPEG.Header
        do {
            header = try JPEG.readHeader(file)
            _ = try JPEG.read(file)
        } catch {
            throw CLIError("\(error)")
        }
        var object: [String: Any] = ["file": file, "format": "jpeg", "images": 1, "width": header.width, "height": header.height,
                                     "channels": 3, "colorspace": header.colorspace, "subsampling": header.subsampling]
        let url = URL(fileURLWithPath: file)
        if let label = DataInspect.classFolderLabel(file: url.lastPathComponent, folder: url.deletingLastPathComponent().lastPathComponent) {
            object["label"] = label
        }
        if json { return try Output.printJSON(object) }
        print("\(file): jpeg, \(header.width)×\(header.height) \(header.colorspace) (\(header.subsampling))\(object["label"].map { ", label \($0)" } ?? "")")
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

/// `snn data arrange-nmnist`: SLAYER's N-MNIST sample files laid out as N-MNIST is distributed.
struct DataArrangeNMNIST: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arrange-nmnist",
        abstract: "Lay out SLAYER's N-MNIST sample (<id>.bs2 with train*.txt and test*.txt) as Train/<digit>/ and Test/<digit>/.",
        discussion: """
            Reads the label lists in SOURCE (a # header, then id<TAB>label rows) and makes \
            OUTPUT/Train/<digit>/<id>.bin and OUTPUT/Test/<digit>/<id>.bin: symbolic links to SOURCE/<id>.bs2 \
            (absolute targets), or copies with --copy. Listed ids without a .bs2 file are counted and left out. \
            Re-running completes an interrupted run and does nothing on a complete one; an OUTPUT holding anything \
            else is refused before anything is written. Then: snn data prepare --dataset NMNIST --data-dir OUTPUT.
            """)

    @Option(help: ArgumentHelp("The folder of <id>.bs2 files and their label lists.", valueName: "DIR"))
    var source: String
    @Option(help: ArgumentHelp("The folder to make (or complete).", valueName: "DIR"))
    var output: String
    @Flag(help: "Copy the files instead of linking to them.")
    var copy = false

    func run() throws {
        let arrangement: NMNISTArrangement
        let made: [String: Int]
        do {
            arrangement = try NMNISTArrangement(source: source, output: output)
            made = try arrangement.apply(copy ? .copy : .link)
        } catch {
            throw CLIError("\(error)")
        }
        let count = { (split: String) in arrangement.samples.filter { $0.split == split }.count }
        let samples = "\(count("Train")) train and \(count("Test")) test samples"
        let new = made.values.reduce(0, +)
        if new == 0 {
            print("\(output) already holds these \(samples); nothing to do")
        } else {
            let how = copy ? "copies of" : "symbolic links to"
            let partly = new < arrangement.samples.count ? " (\(new) new, \(arrangement.samples.count - new) already there)" : ""
            print("arranged \(samples) in \(output) as \(how) the .bs2 files in \(source)\(partly)")
        }
        let missing = zip(arrangement.lists, zip(arrangement.missing, arrangement.listed)).filter { $0.1.0 > 0 }
        if !missing.isEmpty {
            let each = missing.map { "\($0.1.0) of \($0.1.1) in \($0.0)" }.joined(separator: ", ")
            print("left out \(arrangement.missing.reduce(0, +)) listed ids that have no .bs2 file in \(source) (\(each))")
        }
    }
}
