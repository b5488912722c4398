import Foundation
import SNNTensor
import SNNTestSupport
import Testing

/// End-to-end tests of `snn forward` and `snn convert` on the reference's fixtures
/// (Tests/SNNTrainingTests/Fixtures/interop, from scripts/make_interop_fixtures.py).
@Suite("snn forward and convert")
struct ForwardCommandTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SNNTrainingTests/Fixtures/interop")

    /// Runs the `snn` built beside the test bundle.
    private func snn(_ arguments: [String]) throws -> (status: Int32, output: String) { try SNNBinary.run(arguments) }

    private func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snn-fwd-\(getpid())-\(name)").path
    }

    private func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        let (x, y) = (a.toDoubles(), b.toDoubles())
        let scale = max(y.map(abs).max() ?? 0, 1e-12)
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    @Test("the issue's topology, TRT in training mode from a .pth: outputs, loss and every gradient within 1e-4 of PyTorch's, on the CPU and on the emulated GPU",
          arguments: ["cpu", "cuda"])
    func forwardTRT(device: String) throws {
        let dir = Self.fixtures.appendingPathComponent("convnp")
        let expected = dir.appendingPathComponent("expected.safetensors").path
        let out = temporary("trt-\(device).safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let environment = device == "cpu" ? [:] : try EmulatedCUDADriver.environment()
        let (status, output) = try SNNBinary.run([
            "forward", "--topology", "CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "--T", "3",
            "--weights", dir.appendingPathComponent("weights.pth").path, "--input", expected, "--labels", expected,
            "--output", out, "--train-mode", "--trtloss", "1", "--loss_lambda", "0.001", "--grads", "--device", device,
        ], environment: environment)
        #expect(status == 0, "\(output)")
        #expect(output.contains("output [4, 3, 10] (batch statistics), loss TRT"))
        let reference = try SafeTensors.load(expected)
        let got = try SafeTensors.load(out)
        #expect(relativeError(try #require(got["output"]), try #require(reference["output.train"])) <= 1e-4)
        #expect(got["loss"]?.shape == [] && got["loss"]?.dtype == .float32)
        #expect(relativeError(try #require(got["loss"]), try #require(reference["loss.train.trt"])) <= 1e-4)
        let grads = got.keys.filter { $0.hasPrefix("grad.") }
        #expect(grads.count == 8)
        for k in grads {
            let e = relativeError(try #require(got[k]), try #require(reference["grad.train.trt." + k.dropFirst(5)]))
            #expect(e <= 1e-4, "\(k): \(e)")
        }
    }

    @Test("a sequence input, soft reset (--v_reset -1) and the sigmoid surrogate, evaluation mode, SDT by default")
    func forwardSequence() throws {
        let dir = Self.fixtures.appendingPathComponent("residual")
        let expected = dir.appendingPathComponent("expected.safetensors").path
        let out = temporary("seq.safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (status, output) = try snn([
            "forward", "--topology", "CONV-8-3-1-1_RES-8-3=3-1=1-1=1_SEWRES~ADD-16-3=3-2=1-1=1_FC-16_L-5", "-T", "3",
            "--tau", "1.5", "--v_threshold", "0.8", "--v_reset", "-1", "--surrogate_type", "sigmoid", "--surrogate_param", "4",
            "--weights", dir.appendingPathComponent("weights.safetensors").path, "--input", expected, "--labels", expected,
            "--output", out,
        ])
        #expect(status == 0, "\(output)")
        let reference = try SafeTensors.load(expected)
        let got = try SafeTensors.load(out)
        #expect(relativeError(try #require(got["output"]), try #require(reference["output.eval"])) <= 1e-4)
        #expect(relativeError(try #require(got["loss"]), try #require(reference["loss.eval.sdt"])) <= 1e-4)
        #expect(!got.keys.contains { $0.hasPrefix("grad.") })
    }

    @Test("snn convert: the reference's checkpoint .pth becomes safetensors under the same names, checked against the topology")
    func convert() throws {
        let dir = Self.fixtures.appendingPathComponent("convnp")
        let out = temporary("converted.safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (status, output) = try snn(["convert", dir.appendingPathComponent("checkpoint.pth").path, out,
                                        "--topology", "CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "--input-shape", "3,8,8"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("model_state_dict") && output.contains("14 tensors"))
        let reference = try SafeTensors.load(dir.appendingPathComponent("weights.safetensors").path)
        let got = try SafeTensors.load(out)
        #expect(Set(got.keys) == Set(reference.keys))
        for (k, v) in reference { #expect(got[k]?.toDoubles() == v.toDoubles(), "\(k)") }
    }

    @Test("bad inputs get one line naming the file and the problem", arguments: [
        (["--topology", "CONVNP-16-3-1-1_L-10"], "missing key 'layers.2.module.weight'"),
        (["--topology", "CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "--T", "5", "--input", "SEQ"], "holds 3 timesteps"),
        (["--model", "VGGSNN", "--T", "3"], "does not fit"),
        (["--topology", "CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "--grads"], "--grads needs --labels"),
        (["--topology", "CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "--labels", "WEIGHTS"], "no tensor 'labels'"),
    ] as [([String], String)])
    func badForward(_ c: ([String], String)) throws {
        let dir = Self.fixtures.appendingPathComponent("convnp")
        let weights = dir.appendingPathComponent("weights.safetensors").path
        let seq = Self.fixtures.appendingPathComponent("residual/expected.safetensors").path
        var arguments = ["forward", "--weights", weights, "--input", dir.appendingPathComponent("expected.safetensors").path,
                         "--output", temporary("bad.safetensors")]
        if !c.0.contains("--T") { arguments += ["--T", "3"] }
        arguments += c.0.map { $0 == "SEQ" ? seq : ($0 == "WEIGHTS" ? weights : $0) }
        let (status, output) = try snn(arguments)
        #expect(status != 0)
        #expect(output.contains(c.1), "\(output)")
    }
}

extension ForwardCommandTests {
    @Test("a SwiftSNN checkpoint exports under the reference's names, runs in snn forward and seeds snn train --weights")
    func exportCheckpoint() throws {
        let dir = temporary("run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let topology = "CONV-4-3-1-1_L-8"
        let common = ["--batch-size", "8", "--max-steps", "1", "--epochs", "1", "--synthetic-samples", "16", "--T", "2",
                      "--topology", topology, "--output", dir]
        let (status, output) = try snn(["train"] + common)
        #expect(status == 0, "\(output)")
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir + "/result")
        let checkpoint = "\(dir)/result/\(try #require(runs.first))/weights/last"
        let exported = "\(dir)/exported.safetensors"
        let (convertStatus, convertOutput) = try snn(["convert", checkpoint, exported, "--topology", topology, "--dataset", "synthetic"])
        #expect(convertStatus == 0, "\(convertOutput)")
        #expect(convertOutput.contains("dropped") && convertOutput.contains("matches \(topology)"))
        let weights = try SafeTensors.load(exported)
        #expect(!weights.keys.contains { $0.hasPrefix("optimizer.") })
        #expect(weights["layers.0.conv2d_layer.module.1.num_batches_tracked"]?.item() == 1)
        #expect(weights["layers.2.module.weight"]?.shape == [8, 1024])

        let input = "\(dir)/input.safetensors"
        try SafeTensors.save(["input": Tensor.uniform([3, 2, 2, 32, 32], low: 0, high: 1, generator: RandomGenerator(seed: 1))], to: input)
        let out = "\(dir)/out.safetensors"
        let (forwardStatus, forwardOutput) = try snn(["forward", "--topology", topology, "--T", "2", "--weights", exported,
                                                      "--input", input, "--output", out])
        #expect(forwardStatus == 0, "\(forwardOutput)")
        #expect(try SafeTensors.load(out)["output"]?.shape == [3, 2, 8])

        let (trainStatus, trainOutput) = try snn(["train", "--weights", exported] + common)
        #expect(trainStatus == 0, "\(trainOutput)")
        #expect(trainOutput.contains("initial weights: \(exported)"))
    }
}
