import Foundation
import Testing

/// End-to-end tests of the `snn` executable: flags, help text and one-line errors.
@Suite("snn command line")
struct CommandLineTests {
    /// Runs the `snn` built beside the test bundle.
    private func snn(_ arguments: [String]) throws -> (status: Int32, output: String) { try SNNBinary.run(arguments) }

    @Test("train --help explains the reference's flags with their defaults")
    func trainHelp() throws {
        let (status, help) = try snn(["train", "--help"])
        #expect(status == 0)
        for flag in ["--dataset", "--topology", "--T", "--trtloss", "--tetloss", "--loss_lambda", "--loss_decay", "--loss_eta",
                     "--loss_epsilon", "--loss_means", "--criterion", "--epochs", "--batch_size", "--lr", "--optimizer",
                     "--scheduler", "--tau", "--v_threshold", "--v_reset", "--surrogate_type", "--surrogate_param", "--seed",
                     "--amp", "--augment", "--dropout", "--weight_decay", "--l1", "--l2", "--norm", "--init", "--resume",
                     "--resume_path", "--save_checkpoint", "--checkpoint_epochs", "--mean_reduce", "--cpu", "--data-dir",
                     "--device", "--max-steps", "--output"] {
            #expect(help.contains(flag), "missing \(flag)")
        }
        let flat = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(flat.contains("(default: 0.5)") && flat.contains("(default: Adam)"))
    }

    @Test("bad values get a one-line error naming the flag and the accepted values", arguments: [
        (["train", "--T", "-2"], "--T"),
        (["train", "-T", "0"], "--T must be a positive integer"),
        (["train", "--tau", "0.5"], "--tau must be >= 1"),
        (["train", "--criterion", "MSE"], "cannot be used with --trtloss 1"),
        (["train", "--optimizer", "Lion"], "SGD, Adam, AdamW, RMSprop"),
        (["train", "--surrogate_type", "atan"], "triangle, sigmoid, rectangle"),
        (["train", "--no-such-flag"], "Unknown option"),
        (["train", "--topology", "CONVX-8-3-1-1_L-8", "--max-steps", "1"], "unknown layer 'CONVX'"),
        (["model", "--topology", "ResNet-19", "--dataset", "MNIST"], "--dataset accepts"),
        (["train", "--dataset", "MNIST", "--data-dir", "/tmp"], "CIFAR10, CIFAR100, ImageNet100, DVSCIFAR10, NCaltech101, NMNIST, DVSGesture"),
        (["train", "--dataset", "NMNIST"], "Train/ and Test/, each with digit folders 0-9"),
        (["train", "--dvs-frames", "occupancy"], "--dvs-frames accepts standard, reference"),
        (["train", "--dataset", "ImageNet100", "--data-dir", "/nonexistent"], "train/ and val/"),
        (["train", "--lr", "nan"], "--lr must be a finite number, got nan"),
        (["train", "--tau", "nan"], "--tau must be a finite number"),
        (["train", "--dropout", "nan"], "--dropout must be a finite number"),
        (["train", "--loss_lambda", "inf"], "--loss_lambda must be a finite number, got inf"),
        (["train", "--v_threshold=-inf"], "--v_threshold must be a finite number"),
        (["train", "--weight_decay=-1"], "--weight_decay must be 0 or more"),
        // A negative number after a flag is its value, judged by the flag's own rule.
        (["train", "--lr", "-1"], "--lr must be positive, got -1.0"),
        (["train", "--batch_size", "-4"], "--batch_size must be positive, got -4"),
        (["train", "-T", "-3"], "--T must be a positive integer, got -3"),
        (["train", "--weight_decay", "-1e-4"], "--weight_decay must be 0 or more, got -0.0001"),
        (["train", "--clip-grad-norm", "-1"], "--clip-grad-norm must be positive, got -1.0"),
        (["train", "--epochs", "-5"], "--epochs must be positive, got -5"),
        (["train", "--log-interval", "-1"], "--log-interval must be 0 or more"),
        (["model", "--topology", "VGGSNN", "--T", "-1"], "--T must be positive, got -1"),
        (["bench", "train", "--steps", "-2"], "must be positive"),
        (["bench", "ops", "--conv-kernel", "5"], "--conv-kernel takes 1 or 3, got 5"),
        (["bench", "ops", "--conv-stride", "0"], "--conv-stride must be at least 1, got 0"),
        (["train", "--dataset", "cifar-10"], "--dataset CIFAR10 needs --data-dir"),
        (["bench", "train", "--topology", "CONV-4-3-1-1_L-8", "--dataset", "NMNIST"], "the readout has 8 outputs but NMNIST has 10 classes"),
    ])
    func badFlags(_ c: ([String], String)) throws {
        let (status, output) = try snn(c.0)
        #expect(status != 0)
        #expect(output.contains(c.1), "\(output)")
    }

    @Test("kebab-case spellings work like the reference's snake_case")
    func kebabCase() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cli-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try snn(["train", "--batch-size", "8", "--max-steps", "1", "--epochs", "1", "--synthetic-samples", "16",
                                        "--T", "2", "--topology", "CONV-4-3-1-1_L-8", "--output", dir, "--loss-lambda", "1e-4"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("run directory: \(dir)/result/TRT(CE)_T2_triangle_tdBN_CONV-4-3-1-1_L-8_"))
    }

    @Test("bench train --json: where a step's time goes, and the backend's primitives it calls (oneDNN's reorders nested in them)")
    func benchTrainCalls() throws {
        let (status, output) = try snn(["bench", "train", "--topology", "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", "--dataset", "synthetic",
                                        "--T", "2", "--batch_size", "2", "--steps", "2", "--warmup", "0", "--json"])
        #expect(status == 0, "\(output)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        let (seconds, calls) = (object["breakdown_seconds"] as? [String: Double] ?? [:], object["breakdown_calls"] as? [String: Double] ?? [:])
        #expect(calls["conv forward"] == 2 && calls["conv backward-weights"] == 2 && Set(calls.keys).isSubset(of: Set(seconds.keys)),
                "\(output)")
        let perStep = try #require(object["calls_per_step"] as? Double, "\(output)")
        #expect(perStep > 4 && perStep <= calls.values.reduce(0, +) - (calls["reorders"] ?? 0), "\(output)")
    }

    @Test("model --json gives parameters and MACs per timestep")
    func modelJSON() throws {
        let (status, output) = try snn(["model", "--topology", "ResNet-19", "--dataset", "CIFAR10", "--json"])
        #expect(status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        #expect(object?["parameters"] as? Int == 12_630_858)
        #expect((object?["macs_per_timestep"] as? Int ?? 0) > 2_000_000_000)
    }

    private func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snn-cli-\(getpid())-\(name)").path
    }

    /// Arguments of a tiny training run (debug builds are slow).
    private func tiny(_ output: String, epochs: Int) -> [String] {
        ["train", "--synthetic-samples", "64", "--batch_size", "8", "--T", "2", "--topology", "CONV-4-3-1-1_FC-8_L-8",
         "--epochs", String(epochs), "--output", output]
    }

    @Test("running out of memory is one line naming the device and the size, exit status 1, no crash")
    func outOfMemory() throws {
        let dir = temporary("oom")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A limit of 0 MiB makes the first tensor fail, wherever it is made.
        let (status, output) = try SNNBinary.run(tiny(dir, epochs: 1), environment: ["SNN_HOST_MEMORY_LIMIT_MIB": "0"])
        #expect(status == 1, "\(output)")
        #expect(output.contains("error: out of memory on the cpu device: could not allocate"), "\(output)")
        #expect(!output.contains("Fatal error") && !output.contains("Backtrace"), "\(output)")
    }

    @Test("TensorBoard opens the event file and finds the epoch scalars")
    func tensorBoardReadsOurLogs() throws {
        let dir = temporary("tb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try snn(tiny(dir, epochs: 2))
        #expect(status == 0, "\(output)")
        let run = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/result").first)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/read_tensorboard.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "\(dir)/result/\(run)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "TensorBoard could not read the log (pip install tensorboard)")
        let scalars = try JSONSerialization.jsonObject(with: data) as? [String: [[Double]]]
        // Per-step and per-epoch points never share a tag (a curve that jumps back).
        for tag in ["epoch/train_loss", "epoch/train_acc", "epoch/test_loss", "epoch/test_acc", "epoch/lr", "epoch/firing_rate/layers.0.lif",
                    "step/train_loss", "step/lr", "step/samples_per_second", "step/firing_rate/layers.0.lif"] {
            #expect(scalars?[tag] != nil, "missing \(tag)")
        }
        #expect(scalars?.keys.allSatisfy { $0.hasPrefix("step/") || $0.hasPrefix("epoch/") } == true, "\(scalars?.keys.sorted() ?? [])")
        #expect(scalars?["epoch/test_acc"]?.map { $0[0] } == [1, 2])
        #expect(scalars?["step/lr"]?.map { $0[0] } == Array(1...16).map(Double.init))
    }

    @Test("data inspect reports an event file as one JSON object, inferring the format")
    func dataInspect() throws {
        let shared = SNNBinary.sharedData
        let (status, output) = try snn(["data", "inspect", "--json", "\(shared)/nmnist/slayerpytorch-NMNISTsmall/1.bs2"])
        #expect(status == 0, "\(output)")
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        #expect(object?["format"] as? String == "nmnist" && object?["width"] as? Int == 34 && object?["events"] as? Int == 4681)
        #expect(object?["t_first_us"] as? Int == 893 && object?["t_last_us"] as? Int == 305_924)
        let (bad, message) = try snn(["data", "inspect", "\(shared)/PROVENANCE.md"])
        #expect(bad != 0 && message.contains("cannot tell the format"))
    }

    @Test("train --dataset CIFAR10 reads a cifar-10-batches-bin folder")
    func cifarTraining() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cli-cifar-\(getpid())")
        let dir = root.appendingPathComponent("cifar-10-batches-bin")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        for name in (1...5).map({ "data_batch_\($0).bin" }) + ["test_batch.bin"] {
            var bytes: [UInt8] = []
            for r in 0..<4 { bytes += [UInt8(r % 10)] + (0..<3072).map { UInt8(($0 + r) % 256) } }
            try Data(bytes).write(to: dir.appendingPathComponent(name))
        }
        let (status, output) = try snn(["train", "--dataset", "CIFAR10", "--data-dir", root.path, "--topology", "CONV-4-3-1-1_L-10",
                                        "--T", "2", "--epochs", "1", "--batch_size", "8", "--output", root.path + "/runs"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("20 train / 4 test samples"), "\(output)")
        let (missing, message) = try snn(["train", "--dataset", "CIFAR10", "--data-dir", root.path + "/nowhere"])
        #expect(missing != 0 && message.contains("no cifar10 training files"), "\(message)")
        let (noDir, why) = try snn(["train", "--dataset", "CIFAR100"])
        #expect(noDir != 0 && why.contains("needs --data-dir"))
        let (inspected, json) = try snn(["data", "inspect", "--json", dir.appendingPathComponent("test_batch.bin").path])
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(inspected == 0 && object?["format"] as? String == "cifar-bin" && object?["images"] as? Int == 4)
        #expect(object?["first_labels"] as? [Int] == [0, 1, 2, 3])
    }

    @Test("bench data --json reports events/s and images/s")
    func benchData() throws {
        let (status, output) = try snn(["bench", "data", "--events", "1000", "--repeats", "1", "--jpegs", "2", "--json"])
        #expect(status == 0, "\(output)")
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        for key in ["atis_events_per_second", "aedat2_events_per_second", "cifar_augment_images_per_second", "jpeg_decode_crop_images_per_second"] {
            #expect((object?[key] as? Double ?? 0) > 0, "\(key)")
        }
    }

    @Test("data prepare fills the DVSCIFAR10 frame cache")
    func dataPrepare() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cli-prepare-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        for c in ["cat", "dog"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(c), withIntermediateDirectories: true)
            for i in 0..<10 {
                var d = Data("#!AER-DAT2.0\r\n".utf8)
                for e in 0..<50 {
                    withUnsafeBytes(of: UInt32(e % 2 | (e % 128) << 1 | (e % 100) << 8).bigEndian) { d.append(contentsOf: $0) }
                    withUnsafeBytes(of: UInt32(e).bigEndian) { d.append(contentsOf: $0) }
                }
                try d.write(to: root.appendingPathComponent("\(c)/cifar10_\(c)_\(i).aedat"))
            }
        }
        let (status, output) = try snn(["data", "prepare", "--dataset", "DVSCIFAR10", "--data-dir", root.path, "--T", "4"])
        #expect(status == 0 && output.contains("prepared 20 samples (18 train, 2 test)"), "\(output)")
        let cache = root.appendingPathComponent(".snn-frames").path
        let folders = try FileManager.default.contentsOfDirectory(atPath: cache)
        #expect(folders.count == 1 && folders[0].contains("frames_4"))
        // The reference-compatible frames get their own cache folder, and a run records the choice.
        let (refStatus, refOutput) = try snn(["data", "prepare", "--dataset", "DVSCIFAR10", "--data-dir", root.path, "--T", "4", "--dvs-frames", "reference"])
        #expect(refStatus == 0 && refOutput.contains("reference_occupancy"), "\(refOutput)")
        let (trained, log) = try snn(["train", "--dataset", "DVSCIFAR10", "--data-dir", root.path, "--T", "4", "--dvs-frames", "reference",
                                      "--topology", "CONVAP-4-3-1-1_L-2", "--epochs", "1", "--batch_size", "2", "--output", root.path + "/runs"])
        #expect(trained == 0, "\(log)")
        let summaryPath = log.split(separator: "\n").first { $0.hasPrefix("summary: ") }.map { String($0.dropFirst(9)) } ?? ""
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summaryPath))) as? [String: Any]
        let config = summary?["config"] as? [String: Any]
        #expect((config?["dataOptions"] as? [String: String])?["dvs_frames"] == "reference", "\(String(describing: config))")
        #expect(FileManager.default.fileExists(atPath: "\(cache)/\(folders[0])/dog/cifar10_dog_1.aedat.f32"))
        let (_, inspected) = try snn(["data", "inspect", "--json", root.appendingPathComponent("dog/cifar10_dog_1.aedat").path])
        let object = try JSONSerialization.jsonObject(with: Data(inspected.utf8)) as? [String: Any]
        #expect(object?["label"] as? String == "dog" && object?["format"] as? String == "aedat2" && object?["events"] as? Int == 50)
    }

    @Test("ImageNet-style folders: data prepare decodes every JPEG, inspect reports one, train reads them")
    func imagenetFolders() throws {
        let shared = SNNBinary.sharedData
        let root = "\(shared)/imagenet-sample/imagenette-224"
        let (status, output) = try snn(["data", "prepare", "--dataset", "ImageNet100", "--data-dir", root, "--classes", "all"])
        #expect(status == 0 && output.contains("checked 600 images in 10 classes") && output.contains("all readable"), "\(output)")
        let (listed, why) = try snn(["data", "prepare", "--dataset", "ImageNet100", "--data-dir", root])
        #expect(listed != 0 && why.contains("of ImageNet-100's 100 classes have no folder here"), "\(why)")
        let (inspected, json) = try snn(["data", "inspect", "--json", "\(root)/val/n03394916/ILSVRC2012_val_00011691.JPEG"])
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(inspected == 0 && object?["format"] as? String == "jpeg" && object?["width"] as? Int == 224)
        #expect(object?["images"] as? Int == 1 && object?["label"] as? String == "n03394916")
        // The pixel limit names its flag, and the flag raises it.
        let image = "\(root)/val/n03394916/ILSVRC2012_val_00011691.JPEG"
        let (limited, message) = try snn(["data", "inspect", "--max-image-pixels", "50000", image])
        #expect(limited != 0 && message.contains("224×224 = 50176 pixels, more than the limit of 50000") && message.contains("--max-image-pixels"),
                "\(message)")
        #expect(try snn(["data", "inspect", "--max-image-pixels", "50176", image]).status == 0)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cli-imagenet-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (trained, log) = try snn(["train", "--dataset", "ImageNet100", "--data-dir", root, "--classes", "all", "--T", "1",
                                      "--topology", "CONVAP-4-3-4-1_L-10", "--batch_size", "50", "--max-steps", "2", "--output", out])
        #expect(trained == 0 && log.contains("500 train / 100 test samples"), "\(log)")
    }

    @Test("--l2 with TRT is accepted as the reference accepts it, with a note that only SDT uses it")
    func l2Note() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cli-l2-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let common = ["train", "--l2", "0.01", "--max-steps", "1", "--synthetic-samples", "8", "--T", "2",
                      "--topology", "CONVAP-4-3-1-1_L-8", "--output", out]
        let (trt, noted) = try snn(common)
        #expect(trt == 0 && noted.contains("--l1/--l2 apply to SDT only"), "\(noted)")
        let (sdt, quiet) = try snn(common + ["--trtloss", "0"])
        #expect(sdt == 0 && !quiet.contains("apply to SDT only"), "\(quiet)")
    }
}
