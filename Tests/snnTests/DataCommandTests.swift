import Foundation
import Testing

/// End-to-end tests of what a new user meets in `snn data` and in `snn train`'s data loading:
/// folder errors, corrupt files, read-only data folders, degenerate splits and N-MNIST's layout.
@Suite("snn data: folders, caches and arrange-nmnist")
struct DataCommandTests {
    private func snn(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try SNNBinary.run(arguments, environment: environment)
    }

    static let slayer = "\(SNNBinary.sharedData)/nmnist/slayerpytorch-NMNISTsmall"
    static let imagenette = "\(SNNBinary.sharedData)/imagenet-sample/imagenette-224"
    static let dvs128 = "\(SNNBinary.sharedData)/dvs128-aedat2/DVS128DataAnalysis"

    /// A new empty folder under the temporary directory; the caller removes it.
    private func temporary(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-data-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The lines of `output` that start with "Error:".
    private func errors(_ output: String) -> [String] { output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("Error:") } }

    /// How many times `needle` occurs in `text`.
    private func occurrences(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// An N-MNIST folder of real recordings made by `snn data arrange-nmnist` (links).
    private func arrangedNMNIST(_ name: String) throws -> String {
        let root = try temporary(name)
        let (status, output) = try snn(["data", "arrange-nmnist", "--source", Self.slayer, "--output", "\(root)/nm"])
        #expect(status == 0, "\(output)")
        return "\(root)/nm"
    }

    @Test("a missing data folder (or a file in its place) is one line naming it and the layout expected, without byte offsets",
          arguments: ["NMNIST", "DVSCIFAR10", "NCaltech101", "DVSGesture", "ImageNet100", "CIFAR10"])
    func missingFolder(dataset: String) throws {
        let root = try temporary("missing")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = "\(root)/file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for (dir, problem) in [("\(root)/none", "\(root)/none: no such folder"), (file, "\(file): is a file, not a folder")] {
            var commands = [["train", "--dataset", dataset, "--data-dir", dir, "--epochs", "1"]]
            if dataset != "CIFAR10" { commands.append(["data", "prepare", "--dataset", dataset, "--data-dir", dir]) }
            for command in commands {
                let (status, output) = try snn(command)
                let lines = errors(output)
                #expect(status != 0 && lines.count == 1, "\(command): \(output)")
                #expect(lines.first?.contains(problem) == true && lines.first?.contains("; expected ") == true && !output.contains("byte offset"),
                        "\(command): \(output)")
            }
        }
    }

    @Test("a truncated recording in a data folder is named once, with one offset and --skip-corrupt; inspect names it once too")
    func truncatedRecording() throws {
        let nm = try arrangedNMNIST("truncated")
        defer { try? FileManager.default.removeItem(atPath: (nm as NSString).deletingLastPathComponent) }
        let bad = "\(nm)/Train/5/1.bin"
        try FileManager.default.removeItem(atPath: bad)
        try Data(try Data(contentsOf: URL(fileURLWithPath: "\(Self.slayer)/1.bs2")).prefix(1003)).write(to: URL(fileURLWithPath: bad))
        let (status, output) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm])
        let line = errors(output).first ?? ""
        #expect(status != 0 && occurrences(bad, in: line) == 1 && occurrences("byte offset", in: line) == 1, "\(output)")
        #expect(line.contains("(record 200, byte offset 1000)") && line.contains("pass --skip-corrupt to skip unreadable files"), "\(output)")
        let (skipped, skipping) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm, "--skip-corrupt"])
        #expect(skipped == 0 && skipping.contains("prepared 479 samples (379 train, 100 test), skipped 1 unreadable"), "\(skipping)")
        let (inspected, message) = try snn(["data", "inspect", bad])
        #expect(inspected != 0 && occurrences(bad, in: message) == 1 && occurrences("byte offset", in: message) == 1, "\(message)")

        // The same for an AEDAT 2.0 recording in a CIFAR10-DVS folder.
        let dvs = (nm as NSString).deletingLastPathComponent + "/dvs"
        for c in ["airplane", "cat"] { try FileManager.default.createDirectory(atPath: "\(dvs)/\(c)", withIntermediateDirectories: true) }
        try FileManager.default.copyItem(atPath: "\(Self.dvs128)/neal_walking.aedat", toPath: "\(dvs)/airplane/cifar10_airplane_0.aedat")
        let cut = "\(dvs)/cat/cifar10_cat_0.aedat"
        try Data(try Data(contentsOf: URL(fileURLWithPath: "\(Self.dvs128)/neal_walking.aedat")).prefix(5003)).write(to: URL(fileURLWithPath: cut))
        let (dvsStatus, dvsOutput) = try snn(["data", "prepare", "--dataset", "DVSCIFAR10", "--data-dir", dvs, "--T", "2"])
        let dvsLine = errors(dvsOutput).first ?? ""
        #expect(dvsStatus != 0 && occurrences(cut, in: dvsLine) == 1 && occurrences("byte offset", in: dvsLine) == 1, "\(dvsOutput)")
        #expect(dvsLine.contains("--skip-corrupt"), "\(dvsOutput)")
    }

    @Test("an unreadable JPEG met while training names --skip-corrupt")
    func corruptJPEGDuringTraining() throws {
        let root = try temporary("jpeg")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (split, wnid) in [("train", "n01440764"), ("train", "n02102040"), ("val", "n01440764"), ("val", "n02102040")] {
            let images = try FileManager.default.contentsOfDirectory(atPath: "\(Self.imagenette)/\(split)/\(wnid)").sorted().prefix(2)
            try FileManager.default.createDirectory(atPath: "\(root)/\(split)/\(wnid)", withIntermediateDirectories: true)
            for image in images { try FileManager.default.copyItem(atPath: "\(Self.imagenette)/\(split)/\(wnid)/\(image)", toPath: "\(root)/\(split)/\(wnid)/\(image)") }
        }
        let good = try Data(contentsOf: URL(fileURLWithPath: "\(Self.imagenette)/val/n01440764/ILSVRC2012_val_00009111.JPEG"))
        try Data(good.prefix(3000)).write(to: URL(fileURLWithPath: "\(root)/train/n02102040/zz_truncated.JPEG"))
        // One batch holds every training image, so the truncated one is met in the first step.
        let (status, output) = try snn(["train", "--dataset", "ImageNet100", "--data-dir", root, "--classes", "all", "--T", "1",
                                        "--topology", "CONVAP-4-3-8-1_L-2", "--batch_size", "8", "--max-steps", "1", "--workers", "0",
                                        "--output", "\(root)/runs"])
        let line = errors(output).first ?? ""
        #expect(status != 0 && line.contains("zz_truncated.JPEG") && line.contains("pass --skip-corrupt"), "\(output)")
    }

    @Test("prepare refuses a frame size that is not positive, by name", arguments: ["0", "-3"])
    func frameSizeRefused(size: String) throws {
        let (status, output) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", "/nonexistent", "--frame-size=\(size)"])
        #expect(status != 0 && output.contains("--frame-size must be positive, got \(size)"), "\(output)")
    }

    @Test("one class, or an empty split, is refused naming the folder and what was found")
    func degenerateSplits() throws {
        let root = try temporary("splits")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let train = { (dir: String, dataset: String, extra: [String]) in
            try self.snn(["train", "--dataset", dataset, "--data-dir", dir, "--T", "2", "--topology", "CONVAP-4-3-8-1_L-2",
                          "--max-steps", "1", "--output", "\(root)/runs"] + extra)
        }
        // CIFAR10-DVS with one class folder.
        try FileManager.default.createDirectory(atPath: "\(root)/dvs/airplane", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(Self.dvs128)/neal_walking.aedat", toPath: "\(root)/dvs/airplane/cifar10_airplane_0.aedat")
        let (dvs, dvsOutput) = try train("\(root)/dvs", "DVSCIFAR10", [])
        #expect(dvs != 0 && errors(dvsOutput).first?.contains("\(root)/dvs: holds 1 class (airplane); training needs at least 2 classes") == true,
                "\(dvsOutput)")
        // ImageNet with one class, then with an empty val/.
        for split in ["train", "val"] {
            try FileManager.default.createDirectory(atPath: "\(root)/in/\(split)/n01440764", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(Self.imagenette)/val/n01440764/ILSVRC2012_val_00009111.JPEG",
                                             toPath: "\(root)/in/\(split)/n01440764/a.JPEG")
        }
        let (one, oneOutput) = try train("\(root)/in", "ImageNet100", ["--classes", "all"])
        #expect(one != 0 && errors(oneOutput).first?.contains("\(root)/in/train: holds 1 class (n01440764)") == true, "\(oneOutput)")
        try FileManager.default.removeItem(atPath: "\(root)/in/val/n01440764")
        let (empty, emptyOutput) = try train("\(root)/in", "ImageNet100", ["--classes", "all"])
        #expect(empty != 0 && errors(emptyOutput).first?.contains("\(root)/in/val: holds no class folders") == true, "\(emptyOutput)")
        // N-MNIST whose Test/ digit folders hold no .bin files.
        let nm = "\(root)/nm"
        for split in ["Train", "Test"] {
            for d in 0...9 { try FileManager.default.createDirectory(atPath: "\(nm)/\(split)/\(d)", withIntermediateDirectories: true) }
        }
        for d in 0...9 { try FileManager.default.createSymbolicLink(atPath: "\(nm)/Train/\(d)/a.bin", withDestinationPath: "\(Self.slayer)/\(d + 1).bs2") }
        let (nmnist, nmnistOutput) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm])
        #expect(nmnist != 0 && errors(nmnistOutput).first?.contains("\(nm)/Test: its digit folders 0-9 hold no .bin files; expected Train/ and Test/") == true,
                "\(nmnistOutput)")
        #expect(!nmnistOutput.contains("byte offset"))
    }

    @Test("with a data folder whose .snn-frames cannot be made, prepare caches in the per-user folder and says so once")
    func unwritableDataFolder() throws {
        let nm = try arrangedNMNIST("unwritable")
        let root = (nm as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A file where the cache folder would go stops writes even for root (permissions do not).
        try Data().write(to: URL(fileURLWithPath: "\(nm)/.snn-frames"))
        let environment = ["XDG_CACHE_HOME": "\(root)/xdg"]
        let (status, output) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm], environment: environment)
        let user = "\(root)/xdg/swiftsnn/frames/nm-"
        #expect(status == 0 && occurrences("note: cannot write a frame cache in \(nm)/.snn-frames (Not a directory); caching frames in \(user)", in: output) == 1,
                "\(output)")
        let cache = output.split(separator: "\n").first { $0.hasPrefix("prepared 480 samples") }.map { String($0.split(separator: " ").last ?? "") } ?? ""
        let files = (try? FileManager.default.subpathsOfDirectory(atPath: cache)) ?? []
        #expect(cache.hasPrefix(user) && files.filter { $0.hasSuffix(".f32") }.count == 480, "\(output)")
        // Nowhere to write at all: said once, and prepare fails, as it prepared nothing.
        let (none, noneOutput) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm],
                                         environment: ["XDG_CACHE_HOME": "\(nm)/.snn-frames/below-a-file"])
        #expect(none != 0 && occurrences("frames are computed again on every run", in: noneOutput) == 1, "\(noneOutput)")
        #expect(noneOutput.contains("but no frame cache could be written"), "\(noneOutput)")
    }

    @Test("a read-only data folder (chmod) falls back to the per-user cache",
          .enabled(if: getuid() != 0, "permissions do not stop root's writes; unwritableDataFolder covers the fallback"))
    func readOnlyDataFolder() throws {
        let nm = try arrangedNMNIST("readonly")
        let root = (nm as NSString).deletingLastPathComponent
        defer {
            chmod(nm, 0o755)
            try? FileManager.default.removeItem(atPath: root)
        }
        #expect(chmod(nm, 0o555) == 0)
        let (status, output) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm], environment: ["XDG_CACHE_HOME": "\(root)/xdg"])
        #expect(status == 0 && output.contains("(Permission denied); caching frames in \(root)/xdg/swiftsnn/frames/nm-"), "\(output)")
    }

    @Test("prepare --cache-dir puts the frames in DIR/<options>/ and refuses a DIR it cannot write")
    func cacheDir() throws {
        let nm = try arrangedNMNIST("cachedir")
        let root = (nm as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (status, output) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm, "--cache-dir", "\(root)/frames", "--T", "4"])
        let folder = "\(root)/frames/nmnist_frames_4_split_by_number_counts_bilinear_aa_34x34"
        #expect(status == 0 && output.contains("prepared 480 samples (380 train, 100 test)") && output.hasSuffix(": \(folder)\n"), "\(output)")
        #expect(FileManager.default.fileExists(atPath: "\(folder)/Test/0/60004.bin.f32"))
        #expect(!FileManager.default.fileExists(atPath: "\(nm)/.snn-frames"))
        let (bad, badOutput) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm, "--cache-dir", "\(nm)/Train/5/1.bin"])
        #expect(bad != 0 && errors(badOutput).first?.contains("--cache-dir: cannot write the frame cache in \(nm)/Train/5/1.bin") == true, "\(badOutput)")
    }

    @Test("arrange-nmnist lays SLAYER's sample out as Train/<digit>/ and Test/<digit>/ that prepare and train read")
    func arrangeNMNIST() throws {
        let root = try temporary("arrange")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nm = "\(root)/nm"
        let arrange = ["data", "arrange-nmnist", "--source", Self.slayer, "--output", nm]
        let (status, output) = try snn(arrange)
        #expect(status == 0 && output.contains("arranged 380 train and 100 test samples in \(nm) as symbolic links"), "\(output)")
        #expect(output.contains("left out 620 listed ids that have no .bs2 file in \(Self.slayer) (620 of 1000 in train1K.txt)"), "\(output)")
        let fm = FileManager.default
        let count = { (split: String) in try (0...9).map { try fm.contentsOfDirectory(atPath: "\(nm)/\(split)/\($0)").count }.reduce(0, +) }
        #expect(try count("Train") == 380 && count("Test") == 100)
        // Sample 1 of MNIST is a 5; test sample 60001 is listed with its digit too.
        #expect(try fm.destinationOfSymbolicLink(atPath: "\(nm)/Train/5/1.bin") == "\(Self.slayer)/1.bs2")
        // Re-running is a no-op that says so; a lost sample is made again.
        let (again, againOutput) = try snn(arrange)
        #expect(again == 0 && againOutput.contains("\(nm) already holds these 380 train and 100 test samples; nothing to do"), "\(againOutput)")
        try fm.removeItem(atPath: "\(nm)/Train/5/1.bin")
        let (repaired, repairedOutput) = try snn(arrange)
        #expect(repaired == 0 && repairedOutput.contains("(1 new, 479 already there)"), "\(repairedOutput)")
        // An output holding something else is refused, and nothing is written.
        let (copy, copyOutput) = try snn(arrange + ["--copy"])
        #expect(copy != 0 && errors(copyOutput).first?.contains("is not a copy of \(Self.slayer)/") == true, "\(copyOutput)")
        let other = "\(root)/other"
        try fm.createDirectory(atPath: "\(other)/images", withIntermediateDirectories: true)
        let (foreign, foreignOutput) = try snn(["data", "arrange-nmnist", "--source", Self.slayer, "--output", other])
        #expect(foreign != 0 && errors(foreignOutput).first?.contains("\(other)/images: is not part of the N-MNIST layout") == true, "\(foreignOutput)")
        #expect(try fm.contentsOfDirectory(atPath: other) == ["images"])
        // The layout is what prepare and train read.
        let (prepared, preparedOutput) = try snn(["data", "prepare", "--dataset", "NMNIST", "--data-dir", nm, "--T", "2"])
        #expect(prepared == 0 && preparedOutput.contains("prepared 480 samples (380 train, 100 test)"), "\(preparedOutput)")
        let (trained, log) = try snn(["train", "--dataset", "NMNIST", "--data-dir", nm, "--T", "2", "--topology", "CONVAP-4-3-4-1_L-10",
                                      "--max-steps", "1", "--output", "\(root)/runs"])
        #expect(trained == 0 && log.contains("380 train / 100 test samples"), "\(log)")
        // Copies are whole files, not links.
        let (copied, copiedOutput) = try snn(["data", "arrange-nmnist", "--source", Self.slayer, "--output", "\(root)/copies", "--copy"])
        #expect(copied == 0 && copiedOutput.contains("as copies of"), "\(copiedOutput)")
        #expect((try? fm.destinationOfSymbolicLink(atPath: "\(root)/copies/Test/0/60004.bin")) == nil)
        #expect(fm.contents(atPath: "\(root)/copies/Test/0/60004.bin") == fm.contents(atPath: "\(Self.slayer)/60004.bs2"))
    }
}
