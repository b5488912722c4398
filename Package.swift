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
        .target(name: "SNNTensor", swiftSettings: release),
        .target(name: "SNNCPU", dependencies: ["SNNTensor", "CDNNL", "COpenBLAS", "COpenMP"], swiftSettings: release),
        .target(name: "SNNLayers", dependencies: ["SNNTensor"], swiftSettings: release),
        .target(name: "SNNSpiking", dependencies: ["SNNTensor", "SNNLayers"], swiftSettings: release),
        .target(name: "SNNModels", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking"], swiftSettings: release),
        .target(name: "SNNData", dependencies: ["SNNTensor", "CTurboJPEG"], swiftSettings: release),
        .target(name: "SNNTraining", dependencies: ["SNNTensor", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData"], swiftSettings: release),
        .target(name: "SNNTestSupport", dependencies: ["SNNTensor"]),
        .executableTarget(
            name: "snn",
            dependencies: [
                "SNNTensor", "SNNCPU", "SNNLayers", "SNNSpiking", "SNNModels", "SNNData", "SNNTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: release),
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

/// Kernels are written over unsafe pointers; bounds checks stay on in debug builds only.
var release: [SwiftSetting] { [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))] }
