import ArgumentParser
import Foundation
import SNNCPU
import SNNCUDA
import SNNDistributed

/// `snn devices`: what SwiftSNN can compute on here.
struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the CPU and the NVIDIA GPUs SwiftSNN can compute on, with the libraries it found.",
        discussion: """
            The CPU: its model, cores and the instruction set oneDNN uses. Each GPU: memory, SM \
            version and multiprocessors, then the CUDA driver, NVRTC, cuBLAS, cuDNN and NCCL versions \
            and the files they were loaded from. CUDA is loaded at run time: libcuda.so.1 from the \
            driver; NVRTC, cuBLAS and cuDNN from SNN_CUDA_LIBRARY_PATH, the loader's path, the \
            nvidia/* folders of Python environments (CUDA 12 and 13 wheels) or /usr/local/cuda; \
            NCCL (data-parallel training on several GPUs) from SNN_NCCL_LIBRARY, the loader's path \
            or the nvidia/nccl folder of a Python environment. Without an NVIDIA driver it says so \
            and exits 0.
            """)

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        SNN.prepare()
        let environment = ProcessInfo.processInfo.environment
        let cpu: [String: Any] = ["model": Self.cpuModel() ?? "unknown", "cores": ProcessInfo.processInfo.activeProcessorCount,
                                  "isa": CPUBackend.instructionSet, "kernel_isa": CPUBackend.kernelInstructionSet]
        var gpus: [[String: Any]] = []
        var libraries: [[String: Any]] = []
        var problems: [String] = []
        do {
            let driver = try CUDADriver.load(environment: environment)
            libraries.append(["name": "CUDA driver", "version": driver.version, "path": driver.path])
            for device in try driver.devices() {
                gpus.append(["index": device.ordinal, "name": device.name, "memory_bytes": device.memoryBytes,
                             "architecture": device.architecture, "multiprocessors": device.multiprocessors])
            }
            if gpus.isEmpty { problems.append("the NVIDIA driver (\(driver.path)) sees no GPU") }
            for component in CUDAToolkit.Component.allCases {
                do {
                    let library = try CUDAToolkit.load(component, driverVersion: driver.versionCode, environment: environment)
                    libraries.append(["name": component.rawValue, "version": library.version, "path": library.path])
                } catch {
                    problems.append("\(error)")
                }
            }
            // Only data-parallel training on several GPUs uses NCCL.
            do {
                let nccl = try NCCLLibrary.load()
                libraries.append(["name": "NCCL", "version": nccl.versionNumber, "path": nccl.path])
            } catch {
                problems.append("\(error); data-parallel training on GPUs will sum gradients through host memory")
            }
        } catch {
            problems.append("\(error)")
        }
        if json {
            try Output.printJSON(["cpu": cpu, "gpus": gpus, "cuda_libraries": libraries, "problems": problems])
            return
        }
        print("CPU: \(cpu["model"]!), \(cpu["cores"]!) cores, oneDNN uses \(cpu["isa"]!), SwiftSNN's kernels \(cpu["kernel_isa"]!)")
        if gpus.isEmpty { print("GPU: none") }
        for gpu in gpus {
            let gib = Double(gpu["memory_bytes"] as! Int) / Double(1 << 30)
            print("GPU \(gpu["index"]!): \(gpu["name"]!), \(String(format: "%.1f", gib)) GiB, \(gpu["architecture"]!), "
                  + "\(gpu["multiprocessors"]!) multiprocessors")
        }
        for library in libraries { print("\(library["name"]!) \(library["version"]!): \(library["path"]!)") }
        for problem in problems { print(problem) }
    }

    /// `AMD EPYC 9654 96-Core Processor` from `/proc/cpuinfo`.
    static func cpuModel() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }
}
