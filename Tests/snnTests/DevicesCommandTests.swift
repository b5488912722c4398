import Foundation
import SNNTestSupport
import Testing

/// `snn devices` on this machine (no NVIDIA driver in CI) and with stand-in NVIDIA libraries.
@Suite("snn devices")
struct DevicesCommandTests {
    @Test("without an NVIDIA driver: the CPU, no GPU, where it looked, exit status 0")
    func noDriver() throws {
        let (status, output) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent"])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("CPU: ") == true && lines.first?.contains(" cores, oneDNN uses ") == true, "\(output)")
        let (_, capped) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent", "SNN_MAX_CPU_ISA": "base"])
        #expect(capped.split(separator: "\n").first?.hasSuffix(", SwiftSNN's kernels base") == true, "\(capped)")
        if output.contains("GPU: none") {
            #expect(output.contains("[CUDA] no NVIDIA driver found: libcuda.so.1 is not in /nonexistent/libcuda.so.1, "), "\(output)")
        }
    }

    @Test("with a driver and the libraries: each GPU, then each library's version and file; --json")
    func stubDriver() throws {
        let folder = try CUDAStubLibraries.folder(["libcuda.so.1": CUDAStubLibraries.driverSource(initResult: 0),
                                                   "libnvrtc.so.13": CUDAStubLibraries.nvrtcSource,
                                                   "libcublas.so.13": CUDAStubLibraries.cublasSource])
        let (status, output) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": folder])
        #expect(status == 0, "\(output)")
        #expect(output.contains("GPU 0: SwiftSNN stub GPU 0, 80.0 GiB, sm_90, 132 multiprocessors\n"), "\(output)")
        #expect(output.contains("GPU 1: SwiftSNN stub GPU 1, 81.0 GiB, sm_91, 132 multiprocessors\n"), "\(output)")
        #expect(output.contains("CUDA driver 13.0: \(folder)/libcuda.so.1\n"), "\(output)")
        #expect(output.contains("NVRTC 13.0: \(folder)/libnvrtc.so.13\n"), "\(output)")
        #expect(output.contains("cuBLAS 13.1.0: \(folder)/libcublas.so.13\n"), "\(output)")
        // cuDNN is missing from the folder (and from this machine): named, with what to install.
        #expect(output.contains("[cuDNN] not found (tried \(folder)/libcudnn.so.9, libcudnn.so.9 (loader path), ")
                || output.contains("cuDNN 9."), "\(output)")
        // NCCL, for data-parallel training on several GPUs: found (the emulated one), and missing.
        let nccl = "\(try EmulatedCUDADriver.folder.get())/libnccl.so.2"
        let (_, withNCCL) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": folder, "SNN_NCCL_LIBRARY": nccl])
        #expect(withNCCL.contains("NCCL 2.21.5: \(nccl)\n"), "\(withNCCL)")
        let (_, noNCCL) = try SNNBinary.run(["devices"], environment: ["SNN_CUDA_LIBRARY_PATH": folder, "SNN_NCCL_LIBRARY": "/nonexistent/libnccl.so.2"])
        #expect(noNCCL.contains("[NCCL] SNN_NCCL_LIBRARY=/nonexistent/libnccl.so.2 could not be loaded (tried /nonexistent/libnccl.so.2): ")
                && noNCCL.contains("; data-parallel training on GPUs will sum gradients through host memory\n"), "\(noNCCL)")
        let (jsonStatus, json) = try SNNBinary.run(["devices", "--json"], environment: ["SNN_CUDA_LIBRARY_PATH": folder])
        #expect(jsonStatus == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let gpus = try #require(object["gpus"] as? [[String: Any]])
        #expect(gpus.map { $0["architecture"] as? String } == ["sm_90", "sm_91"])
        #expect((object["cpu"] as? [String: Any])?["isa"] is String)
    }
}

/// `snn selftest --device cuda`: on the emulated GPU (NVRTC from the CUDA wheels), and without one.
@Suite("snn selftest")
struct SelfTestCommandTests {
    @Test("on the emulated GPU: one line per check (kernels, ops through the backend, training against the CPU), exit status 0; --json")
    func emulatedGPU() throws {
        let environment = try EmulatedCUDADriver.environment()
        let (status, output) = try SNNBinary.run(["selftest", "--device", "cuda", "--train-steps", "2", "--no-bench"],
                                                 environment: environment)
        #expect(status == 0, "\(output)")
        #expect(output.hasPrefix("selftest on SwiftSNN emulated GPU (sm_90), CUDA driver 13.0\nlibraries: cuBLAS 13.10.0, cuDNN 9.28.1\n"),
                "\(output)")
        for line in ["ok   neuron scan backward ", "ok   conv2d 3x3, stride 2: gradient of input 1 ",
                     "ok   batch norm + LIF with residual: gradient of input 3 ", "ok   training: losses of all 2 steps vs the CPU ",
                     "ok   conv2d 3x3, stride 2 (own kernels): gradient of input 1 ",
                     "ok   conv2d 3x3, stride 2 (cuBLAS): gradient of input 1 ",
                     "ok   conv2d 3x3, stride 2 (--amp bf16, cuBLAS): gradient of input 1 ",
                     "ok   conv2d 3x3, stride 2 (cuDNN): the same bits twice ", "ok   conv2d 3x3, stride 2 (--tf32): output ", "ok   matmul (plain and transposed) (--amp fp16): output ",
                     "ok   dropout, uniform and normal draws: output ",
                     "ok   NCCL 2.21.5, one rank: a GPU tensor summed into another on the backend's stream "] {
            #expect(output.contains(line), "\(line) in \(output)")
        }
        // The last line says how long it all took (the device check's budget is a few minutes).
        let last = output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("all 119 checks passed in ") && last.hasSuffix(" s"), "\(output)")
        let (jsonStatus, json) = try SNNBinary.run(["selftest", "--json", "--train-steps", "0", "--no-bench"], environment: environment)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(jsonStatus == 0 && object["passed"] as? Bool == true && (object["checks"] as? [Any])?.count == 117, "\(json)")
        #expect((object["seconds"] as? Double).map { $0 > 0 && $0 < 300 } == true, "\(json)")
    }

    @Test("a kernel that faults ends the run, and the checks before it are already printed, then the failure naming the kernel")
    func deviceFailure() throws {
        var environment = try EmulatedCUDADriver.environment()
        environment["SNN_EMULATED_FAIL_KERNEL"] = "snn_bn_partial_statistics"   // batch norm's statistics
        let (status, output) = try SNNBinary.run(["selftest", "--train-steps", "2", "--no-bench"], environment: environment)
        #expect(status == 1, "\(output)")
        #expect(output.contains("\nok   max and average pooling 2x2: gradient of input 0 "), "\(output)")
        #expect(!output.contains("batch norm (training): output"), "\(output)")
        let last = output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last == "error: [snn_bn_partial_statistics] failed on the cuda:0 device: [cuLaunchKernel(snn_bn_partial_statistics)] "
                + "CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure (on SwiftSNN emulated GPU)", "\(output)")
    }

    @Test("without a GPU: one line saying so, exit status 1; a bad --device is named")
    func noGPU() throws {
        let (status, output) = try SNNBinary.run(["selftest"], environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent"])
        if output.contains("no NVIDIA driver found") {
            #expect(status == 1 && output.hasPrefix("Error: selftest needs a GPU: [CUDA] no NVIDIA driver found: "), "\(output)")
        }
        let (badStatus, bad) = try SNNBinary.run(["selftest", "--device", "cpu"])
        #expect(badStatus != 0 && bad.contains("--device must be cuda or cuda:N, got cpu"), "\(bad)")
    }

    @Test("train --device cuda without a driver: an error naming the flag and where it looked, before any data is read")
    func trainWithoutGPU() throws {
        let (status, output) = try SNNBinary.run(["train", "--dataset", "synthetic", "--device", "cuda", "--max-steps", "1"],
                                                 environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent"])
        if output.contains("no NVIDIA driver found") {
            #expect(status != 0 && output.contains("Error: --device cuda: [CUDA] no NVIDIA driver found: libcuda.so.1 is not in /nonexistent/"),
                    "\(output)")
        }
        let (badStatus, bad) = try SNNBinary.run(["train", "--dataset", "synthetic", "--device", "tpu"])
        #expect(badStatus != 0 && bad.contains("--device accepts cpu, cuda, cuda:N, reference; got tpu"), "\(bad)")
    }
}

/// `scripts/device-check.sh`, the one command a lent GPU machine runs, end to end on the emulated
/// GPU as it runs there: no Swift on `PATH`, a carried bundle to unpack, outputs under `$OUT`.
@Suite("scripts/device-check.sh")
struct DeviceCheckScriptTests {
    @Test("without Swift: unpacks the bundle, lists the devices, passes its arguments to the selftest, starts every benchmark within the time budget, exits with the selftest's status, benchmarks after a selftest that found the GPU and failed")
    func emulatedGPU() throws {
        let files = FileManager.default
        let root = files.temporaryDirectory.appendingPathComponent("snn-device-check-\(UUID().uuidString)")
        defer { try? files.removeItem(at: root) }
        try files.createDirectory(at: root.appendingPathComponent("scripts"), withIntermediateDirectories: true)
        let script = root.appendingPathComponent("scripts/device-check.sh")
        try files.copyItem(at: SNNBinary.repositoryRoot.appendingPathComponent("scripts/device-check.sh"), to: script)
        // The bundle: snn/bin/snn, here a stand-in that runs the built binary.
        let staged = root.appendingPathComponent("staging/snn/bin")
        try files.createDirectory(at: staged, withIntermediateDirectories: true)
        try "#!/bin/sh\nexec '\(SNNBinary.executable.path)' \"$@\"\n"
            .write(to: staged.appendingPathComponent("snn"), atomically: true, encoding: .utf8)
        try files.setAttributes([.posixPermissions: 0o755], ofItemAtPath: staged.appendingPathComponent("snn").path)
        try files.createDirectory(at: root.appendingPathComponent(".build"), withIntermediateDirectories: true)
        let tar = try Subprocess.run(URL(fileURLWithPath: "/usr/bin/env"),
                                     ["tar", "-C", root.appendingPathComponent("staging").path, "-czf",
                                      root.appendingPathComponent(".build/snn-linux-x86_64.tar.gz").path, "snn"])
        try #require(tar.status == 0, "\(tar.output)")

        // PATH without the folders that hold `swift`, as on the GPU machine.
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .filter { !files.isExecutableFile(atPath: "\($0)/swift") }.joined(separator: ":")
        let out = root.appendingPathComponent("out")
        var environment = try EmulatedCUDADriver.environment()
        environment["PATH"] = path
        environment["OUT"] = out.path
        environment["SNN_BENCH_TIMEOUT"] = "1"   // the emulated GPU is far too slow to finish a benchmark
        let (status, output) = try Subprocess.run(URL(fileURLWithPath: "/bin/bash"),
                                                  [script.path, "--train-steps", "2", "--no-bench"], environment: environment)
        #expect(status == 0, "\(output)")
        #expect(output.contains("GPU 0: SwiftSNN emulated GPU"), "\(output)")
        #expect(output.contains("ok   training: losses of all 2 steps vs the CPU "), "\(output)")
        #expect(output.contains("all 119 checks passed in "), "\(output)")
        // Every benchmark started with arguments it accepts and ran until the timeout's SIGTERM
        // stopped it (124), although Foundation's `Process` starts children with SIGTERM blocked
        // and the block is inherited down to `snn`: it unblocks it.
        let benchmarks = output.split(separator: "\n").filter { $0.hasPrefix("bench ") }
        #expect(benchmarks.count == 5, "\(output)")
        for line in benchmarks {
            #expect(line.contains(": exit 124: ") || line.contains(": exit 0: "), "\(line)")
        }
        for name in ["devices.txt", "selftest.txt", "bench-ops.json", "bench-ResNet-19-0.json", "bench-VGGSNN-fp16.json"] {
            #expect(files.fileExists(atPath: out.appendingPathComponent(name).path), "\(name)")
        }
        let selftest = try String(contentsOf: out.appendingPathComponent("selftest.txt"), encoding: .utf8)
        #expect(selftest.contains("all 119 checks passed in "), "\(selftest)")

        // Benchmarks that would run past the check's budget are skipped, each named.
        environment["SNN_CHECK_SECONDS"] = "1"
        let (spentStatus, spent) = try Subprocess.run(URL(fileURLWithPath: "/bin/bash"),
                                                      [script.path, "--train-steps", "0", "--no-bench"], environment: environment)
        #expect(spentStatus == 0, "\(spent)")
        #expect(spent.hasSuffix("bench ops: skipped: the check's 1 s are spent\nbench ResNet-19 --amp 0: skipped: the check's 1 s are spent\n"
            + "bench VGGSNN --amp 0: skipped: the check's 1 s are spent\nbench ResNet-19 --amp fp16: skipped: the check's 1 s are spent\n"
            + "bench VGGSNN --amp fp16: skipped: the check's 1 s are spent\n"), "\(spent)")

        // A selftest that never reached the GPU (a bad argument here): its status is the
        // script's, and no benchmark runs.
        let (badStatus, bad) = try Subprocess.run(URL(fileURLWithPath: "/bin/bash"), [script.path, "--train-steps", "x"],
                                                  environment: environment)
        #expect(badStatus != 0 && !bad.contains("\nbench "), "\(bad)")

        // A selftest that found the GPU and then failed (a kernel that faults here): the checks
        // before the failure are kept, every benchmark still starts, and the status is the selftest's.
        environment["SNN_CHECK_SECONDS"] = nil
        environment["SNN_EMULATED_FAIL_KERNEL"] = "snn_bn_partial_statistics"
        let (faultStatus, fault) = try Subprocess.run(URL(fileURLWithPath: "/bin/bash"), [script.path, "--train-steps", "0", "--no-bench"],
                                                      environment: environment)
        #expect(faultStatus == 1, "\(fault)")
        #expect(fault.contains("\nok   max and average pooling 2x2: gradient of input 0 ")
                && fault.contains("\nerror: [snn_bn_partial_statistics] failed on the cuda:0 device: ")
                && fault.contains("\nselftest: exit 1; the benchmarks run all the same"), "\(fault)")
        #expect(fault.split(separator: "\n").filter { $0.hasPrefix("bench ") }.count == 5, "\(fault)")
        let kept = try String(contentsOf: out.appendingPathComponent("selftest.txt"), encoding: .utf8)
        #expect(kept.contains("ok   max and average pooling 2x2: gradient of input 0 "), "\(kept)")
    }
}

/// `scripts/bench_reference.py`, which the device check runs beside `snn bench train` on the lent
/// GPU machine, whose Python has torch and tqdm but no tensorboardX.
@Suite("scripts/bench_reference.py")
struct BenchReferenceScriptTests {
    @Test("without tensorboardX: a stand-in takes its place and the reference's steps are timed (SNN_SLOW_TESTS=1, needs torch and the reference code)",
          .enabled(if: ProcessInfo.processInfo.environment["SNN_SLOW_TESTS"] == "1"))
    func withoutTensorBoardX() throws {
        let files = FileManager.default
        let hidden = files.temporaryDirectory.appendingPathComponent("snn-no-tensorboardx-\(getpid())")
        defer { try? files.removeItem(at: hidden) }
        try files.createDirectory(at: hidden, withIntermediateDirectories: true)
        try "raise ImportError('tensorboardX is hidden by the test')\n"
            .write(to: hidden.appendingPathComponent("tensorboardX.py"), atomically: true, encoding: .utf8)
        let reference = ProcessInfo.processInfo.environment["SNN_TRT_REFERENCE"] ?? "/tmp/trt-ref"
        let script = SNNBinary.repositoryRoot.appendingPathComponent("scripts/bench_reference.py").path
        let (status, output) = try Subprocess.run(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["python3", script, "--reference-dir", reference, "--snn", SNNBinary.executable.path, "--topology", "ResNet-19",
             "--dataset", "CIFAR10", "--T", "2", "--batch_size", "2", "--steps", "1", "--warmup", "0"],
            environment: ["PYTHONPATH": hidden.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("bench_reference: tensorboardX is not installed; the reference imports it for logs, a stand-in takes its place"),
                "\(output)")
        let json = try #require(output.split(separator: "\n").first { $0.hasPrefix("{") }, "\(output)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((object["samples_per_second"] as? Double).map { $0 > 0 } == true && object["implementation"] as? String == "reference",
                "\(json)")
    }
}
