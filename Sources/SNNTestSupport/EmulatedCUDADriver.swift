import Foundation
import SNNCUDA

/// The emulated CUDA driver of `Tests/SNNCUDATests/Emulation/emulated_driver.cpp`, built once
/// per process into a temporary folder kept until exit: a `libcuda.so.1` with one GPU whose
/// memory is host memory and whose kernels run through the launch-grid emulation. Pointing
/// `SNN_CUDA_LIBRARY_PATH` at ``folder`` runs SNNCUDA's host side end to end without a GPU.
public enum EmulatedCUDADriver {
    /// The repository root, from this file's path.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The folder holding `libcuda.so.1`, or the build's error.
    public static let folder: Result<String, Error> = Result {
        let folder = NSTemporaryDirectory() + "snn-emulated-driver-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let parts = [("neuron_scan", CUDAKernels.neuronScan), ("reductions", CUDAKernels.reductions),
                     ("batch_norm_neuron", CUDAKernels.batchNormNeuron), ("trt_regularizer", CUDAKernels.trtRegularizer),
                     ("optimizer", CUDAKernels.optimizer), ("elementwise", CUDAKernels.elementwise)]
        for (name, source) in parts { try source.write(toFile: "\(folder)/part_\(name).cu", atomically: true, encoding: .utf8) }
        let emulation = "\(root)/Tests/SNNCUDATests/Emulation"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["c++", "-std=c++20", "-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-pthread", "-I\(emulation)",
                             "-I\(folder)", "\(emulation)/emulated_driver.cpp", "-o", "\(folder)/libcuda.so.1"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "emulated driver: \(output)"])
        }
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "snn-emulated-driver-\(getpid())") }
        return folder
    }
}
