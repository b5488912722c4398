import ArgumentParser
import Foundation
import SNNCUDA
import SNNTensor

/// `snn selftest --device cuda[:N]`: the GPU's kernels against the reference backend.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check SwiftSNN's CUDA kernels on a GPU against the reference backend.",
        discussion: """
            Compiles the kernels with NVRTC for the GPU (kept in the kernel cache: SNN_KERNEL_CACHE, \
            else ~/.cache/swiftsnn/kernels), runs each on inputs of several blocks with a partial last \
            one, and compares with the reference backend: the LIF scan forward and backward, the TRT \
            penalty and its gradient, and three Adam steps. Prints one line per check and exits 1 on \
            any mismatch, or when there is no GPU, driver or NVRTC to run them.
            """)

    @Option(help: "The GPU to check: cuda or cuda:N.")
    var device: String = "cuda"

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard ordinal != nil else { throw FlagError("--device must be cuda or cuda:N, got \(device)") }
    }

    private var ordinal: Int? {
        if device == "cuda" { return 0 }
        guard device.hasPrefix("cuda:"), let n = Int(device.dropFirst(5)), n >= 0 else { return nil }
        return n
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let checks: [CUDASelfTest.Check]
        let name: String
        do {
            let driver = try CUDADriver.load(environment: environment)
            let gpus = try driver.devices()
            guard let ordinal, ordinal < gpus.count else {
                throw FlagError(gpus.isEmpty ? "no GPU: the NVIDIA driver (\(driver.path)) sees none"
                                : "--device \(device): this machine has GPUs 0..<\(gpus.count)")
            }
            let gpu = gpus[ordinal]
            name = "\(gpu.name) (\(gpu.architecture)), CUDA driver \(driver.version)"
            let nvrtc = try NVRTC(driverVersion: driver.versionCode, environment: environment)
            let cuda = try CUDADevice(driver: driver, ordinal: ordinal)
            checks = try CUDASelfTest.run(device: cuda, architecture: gpu.architecture, nvrtc: nvrtc,
                                          cache: KernelCache(directory: KernelCache.defaultDirectory(environment: environment)))
        } catch let error as FlagError {
            throw error
        } catch {
            throw FlagError("selftest needs a GPU: \(error)")
        }
        let failed = checks.filter { !$0.passed }
        if json {
            try Output.printJSON(["device": name, "passed": failed.isEmpty,
                                  "checks": checks.map { ["name": $0.name, "worst": $0.worst, "tolerance": $0.tolerance,
                                                          "passed": $0.passed] }])
        } else {
            print("selftest on \(name)")
            let width = checks.map(\.name.count).max() ?? 0
            for c in checks {
                let name = c.name.padding(toLength: width, withPad: " ", startingAt: 0)
                print("\(c.passed ? "ok  " : "FAIL") \(name)  worst \(String(format: "%.2e", c.worst)) "
                      + "(tolerance \(String(format: "%.0e", c.tolerance)))")
            }
            print(failed.isEmpty ? "all \(checks.count) checks passed" : "\(failed.count) of \(checks.count) checks failed")
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
