import Foundation
import Testing

/// End-to-end tests of the `snn` executable: flags, help text and one-line errors.
@Suite("snn command line")
struct CommandLineTests {
    /// Runs the `snn` built beside the test bundle.
    private func snn(_ arguments: [String]) throws -> (status: Int32, output: String) {
        var dir = Bundle.main.bundleURL
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("snn").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        let process = Process()
        process.executableURL = dir.appendingPathComponent("snn")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

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

    @Test("model --json gives parameters and MACs per timestep")
    func modelJSON() throws {
        let (status, output) = try snn(["model", "--topology", "ResNet-19", "--dataset", "CIFAR10", "--json"])
        #expect(status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        #expect(object?["parameters"] as? Int == 12_630_858)
        #expect((object?["macs_per_timestep"] as? Int ?? 0) > 2_000_000_000)
    }
}
