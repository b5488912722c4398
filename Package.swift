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
        .target(name: "SNNTensor"),
        .target(name: "SNNCPU", dependencies: ["SNNTensor", "CDNNL", "COpenBLAS", "COpenMP"], swiftSettings: kernels),
        .target(name: "SNNLayers", dependencies: ["SNNTensor"]),
        .target(name: "SNNSpiking", dependencies: ["SNNTensor", "SNNLayers"]),
        .target(name: "SNNModels", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking"]),
        .target(name: "SNNData", dependencies: ["SNNTensor", "CTurboJPEG"]),
        .target(name: "SNNTraining", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData"]),
        .target(name: "SNNTestSupport", dependencies: ["SNNTensor"]),
        .executableTarget(
            name: "snn",
            dependencies: [
                "SNNTensor", "SNNCPU", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData", "SNNTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "SNNTensorTests", dependencies: ["SNNTensor", "SNNTestSupport"]),
        .testTarget(name: "SNNCPUTests", dependencies: ["SNNTensor", "SNNCPU", "SNNTestSupport"]),
        .testTarget(name: "snnTests", dependencies: ["snn", "SNNTensor"]),
        .testTarget(name: "SNNDataTests", dependencies: ["SNNData", "SNNTensor", "SNNCPU"], exclude: ["Fixtures"]),
        .testTarget(name: "SNNTrainingTests", dependencies: ["SNNTraining", "SNNTensor", "SNNModels", "SNNData", "SNNCPU"], exclude: ["Fixtures"]),
        .testTarget(name: "SNNLayersTests", dependencies: ["SNNLayers", "SNNTensor", "SNNTestSupport"]),
        .testTarget(name: "SNNModelsTests", dependencies: ["SNNModels", "SNNLayers", "SNNSpiking", "SNNCPU", "SNNTensor"]),
    ],
    swiftLanguageModes: [.v5]
)

/// Release builds are `-O` with every check on (readers, the unpickler and the CLI face
/// untrusted files), except the CPU kernels, which run over unsafe pointers in loops whose
/// checks cost measurable time (`snn bench ops` with SNNCPU at `-O` against `-Ounchecked`,
/// figures in the README's engine section). Debug builds check everything.
var kernels: [SwiftSetting] { [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))] }
