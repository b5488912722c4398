import ArgumentParser
import SNNCPU
import SNNTensor

/// The `snn` command-line tool.
@main
struct SNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snn",
        abstract: "Train and analyse spiking neural networks (SwiftSNN).",
        version: SwiftSNNVersion.string,
        subcommands: [Train.self, Forward.self, Convert.self, Model.self, DataCommand.self, Bench.self])

    /// Runs before any subcommand: make the CPU backend available.
    static func prepare() { CPUBackend.register() }
}

/// The version printed by `snn --version`.
enum SwiftSNNVersion {
    static let string = "0.1.0"
}

/// `snn bench ...`: benchmark programs (release builds only give meaningful figures).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of SwiftSNN's kernels.",
        subcommands: [BenchOps.self, BenchTrain.self, BenchData.self])
}
