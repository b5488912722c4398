// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SwiftSNN",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "snn", targets: ["snn"]),
        .library(name: "SNNTensor", targets: ["SNNTensor"]),
        .library(name: "SNNCPU", targets: ["SNNCPU"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "COpenMP", path: "Sources/COpenMP"),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),
        .systemLibrary(name: "CNCCL", path: "Sources/CNCCL"),
        .systemLibrary(name: "CCUDA", path: "Sources/CCUDA"),
        .target(name: "SNNTensor"),
        // Optimised in every build: the tests run debug builds, and these loops are the kernels.
        .target(name: "CSNNKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "SNNCPU", dependencies: ["SNNTensor", "CDNNL", "COpenBLAS", "COpenMP", "CSNNKernels"]),
        .target(name: "SNNLayers", dependencies: ["SNNTensor"]),
        .target(name: "SNNSpiking", dependencies: ["SNNTensor", "SNNLayers"]),
        .target(name: "SNNModels", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking"]),
        .target(name: "SNNData", dependencies: ["SNNTensor", "CTurboJPEG"]),
        .target(name: "SNNTraining", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData", "SNNAnalysis", "SNNDistributed"]),
        .target(name: "SNNAnalysis", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData"]),
        .target(name: "SNNReports"),
        .target(name: "SNNExport", dependencies: ["SNNTensor", "SNNModels", "CHDF5"]),
        .target(name: "SNNLibraries"),
        // CUDA is opened at run time: building needs no CUDA SDK.
        .target(name: "SNNCUDA", dependencies: ["SNNTensor", "SNNLibraries", "CCUDA"]),
        .target(name: "SNNDistributed", dependencies: ["SNNTensor", "SNNLibraries", "CNCCL"]),
        .target(name: "SNNTestSupport", dependencies: ["SNNTensor", "SNNCUDA"]),
        .executableTarget(
            name: "snn",
            dependencies: [
                "SNNTensor", "SNNCPU", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData", "SNNTraining", "SNNAnalysis", "SNNReports", "SNNExport", "SNNDistributed", "SNNCUDA",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // `swift run emulated-gpu FOLDER`: the tests' emulated GPU libraries, for `snn` to run on.
        .executableTarget(name: "emulated-gpu", dependencies: ["SNNTestSupport"], path: "Benchmarks/EmulatedGPU"),
        .testTarget(name: "SNNTensorTests", dependencies: ["SNNTensor", "SNNTestSupport"]),
        .testTarget(name: "SNNCPUTests", dependencies: ["SNNTensor", "SNNCPU", "SNNTestSupport"]),
        .testTarget(name: "snnTests", dependencies: ["snn", "SNNTensor", "SNNTestSupport"]),
        .testTarget(name: "SNNDataTests", dependencies: ["SNNData", "SNNTensor", "SNNCPU"], exclude: ["Fixtures"]),
        .testTarget(name: "SNNTrainingTests", dependencies: ["SNNTraining", "SNNTensor", "SNNModels", "SNNData", "SNNCPU"], exclude: ["Fixtures"]),
        .testTarget(name: "SNNAnalysisTests", dependencies: ["SNNAnalysis", "SNNModels", "SNNData", "SNNTensor", "SNNCPU"], exclude: ["Fixtures"]),
        .testTarget(name: "SNNReportsTests", dependencies: ["SNNReports"]),
        .testTarget(name: "SNNDistributedTests", dependencies: ["SNNDistributed", "SNNTensor"]),
        .testTarget(name: "SNNCUDATests", dependencies: ["SNNCUDA", "SNNData", "SNNDistributed", "SNNLibraries", "SNNModels", "SNNTensor",
                                                         "SNNTraining", "SNNTestSupport"],
                    exclude: ["Prototypes", "Emulation"]),
        .testTarget(name: "SNNExportTests", dependencies: ["SNNExport", "SNNModels", "SNNTensor", "SNNCPU"]),
        .testTarget(name: "SNNLayersTests", dependencies: ["SNNLayers", "SNNTensor", "SNNTestSupport"]),
        .testTarget(name: "SNNModelsTests", dependencies: ["SNNModels", "SNNLayers", "SNNSpiking", "SNNCPU", "SNNTensor"]),
    ],
    swiftLanguageModes: [.v5]
)

// Release builds are `-O` with every check on, the CPU kernels included. The kernels at
// `-Ounchecked` ran 3.9% fewer instructions over a whole small training run (callgrind:
// 230.1 M against 239.1 M for `snn bench train --topology CONV-16-3-1-1_CONVAP-32-3-1-1_L-10
// --dataset NMNIST --T 4 --batch_size 4 --steps 1 --warmup 0`, one thread), and no difference
// showed in wall time above this host's noise; but `-Ounchecked` also drops every
// `precondition`, so a label outside the readout wrote out of bounds instead of stopping with
// its message. Correct first: no target is built unchecked.
