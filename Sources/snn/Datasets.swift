import ArgumentParser
import Foundation
import SNNData
import SNNTensor

/// The data sets `snn train --dataset` and `snn data prepare` read, with the reference's
/// defaults (TRT-SPEC.md §7-8) and the layouts they are read from.
enum DatasetName: String, CaseIterable {
    case cifar10 = "CIFAR10", cifar100 = "CIFAR100", imagenet100 = "ImageNet100"
    case dvsCIFAR10 = "DVSCIFAR10", ncaltech101 = "NCaltech101", nmnist = "NMNIST", dvsGesture = "DVSGesture"
    /// SwiftSNN's built-in moving-shapes events, generated from the seed (no files).
    case synthetic = "synthetic"

    static let list = allCases.map(\.rawValue).joined(separator: ", ")

    /// The data set a user named: any case, with or without `-`, `_` or spaces (`cifar10`,
    /// `CIFAR-10`, `N-MNIST`, `dvs_gesture`), or `nil`.
    init?(named text: String) {
        func key(_ s: String) -> String { s.lowercased().filter { !"-_ ".contains($0) } }
        guard let match = DatasetName.allCases.first(where: { key($0.rawValue) == key(text) }) else { return nil }
        self = match
    }

    /// The data set `text` names, or a FlagError listing the names `flag` accepts
    /// (`among`: every data set unless a command takes fewer).
    static func parse(_ text: String, flag: String = "--dataset", among: [DatasetName] = allCases) throws -> DatasetName {
        guard let name = DatasetName(named: text), among.contains(name) else {
            throw FlagError("\(flag) accepts \(among.map(\.rawValue).joined(separator: ", ")) (in any case); got \(text)")
        }
        return name
    }

    /// Whether samples come from files under `--data-dir`.
    var readsFiles: Bool { self != .synthetic }

    /// The event-camera data sets' reader.
    var eventKind: EventFolderDataset.Kind? { EventFolderDataset.Kind(rawValue: rawValue) }

    var defaultTimesteps: Int {
        switch self {
        case .cifar10, .cifar100: return 6
        case .imagenet100: return 4
        case .synthetic: return 8
        default: return 10
        }
    }

    var defaultTopology: String {
        switch self {
        case .cifar10, .cifar100: return "ResNet-19"
        case .imagenet100: return "SEW-ResNet-34"
        case .nmnist: return "CONVAP-32-3-1-1_CONVAP-64-3-1-1_L-10"
        case .synthetic: return "CONV-32-3-1-1_CONV-64-3-1-1_CONVAP-128-3-1-1_L-8"
        default: return "VGGSNN"
        }
    }

    /// One sample's shape with the default options (`[C, H, W]`; event frames per timestep).
    var inputShape: [Int] {
        switch self {
        case .cifar10, .cifar100: return [3, 32, 32]
        case .imagenet100: return [3, 224, 224]
        case .synthetic: return [2, SyntheticEvents.size, SyntheticEvents.size]
        default: return [2, eventKind!.defaultSize, eventKind!.defaultSize]
        }
    }

    var classes: Int {
        switch self {
        case .cifar10, .dvsCIFAR10, .nmnist: return 10
        case .cifar100, .imagenet100: return 100
        case .ncaltech101: return 101
        case .dvsGesture: return 11
        case .synthetic: return SyntheticEvents.classNames.count
        }
    }

    /// What `--data-dir` must hold, as a phrase that follows "the folder holding" or "expected".
    var layout: String {
        switch self {
        case .cifar10: return "cifar-10-batches-bin/ (data_batch_1..5.bin, test_batch.bin) or cifar-10-batches-py/"
        case .cifar100: return "cifar-100-binary/ (train.bin, test.bin) or cifar-100-python/"
        case .imagenet100: return ImageFolderDataset.layout
        case .nmnist: return "\(EventFolderDataset.Kind.nmnist.layout) (snn data arrange-nmnist makes it from SLAYER's .bs2 files)"
        case .dvsCIFAR10, .ncaltech101, .dvsGesture: return eventKind!.layout
        case .synthetic: return "nothing (generated from --seed)"
        }
    }
}

/// Data options beyond the data set's name (flags of `snn train` and `snn data prepare`).
struct DataOptions {
    var augment = true
    var skipCorrupt = false
    var dvsFrames: EventFolderDataset.DVSFrames = .standard
    /// ImageNet classes: "imagenet100" (the shipped list), "all", or a file of synsets.
    var classes = "imagenet100"
    var frameSize: Int?
    /// Training samples of the synthetic data set (the test split gets a quarter).
    var syntheticSamples = 3000
    /// Where event frames are cached instead of DATA-DIR/.snn-frames (`--cache-dir`); frames go
    /// to `cacheDir/<options>/`.
    var cacheDir: String? = nil

    /// What a run's config records about the data.
    func recorded(for name: DatasetName) -> [String: String] {
        switch name {
        case .imagenet100: return ["classes": classes]
        case .cifar10, .cifar100: return [:]
        case .synthetic: return ["samples": String(syntheticSamples)]
        case .dvsCIFAR10, .ncaltech101, .nmnist, .dvsGesture:
            var recorded = ["frame_size": String(frameSize ?? name.eventKind!.defaultSize)]
            if name == .dvsCIFAR10 { recorded["dvs_frames"] = dvsFrames.rawValue }
            return recorded
        }
    }

    func imagenetClasses() throws -> ImageFolderDataset.Classes {
        switch classes {
        case "imagenet100": return .imagenet100
        case "all": return .all
        default:
            guard let text = try? String(contentsOfFile: classes, encoding: .utf8) else {
                throw CLIError("--classes: cannot read \(classes) (expected imagenet100, all, or a file of synsets, one per line)")
            }
            let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            guard !names.isEmpty else { throw CLIError("--classes: \(classes) names no classes") }
            return .named(names)
        }
    }
}

/// The training and test sets of a data set and one sample's shape.
struct LoadedData {
    let train: any LabelledDataset
    let test: any LabelledDataset
    let inputShape: [Int]
    let skipped: [String]
    /// Event data sets: where the frames are cached (nil: nowhere) and the frame files that could not be written.
    var frameCache: FrameCache? = nil
    var unwrittenFrames = 0
}

extension DatasetName {
    /// ``load(from:timesteps:seed:options:progress:)`` with its errors as one line naming the
    /// flag at fault: `--cache-dir` for a frame cache that cannot be written, else `--data-dir`.
    func loadForCommand(from directory: String, timesteps: Int, seed: UInt64, options: DataOptions,
                        progress: ((String, Int, Int) -> Void)? = nil) throws -> LoadedData {
        do {
            return try load(from: directory, timesteps: timesteps, seed: seed, options: options, progress: progress)
        } catch let error as CLIError {
            throw error
        } catch let error as FrameCacheError {
            throw CLIError("--cache-dir: \(error)")
        } catch {
            throw CLIError("--data-dir: \(error)")
        }
    }

    /// Reads the data set from `directory` (errors name the folder or file at fault and, for a
    /// file, the record and offset); the synthetic events are generated from `seed` instead.
    /// A data set with fewer than two classes or an empty training split is refused, and so is an
    /// empty test split, except where a class-folder data set has too few files per class to
    /// give one (then `report` warns; see ``checkSplits(_:directory:report:)``).
    ///
    /// - Parameter report: where notes for the user go (the frame cache's place), one line each.
    func load(from directory: String, timesteps: Int, seed: UInt64, options: DataOptions,
              report: (String) -> Void = { FileHandle.standardError.write(Data("note: \($0)\n".utf8)) },
              progress: ((String, Int, Int) -> Void)? = nil) throws -> LoadedData {
        do {
            let data = try loadSplits(from: directory, timesteps: timesteps, seed: seed, options: options, report: report, progress: progress)
            try checkSplits(data, directory: directory, report: report)
            return data
        } catch var error as DataLayoutError where error.expected != nil {
            // The user-facing wording of the layout, with the commands that help build it.
            error.expected = layout
            throw error
        }
    }

    private func loadSplits(from directory: String, timesteps: Int, seed: UInt64, options: DataOptions,
                            report: (String) -> Void, progress: ((String, Int, Int) -> Void)?) throws -> LoadedData {
        switch self {
        case .synthetic:
            let integration = FrameIntegration.eventCount(frames: timesteps)
            let count = options.syntheticSamples, classes = SyntheticEvents.classNames.count
            let train = SyntheticEvents(count: count, seed: seed, integration: integration)
            let test = SyntheticEvents(count: max(count / 4, 1), seed: seed &+ 1_000_003, integration: integration)
            return LoadedData(train: InMemoryDataset(samples: train.frames, labels: train.labels, isSequence: true, classes: classes),
                              test: InMemoryDataset(samples: test.frames, labels: test.labels, isSequence: true, classes: classes),
                              inputShape: inputShape, skipped: [])
        case .cifar10, .cifar100:
            let variant: CIFARBinary.Variant = self == .cifar100 ? .cifar100 : .cifar10
            let train = try CIFARDataset.load(directory: directory, variant: variant, train: true)
            let test = try CIFARDataset.load(directory: directory, variant: variant, train: false)
            return LoadedData(
                train: CIFARDataset(variant: variant, pixels: train.pixels, labels: train.labels, augment: true, cutout: options.augment, seed: seed),
                test: CIFARDataset(variant: variant, pixels: test.pixels, labels: test.labels, augment: false, cutout: false, seed: seed),
                inputShape: [3, 32, 32], skipped: [])
        case .imagenet100:
            let classes = try options.imagenetClasses()
            let train = try ImageFolderDataset(root: directory, train: true, classes: classes, seed: seed, skipCorrupt: options.skipCorrupt)
            let test = try ImageFolderDataset(root: directory, train: false, classes: classes, seed: seed, skipCorrupt: options.skipCorrupt)
            guard train.classNames == test.classNames else {
                throw CLIError("--data-dir: train/ and val/ hold different classes (\(train.classes) and \(test.classes))")
            }
            return LoadedData(train: train, test: test, inputShape: [3, 224, 224], skipped: [])
        case .dvsCIFAR10, .ncaltech101, .nmnist, .dvsGesture:
            let kind = eventKind!
            let size = options.frameSize ?? kind.defaultSize
            func split(_ train: Bool) throws -> EventFolderDataset {
                try EventFolderDataset(kind: kind, root: directory, train: train, timesteps: timesteps, size: size,
                                       augment: train && options.augment, seed: seed, dvsFrames: options.dvsFrames,
                                       skipCorrupt: options.skipCorrupt, cacheRoot: options.cacheDir) { done, total in
                    progress?(train ? "train" : "test", done, total)
                }
            }
            let (train, test) = (try split(true), try split(false))
            // Both splits choose the same cache folder: say where once.
            var said = Set<String>()
            for note in train.cacheNotes + test.cacheNotes where said.insert(note).inserted { report(note) }
            return LoadedData(train: train, test: test, inputShape: [2, size, size], skipped: train.skipped + test.skipped,
                              frameCache: train.frameCache, unwrittenFrames: train.unwrittenFrames + test.unwrittenFrames)
        }
    }

    /// Refuses what cannot be trained and tested: fewer than two classes, or an empty split.
    ///
    /// CIFAR10-DVS and N-Caltech101 test on the last 10 % of each class folder's files, so a
    /// folder with fewer than 10 files per class has no test samples; that is reported instead
    /// of refused, as small folders are useful for smoke tests and for filling the frame cache.
    func checkSplits(_ data: LoadedData, directory: String, report: (String) -> Void) throws {
        let (train, test) = (data.train, data.test)
        let (trainFolder, testFolder): (String, String) = switch self {
        case .nmnist: ("\(directory)/Train", "\(directory)/Test")
        case .imagenet100: ("\(directory)/train", "\(directory)/val")
        default: (directory, directory)
        }
        let names = (train as? EventFolderDataset)?.classNames ?? (train as? ImageFolderDataset)?.classNames
        if train.classes < 2 {
            throw DataLayoutError(path: trainFolder, problem: "holds \(train.classes) class\(names.map { " (\($0.joined(separator: ", ")))" } ?? ""); training needs at least 2 classes")
        }
        let skipped = data.skipped.isEmpty ? "" : " (\(data.skipped.count) unreadable files were skipped)"
        if train.count == 0 { throw DataLayoutError(path: trainFolder, problem: "the training split has no samples\(skipped)") }
        guard test.count == 0 else { return }
        if self == .dvsCIFAR10 || self == .ncaltech101, data.skipped.isEmpty {
            throw DataLayoutError(path: testFolder, problem: "the test split has no samples: the last 10% of each class folder's files are tested, so each class needs at least 10 files")
        }
        throw DataLayoutError(path: testFolder, problem: "the test split has no samples\(skipped)")
    }
}
