import Foundation
import SNNTestSupport
import Testing

/// `snn train --device cuda` and `snn analyze --device cuda` end to end on the emulated GPU: the
/// command line opens the GPU, batches move to it, checkpoints are written from it, and the
/// losses and analyses are the CPU's.
@Suite("snn train and analyze on the emulated GPU")
struct GPUTrainTests {
    /// One training step of a tiny spiking CNN on the synthetic data (add --epochs, --device, --output).
    static let tinyRun = ["train", "--synthetic-samples", "16", "--batch_size", "8", "--T", "2", "--topology",
                          "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", "--max-steps", "1"]

    /// A scratch folder for one test of this process.
    static func scratch(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snn-gpu-\(name)-\(getpid())").path
    }

    @Test("two steps on cuda log the CPU's losses and write the CPU run's checkpoint files")
    func trainMatchesCPU() throws {
        let environment = try EmulatedCUDADriver.environment()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("snn-gpu-train-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        var losses: [String: [Double]] = [:], runs: [String: String] = [:]
        for device in ["cuda", "cpu"] {
            let output = "\(base)/\(device)"
            let (status, log) = try SNNBinary.run(
                ["train", "--synthetic-samples", "32", "--batch_size", "8", "--T", "2", "--topology", "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8",
                 "--epochs", "1", "--max-steps", "2", "--device", device, "--amp", "0", "--output", output], environment: environment)
            #expect(status == 0, "\(log)")
            let run = "\(output)/result/\(try #require(try FileManager.default.contentsOfDirectory(atPath: output + "/result").first))"
            runs[device] = run
            let rows = try String(contentsOfFile: run + "/steps.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            losses[device] = rows.map { Double($0.split(separator: ",")[1]) ?? .nan }
        }
        let (gpu, cpu) = (try #require(losses["cuda"]), try #require(losses["cpu"]))
        #expect(gpu.count == 2 && cpu.count == 2)
        for (g, c) in zip(gpu, cpu) { #expect(abs(g - c) <= 1e-4 * max(abs(c), 1), "losses \(gpu) on cuda, \(cpu) on cpu") }
        // The checkpoint was written from the GPU's tensors: the same tensor files as the CPU run's, holding
        // the same tensors (their headers differ only in the device named in the metadata).
        let files = { (run: String) in
            try FileManager.default.subpathsOfDirectory(atPath: run + "/weights").sorted().filter { $0.hasSuffix(".safetensors") }
        }
        let (gpuRun, cpuRun) = (try #require(runs["cuda"]), try #require(runs["cpu"]))
        #expect(try !files(gpuRun).isEmpty && files(gpuRun) == files(cpuRun))
        for file in try files(gpuRun) {
            let sizes = try [gpuRun, cpuRun].map { (try FileManager.default.attributesOfItem(atPath: "\($0)/weights/\(file)")[.size] as? Int) ?? 0 }
            #expect(sizes[0] > 50_000 && abs(sizes[0] - sizes[1]) <= 16, "\(file): \(sizes)")
        }
        // The analyses run on the run's device (the GPU) or another (--device cpu), with the same Fisher information.
        var fisher: [String: [Double]] = [:]
        for device in ["cuda", "cpu"] {
            let (status, out) = try SNNBinary.run(["analyze", "fisher", "--checkpoint", gpuRun + "/weights/last", "--batches", "1",
                                                   "--device", device, "--json"], environment: environment)
            #expect(status == 0, "\(out)")
            let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
            fisher[device] = (object?["fisher_information"] as? [Double]) ?? []
            #expect(fisher[device]?.count == 2, "\(out)")
        }
        for (g, c) in zip(fisher["cuda"] ?? [], fisher["cpu"] ?? []) { #expect(abs(g - c) <= 1e-4 * abs(c), "\(fisher)") }
        let (status, out) = try SNNBinary.run(["analyze", "fisher", "--checkpoint", gpuRun + "/weights/last", "--batches", "1"],
                                              environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent"])
        if out.contains("no NVIDIA driver found") {
            #expect(status != 0 && out.contains("Error: the run computed on cuda, which is not available here ("), "\(out)")
            #expect(out.contains("choose another with --device cpu"), "\(out)")
        }
    }

    @Test("bench train on cuda: samples/s, the GPU's peak tensor memory and a breakdown by primitive (--json)")
    func benchOnGPU() throws {
        let environment = try EmulatedCUDADriver.environment()
        let (status, out) = try SNNBinary.run(["bench", "train", "--device", "cuda", "--topology", "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8",
                                               "--dataset", "synthetic", "--T", "2", "--batch_size", "4", "--steps", "1",
                                               "--warmup", "1", "--json"], environment: environment)
        #expect(status == 0, "\(out)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        #expect((object["samples_per_second"] as? Double ?? 0) > 0 && object["gpu"] as? String == "SwiftSNN emulated GPU")
        #expect((object["peak_gpu_tensor_mib"] as? Double).map { $0 >= 0 } == true, "\(out)")
        #expect(object["libraries"] as? [String] == ["cuBLAS 13.10.0", "cuDNN 9.28.1"], "\(out)")
        // cuDNN's choice for each convolution and direction (the emulated cuDNN's: algorithm 2).
        let algorithms = try #require(object["conv_algorithms"] as? [[String: Any]], "\(out)")
        #expect(algorithms.count == 5 && algorithms.allSatisfy { $0["algorithm"] as? Int == 2 && $0["operands"] as? String == "float" },
                "\(algorithms)")
        let breakdown = try #require(object["breakdown_seconds"] as? [String: Double], "\(out)")
        for category in ["conv forward", "conv backward-data", "conv backward-weights", "neuron", "optimizer", "TRT regulariser"] {
            #expect(breakdown[category] != nil, "\(category) in \(breakdown)")
        }
        // The backend's primitives a step: one convolution forward per conv layer.
        let calls = try #require(object["breakdown_calls"] as? [String: Double], "\(out)")
        #expect(calls["conv forward"] == 2 && Set(calls.keys).isSubset(of: Set(breakdown.keys)), "\(calls)")
        // Nothing nests on a GPU: every category's calls are calls to the backend.
        #expect(object["calls_per_step"] as? Double == calls.values.reduce(0, +), "\(out)")
    }

    @Test("bench train on the emulated GPU with SNN_EMULATED_NO_WORK=1 (the README's host-side timing): the same calls, ResNet-19 at batch 64 in seconds")
    func benchWithoutWork() throws {
        let bench = ["bench", "train", "--device", "cuda", "--topology", "CONV-4-3-1-1_CONVAP-8-3-1-1_L-8", "--dataset", "synthetic",
                     "--T", "2", "--batch_size", "4", "--steps", "1", "--warmup", "1", "--json"]
        var calls: [Double] = []
        for noWork in ["0", "1"] {
            var environment = try EmulatedCUDADriver.environment()
            environment["SNN_EMULATED_NO_WORK"] = noWork
            let (status, out) = try SNNBinary.run(bench, environment: environment)
            #expect(status == 0, "\(out)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
            calls.append(try #require(object["calls_per_step"] as? Double, "\(out)"))
        }
        #expect(calls[0] == calls[1] && calls[0] > 20, "\(calls)")
        // The README's command, which would run for hours on the emulated GPU if it computed
        // (stopped after 300 s, status 124).
        var environment = try EmulatedCUDADriver.environment()
        environment["SNN_EMULATED_NO_WORK"] = "1"
        let (status, out) = try Subprocess.run(URL(fileURLWithPath: "/usr/bin/timeout"),
                                               ["300", SNNBinary.executable.path, "bench", "train", "--device", "cuda", "--topology",
                                                "ResNet-19", "--dataset", "CIFAR10", "--T", "6", "--batch_size", "64", "--steps", "2",
                                                "--warmup", "1"], environment: environment)
        #expect(status == 0 && out.contains("840 calls to the backend a step"), "\(out)")
    }

    @Test("bench ops on cuda: each kernel group timed with a wait for the GPU, and the copy bandwidth beside the neuron's (--json)")
    func benchOpsOnGPU() throws {
        let (status, out) = try SNNBinary.run(["bench", "ops", "--device", "cuda", "--kernels", "neuron", "--repeat", "1", "--warmup", "0",
                                               "--json"], environment: try EmulatedCUDADriver.environment())
        #expect(status == 0, "\(out)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        #expect(object["device"] as? String == "cuda:0" && object["conv_algorithm"] == nil, "\(out)")
        for key in ["neuron_scan_fwd_gbps", "neuron_scan_bwd_gbps", "bn_neuron_fwd_gbps", "bn_neuron_bwd_gbps",
                    "bn_neuron_bwd_three_launches_gbps", "bernoulli_draw_gbps", "copy_gbps"] {
            #expect((object[key] as? Double ?? 0) > 0, "\(key) in \(out)")
        }
    }

    @Test("--amp: 1 (the reference's default) is fp16 with loss scaling on a GPU and nothing on the CPU; bf16 and fp16 need a GPU")
    func ampFlag() throws {
        let environment = try EmulatedCUDADriver.environment()
        let base = Self.scratch("amp")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let tiny = Self.tinyRun + ["--epochs", "1"]
        let (status, out) = try SNNBinary.run(tiny + ["--device", "cuda", "--output", base + "/gpu"], environment: environment)
        #expect(status == 0 && out.contains("mixed precision: fp16 operands for matrix products and convolutions, float32 elsewhere, "
                                            + "dynamic loss scaling (--amp 0: float32 throughout)"), "\(out)")
        let (cpuStatus, cpuOut) = try SNNBinary.run(tiny + ["--device", "cpu", "--output", base + "/cpu"])
        #expect(cpuStatus == 0 && !cpuOut.contains("mixed precision"), "\(cpuOut)")
        let (badStatus, bad) = try SNNBinary.run(tiny + ["--amp", "bf16", "--output", base + "/bad"])
        #expect(badStatus != 0 && bad.contains("--amp bf16 needs a GPU (--device cuda); on the cpu device everything is float32"), "\(bad)")
        let (typoStatus, typo) = try SNNBinary.run(tiny + ["--amp", "half", "--output", base + "/bad"])
        #expect(typoStatus != 0 && typo.contains("--amp accepts 0, 1, off, bf16, fp16; got half"), "\(typo)")
    }

    @Test("--tf32: said on a GPU, kept by a resumed run, an error on the CPU; bench train --json reports it")
    func tf32Flag() throws {
        let environment = try EmulatedCUDADriver.environment()
        let base = Self.scratch("tf32")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let tiny = Self.tinyRun + ["--amp", "0"]
        let (status, out) = try SNNBinary.run(tiny + ["--epochs", "1", "--device", "cuda", "--tf32", "--output", base], environment: environment)
        #expect(status == 0 && out.contains("TF32: float32 convolutions may use TF32 tensor cores"), "\(out)")
        let run = "\(base)/result/\(try #require(try FileManager.default.contentsOfDirectory(atPath: base + "/result").first))"
        let (resumed, resumedOut) = try SNNBinary.run(["train", "--resume", "1", "--resume_path", run + "/weights/last", "--epochs", "2",
                                                       "--max-steps", "1"], environment: environment)
        #expect(resumed == 0 && resumedOut.contains("TF32: float32 convolutions may use TF32 tensor cores"), "\(resumedOut)")
        let (badStatus, bad) = try SNNBinary.run(tiny + ["--epochs", "1", "--tf32", "--output", base + "/cpu"])
        #expect(badStatus != 0 && bad.contains("--tf32 needs a GPU (--device cuda); on the cpu device convolutions are float32"), "\(bad)")
        let (benchStatus, bench) = try SNNBinary.run(["bench", "train", "--device", "cuda", "--tf32", "--topology", "CONV-4-3-1-1_L-8",
                                                      "--dataset", "synthetic", "--T", "1", "--batch_size", "2", "--steps", "1",
                                                      "--warmup", "0", "--json"], environment: environment)
        let object = try JSONSerialization.jsonObject(with: Data(bench.utf8)) as? [String: Any]
        #expect(benchStatus == 0 && object?["tf32"] as? Bool == true, "\(bench)")
    }
}
