import ArgumentParser
import Foundation
import SNNCUDA
import SNNDistributed
import SNNTensor

/// `snn selftest --device cuda[:N]`: the GPU's kernels against the reference backend.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check SwiftSNN's CUDA backend on a GPU against the reference backend and the CPU.",
        discussion: """
            Compiles the kernels with NVRTC for the GPU (kept in the kernel cache: SNN_KERNEL_CACHE, \
            else ~/.cache/swiftsnn/kernels) and checks, one line each as it completes: the kernels alone (the LIF scan, \
            the TRT penalty, three Adam steps); every op through the backend, forward and backward, on \
            shapes of several blocks with a partial last one, against the reference backend (with cuDNN, \
            each convolution run twice must give the same bits, and convolutions also with --tf32, within \
            2e-3, and as cuBLAS products; with cuBLAS, matrix products and convolutions also on \
            SwiftSNN's own kernels and with --amp bf16 and fp16, within the 16-bit type's rounding: 2e-2 \
            and 3e-3 of the largest magnitude); and a small \
            spiking CNN trained on the GPU and on the CPU from the same weights and batches, whose losses \
            must agree (within 1e-3 of max(|loss|, 1) over the first 10 steps, 5e-2 over all). Then, \
            unless --no-bench, the LIF kernel's bandwidth against a device-to-device copy, and the time it \
            all took (meant to stay under five minutes). Where NCCL is found, one more check: a tensor \
            summed by NCCL with one rank on this GPU arrives unchanged. Exits 1 on any mismatch, or \
            when there is no GPU, driver or NVRTC to run them.
            """)

    @Option(help: "The GPU to check: cuda or cuda:N.")
    var device: String = "cuda"

    @Option(name: .customLong("train-steps"), help: "Training steps compared with the CPU (0: none).")
    var trainSteps: Int = 50

    @Flag(inversion: .prefixedNo, help: "Measure the LIF kernel's bandwidth against a device-to-device copy.")
    var bench = true

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard ordinal != nil else { throw FlagError("--device must be cuda or cuda:N, got \(device)") }
        if trainSteps < 0 { throw FlagError("--train-steps must be 0 or more, got \(trainSteps)") }
    }

    private var ordinal: Int? {
        guard case .cuda(let n)? = Device(device), device.lowercased().hasPrefix("cuda") else { return nil }
        return n
    }

    func run() throws {
        let started = ContinuousClock.now
        SNN.prepare()
        let environment = ProcessInfo.processInfo.environment
        let backend: CUDABackend
        var checks: [CUDASelfTest.Check]
        do {
            backend = try CUDABackend.open(ordinal ?? 0, environment: environment)
            let driver = backend.gpu.driver
            let nvrtc = try NVRTC(driverVersion: driver.versionCode, environment: environment)
            checks = try CUDASelfTest.run(device: backend.gpu, architecture: backend.info.architecture, nvrtc: nvrtc,
                                          cache: KernelCache(directory: KernelCache.defaultDirectory(environment: environment)))
        } catch {
            throw FlagError("selftest needs a GPU: \(error)")
        }
        let gpu = backend.device
        let name = "\(backend.info.name) (\(backend.info.architecture)), CUDA driver \(backend.gpu.driver.version)"
        // In text, each check is printed as it completes: a device failure ends the process, and
        // the lines before it are what a lent GPU's one run keeps.
        let report: (CUDASelfTest.Check) -> Void = json ? { _ in } : Self.printLine
        func record(_ new: [CUDASelfTest.Check]) {
            checks += new
            new.forEach(report)
        }
        if !json {
            print("selftest on \(name)")
            let libraries = [backend.cublas, backend.cudnn].compactMap { $0.map { "\($0.component.rawValue) \($0.version)" } }
            print("libraries: \(libraries.isEmpty ? "none (SwiftSNN's own kernels only)" : libraries.joined(separator: ", "))")
        }
        checks.forEach(report)   // the kernels' checks, made before the GPU's name was known
        checks += CUDASelfTest.ops(on: gpu, report: report)
        checks += CUDASelfTest.otherPaths(backend, report: report)
        let nccl = Self.ncclCheck(backend)
        if let check = nccl.check { record([check]) }
        if !json, let note = nccl.note { print(note) }
        if trainSteps > 0 {
            let (onGPU, onCPU) = (try SelfTestTraining.losses(on: gpu, steps: trainSteps),
                                  try SelfTestTraining.losses(on: .cpu, steps: trainSteps))
            let first = min(10, trainSteps)
            record([
                CUDASelfTest.Check(name: "training: losses of the first \(first) steps vs the CPU",
                                   worst: SelfTestTraining.worst(Array(onGPU.prefix(first)), Array(onCPU.prefix(first))), tolerance: 1e-3),
                CUDASelfTest.Check(name: "training: losses of all \(trainSteps) steps vs the CPU",
                                   worst: SelfTestTraining.worst(onGPU, onCPU), tolerance: 5e-2),
            ])
        }
        let failed = checks.filter { !$0.passed }
        let bandwidth = bench ? try CUDASelfTest.bandwidth(backend) : nil
        // The whole check is meant to fit a lent GPU's few minutes (under five, benchmarks included).
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        if json {
            var object: [String: Any] = [
                "device": name, "passed": failed.isEmpty, "seconds": seconds,
                "checks": checks.map { ["name": $0.name, "worst": $0.worst, "tolerance": $0.tolerance, "passed": $0.passed] },
            ]
            if let bandwidth {
                object["bandwidth"] = ["lif_forward_gb_per_s": bandwidth.neuron, "copy_gb_per_s": bandwidth.copy,
                                       "ratio": bandwidth.neuron / bandwidth.copy]
            }
            try Output.printJSON(object)
        } else {
            print((failed.isEmpty ? "all \(checks.count) checks passed" : "\(failed.count) of \(checks.count) checks failed")
                  + String(format: " in %.1f s", seconds))
            if let bandwidth {
                print(String(format: "LIF scan forward %.0f GB/s, device-to-device copy %.0f GB/s: %.0f%% of copy",
                             bandwidth.neuron, bandwidth.copy, 100 * bandwidth.neuron / bandwidth.copy))
            }
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }

    /// One check's line, names padded to the longest (92 characters), written at once.
    static func printLine(_ c: CUDASelfTest.Check) {
        let name = c.name.count < 92 ? c.name.padding(toLength: 92, withPad: " ", startingAt: 0) : c.name
        print("\(c.passed ? "ok  " : "FAIL") \(name)  worst \(String(format: "%.2e", c.worst)) "
              + "(tolerance \(String(format: "%.0e", c.tolerance)))")
        fflush(stdout)
    }

    /// NCCL, where it is found, with one rank on this GPU (a check of what several GPUs' training
    /// relies on: NCCL on the backend's context, stream and memory): a GPU tensor summed into
    /// another must arrive unchanged. Without NCCL, no check and a note; a failure is printed on
    /// stderr.
    static func ncclCheck(_ backend: CUDABackend) -> (check: CUDASelfTest.Check?, note: String?) {
        let library: NCCLLibrary
        do { library = try NCCLLibrary.load() } catch {
            return (nil, "not checked: \(error) (only data-parallel training on several GPUs uses NCCL)")
        }
        let name = "\(library.version), one rank: a GPU tensor summed into another on the backend's stream"
        // The unique id needs a network interface for NCCL's bootstrap: a machine's matter, not SwiftSNN's.
        let id: [UInt8]
        do { id = try library.uniqueID() } catch { return (nil, "not checked: \(library.version): \(error)") }
        do {
            try backend.gpu.makeCurrent()
            let nccl = try NCCLCommunicator(library: library, uniqueID: id, rank: 0, size: 1,
                                            device: backend.device, stream: backend.stream, address: backend.deviceAddress(of:))
            let values = (0..<4099).map { Float($0) * 0.5 - 7 }
            let (input, output) = (Tensor(values, shape: [values.count]).to(backend.device), Tensor.zeros([values.count], device: backend.device))
            try nccl.allReduceSum(input, into: output)
            let worst = zip(output.toFloats(), values).map { Double(Swift.abs($0 - $1)) }.max() ?? 0
            return (CUDASelfTest.Check(name: name, worst: worst, tolerance: 0), nil)
        } catch {
            FileHandle.standardError.write(Data("snn selftest: \(name): \(error)\n".utf8))
            return (CUDASelfTest.Check(name: name, worst: .infinity, tolerance: 0), nil)
        }
    }
}
