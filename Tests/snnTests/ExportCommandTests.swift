import Foundation
import Testing

/// `snn export` and `snn inspect-nir` on checkpoints of tiny runs; every NIR file is read back
/// by the official `nir` package with type checking on.
@Suite("snn export")
struct ExportCommandTests {
    /// A checkpoint of a one-step synthetic run of `topology` in a fresh folder.
    private func checkpoint(_ name: String, topology: String, _ extra: [String] = []) throws -> (folder: String, weights: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snn-export-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: folder)
        let (status, output) = try SNNBinary.run(["train", "--synthetic-samples", "32", "--batch_size", "16", "--T", "3", "--max-steps", "1",
                                                  "--topology", topology, "--output", folder] + extra)
        try #require(status == 0, "\(output)")
        let runs = try FileManager.default.contentsOfDirectory(atPath: folder + "/result")
        return (folder, "\(folder)/result/\(try #require(runs.first))/weights/last")
    }

    /// What `nir.read` (type checking on) finds in `file`: node types and shapes, edges.
    private func nirRead(_ file: String) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", SNNBinary.repositoryRoot.appendingPathComponent("scripts/check_nir_file.py").path, file]
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 scripts/check_nir_file.py failed (make test installs nir; or pip install nir): \(message)")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func types(_ read: [String: Any]) -> [String: String] {
        ((read["nodes"] as? [String: [String: Any]]) ?? [:]).mapValues { $0["type"] as? String ?? "" }
    }

    private func shape(_ read: [String: Any], _ node: String, _ side: String = "output") -> [Int]? {
        ((read["nodes"] as? [String: [String: Any]])?[node]?[side]) as? [Int]
    }

    private func edges(into node: String, _ read: [String: Any]) -> Set<String> {
        Set(((read["edges"] as? [[String]]) ?? []).filter { $0[1] == node }.map { $0[0] })
    }

    @Test("a plain conv network: export, inspect-nir, data inspect, and nir.read agree")
    func plainNetwork() throws {
        let (folder, weights) = try checkpoint("plain", topology: "CONV-4-3-1-1_CONVAP-4-3-1-1_FC-8_L-8")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = "\(folder)/net.nir"
        let (status, output) = try SNNBinary.run(["export", weights, file])
        #expect(status == 0, "\(output)")
        #expect(output.contains("net.nir: NIR 1.0.8 graph of CONV-4-3-1-1_CONVAP-4-3-1-1_FC-8_L-8, T = 3, input 2×32×32, 13 nodes"), "\(output)")

        let read = try nirRead(file)
        #expect(read["version"] as? String == "1.0.8")
        #expect(types(read) == ["input": "Input", "layer0_conv": "Conv2d", "layer0_lif": "LIF", "layer0_pool_sum": "SumPool2d",
                                "layer0_pool": "Threshold", "layer1_conv": "Conv2d", "layer1_lif": "LIF", "layer1_pool": "AvgPool2d",
                                "layer2_flatten": "Flatten", "layer3_fc": "Affine", "layer3_lif": "LIF", "layer4_readout": "Affine",
                                "output": "Output"])
        #expect(shape(read, "input") == [2, 32, 32])
        #expect(shape(read, "layer0_lif") == [4, 32, 32] && shape(read, "layer0_pool") == [4, 16, 16])
        #expect(shape(read, "layer1_pool") == [4, 8, 8] && shape(read, "layer2_flatten") == [256])
        #expect(shape(read, "layer3_lif") == [8] && shape(read, "output") == [8])
        #expect(edges(into: "layer1_conv", read) == ["layer0_pool"])
        #expect((read["edges"] as? [[String]])?.count == 12)
        #expect((read["metadata"] as? [String])?.contains("dt") == true)

        for command in [["inspect-nir", file], ["data", "inspect", file]] {
            let (s, text) = try SNNBinary.run(command)
            #expect(s == 0, "\(text)")
            #expect(text.contains("net.nir: NIR 1.0.8, 13 nodes, 12 edges"), "\(text)")
            #expect(text.contains("layer0_lif       LIF        4×32×32     ← layer0_conv; r=2 tau=0.0002 v_leak=0 v_reset=0 v_threshold=1"), "\(text)")
        }
        let (s, json) = try SNNBinary.run(["inspect-nir", file, "--json"])
        #expect(s == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let nodes = try #require(object["nodes"] as? [[String: Any]])
        #expect(nodes.first?["name"] as? String == "input" && nodes.last?["name"] as? String == "output")
        #expect(nodes.first { $0["name"] as? String == "layer1_conv" }?["output_shape"] as? [Int] == [4, 16, 16])
    }

    @Test("ResNet-19-style blocks: the shortcut and the projection are edges into the second neuron")
    func residualBlocks() throws {
        let (folder, weights) = try checkpoint("res", topology: "CONVNP-4-3-1-1_RES-4-3=3-1=1-1=1_RES-8-3=3-2=1-1=1_L-8")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = "\(folder)/res.nir"
        let (status, output) = try SNNBinary.run(["export", weights, file])
        #expect(status == 0, "\(output)")
        let read = try nirRead(file)
        #expect(edges(into: "layer1_lif2", read) == ["layer1_conv2", "layer0_lif"])
        #expect(edges(into: "layer2_lif2", read) == ["layer2_conv2", "layer2_downsample"])
        #expect(types(read)["layer2_downsample"] == "Conv2d")
        #expect(shape(read, "layer2_downsample") == [8, 16, 16] && shape(read, "layer2_pool") == [8, 1, 1])
        #expect(types(read)["layer3_flatten"] == "Flatten" && shape(read, "layer3_flatten") == [8])
    }

    @Test("SEW blocks: ADD is fan-in, AND and IAND are thresholds (IAND with a negating Scale)")
    func sewBlocks() throws {
        let (folder, weights) = try checkpoint("sew", topology: "CONVNP-4-3-1-1_SEWRES~ADD-4-3=3-1=1-1=1_CONVNP-4-3-1-1_SEWRES~AND-4-3=3-1=1-1=1_SEWRES~IAND-8-3=3-2=1-1=1_L-8")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = "\(folder)/sew.nir"
        let (status, output) = try SNNBinary.run(["export", weights, file])
        #expect(status == 0, "\(output)")
        let read = try nirRead(file)
        #expect(edges(into: "layer2_conv", read) == ["layer1_lif2", "layer0_lif"])
        #expect(types(read)["layer3_and"] == "Threshold" && edges(into: "layer3_and", read) == ["layer3_lif2", "layer2_lif"])
        #expect(types(read)["layer4_iand_negate"] == "Scale" && edges(into: "layer4_iand_negate", read) == ["layer4_lif2"])
        #expect(edges(into: "layer4_iand", read) == ["layer4_iand_negate", "layer4_downsample_lif"])
        #expect(shape(read, "layer4_iand") == [8, 16, 16])
    }

    @Test("a soft reset: refused naming the layer, nothing written or replaced; --allow-inexact exports and says so")
    func softReset() throws {
        let (folder, weights) = try checkpoint("soft", topology: "CONVNP-4-3-1-1_L-8", ["--v_reset", "-1"])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = "\(folder)/soft.nir"
        try Data("previous".utf8).write(to: URL(fileURLWithPath: file))
        let (status, output) = try SNNBinary.run(["export", weights, file])
        #expect(status != 0)
        #expect(output.contains("layers.0 (CONVNP-4-3-1-1): the neuron layer0_lif resets by subtraction"), "\(output)")
        #expect(output.components(separatedBy: "\n").filter { !$0.isEmpty }.count == 1, "\(output)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "previous")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix(".soft.nir") }.isEmpty)

        let (s, text) = try SNNBinary.run(["export", weights, file, "--allow-inexact"])
        #expect(s == 0, "\(text)")
        #expect(text.contains("inexact: layer0_lif: reset by subtraction written as a hard reset to 0"), "\(text)")
        _ = try nirRead(file)
    }

    @Test("bad input: one line each", arguments: [
        (["export", "WEIGHTS", "/etc/passwd/net.nir"], "/etc/passwd/net.nir"),
        (["export", "WEIGHTS", "out.onnx"], "out.onnx: name it .nir or .safetensors"),
        (["export", "WEIGHTS", "x.nir", "--dt", "0"], "--dt must be positive"),
        (["export", "WEIGHTS", "x.safetensors", "--portable"], "--allow-inexact and --portable apply to --format nir"),
        (["export", "PLAIN", "x.nir"], "is not a SwiftSNN checkpoint (no run configuration in it): pass --topology or --model"),
        (["inspect-nir", "README.md"], "README.md: not an HDF5 file"),
    ])
    func badInput(_ c: ([String], String)) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snn-export-bad-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A plain safetensors file (no run configuration): snn convert of the reference fixture.
        let fixture = SNNBinary.repositoryRoot.appendingPathComponent("Tests/SNNTrainingTests/Fixtures/interop/convnp/weights.safetensors").path
        let arguments = c.0.map { $0 == "WEIGHTS" || $0 == "PLAIN" ? fixture : ($0.hasPrefix("x.") || $0 == "out.onnx" ? "\(folder)/\($0)" : $0) }
        let (status, output) = try SNNBinary.run(arguments)
        #expect(status != 0)
        #expect(output.contains(c.1), "\(output)")
        #expect(output.components(separatedBy: "\n").filter { !$0.isEmpty && !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") }.count == 1, "\(output)")
    }

    @Test("--format safetensors does what snn convert does")
    func safetensors() throws {
        let (folder, weights) = try checkpoint("st", topology: "CONVNP-4-3-1-1_L-8")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (s1, a) = try SNNBinary.run(["export", weights, "\(folder)/a.safetensors"])
        let (s2, b) = try SNNBinary.run(["convert", weights, "\(folder)/b.safetensors"])
        #expect(s1 == 0 && s2 == 0, "\(a)\(b)")
        #expect(a.contains("a.safetensors: 8 tensors"), "\(a)")
        let (x, y) = (try Data(contentsOf: URL(fileURLWithPath: "\(folder)/a.safetensors")), try Data(contentsOf: URL(fileURLWithPath: "\(folder)/b.safetensors")))
        #expect(x == y)
    }

    /// snnTorch and SpikingJelly import the exported files and compute what SwiftSNN computes
    /// (scripts/check_nir_export.py: five networks, every layer firing; readouts within 1e-5,
    /// ≥ 99.9 % equal spikes). Needs torch, snntorch, spikingjelly and nirtorch 2.6.
    @Test("snnTorch and SpikingJelly agree with SwiftSNN on exported files (SNN_SLOW_TESTS=1, needs torch, snntorch, spikingjelly)",
          .enabled(if: ProcessInfo.processInfo.environment["SNN_SLOW_TESTS"] == "1"))
    func simulators() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", SNNBinary.repositoryRoot.appendingPathComponent("scripts/check_nir_export.py").path,
                             "--snn", SNNBinary.executable.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "scripts/check_nir_export.py (exit 2: pip install torch snntorch spikingjelly nirtorch==2.6):\n\(output)")
        #expect(output.components(separatedBy: "\n").filter { $0.contains("snntorch") || $0.contains("spikingjelly") }.count == 10, "\(output)")
    }
}
