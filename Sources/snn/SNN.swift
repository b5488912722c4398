import ArgumentParser
import SNNCPU
import SNNCUDA
import SNNTensor

/// The `snn` command-line tool.
@main
struct SNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snn",
        abstract: "Train and analyse spiking neural networks (SwiftSNN).",
        version: SwiftSNNVersion.string,
        subcommands: [Train.self, Forward.self, Convert.self, Export.self, InspectNIR.self, Model.self, DataCommand.self, Analyze.self, ReportCommand.self, Reproduce.self, Bench.self, Devices.self, SelfTestCommand.self])

    /// Runs before any subcommand: make the CPU backend available.
    static func prepare() {
        CPUBackend.register()
        CUDABackend.register()
    }

    /// The arguments as given (after ``attachingNegativeValues(_:)``), for commands that need
    /// to know which flags the user set explicitly (`snn train --resume`).
    nonisolated(unsafe) static var arguments: [String] = []

    static func main() {
        // Every command stops on SIGINT and SIGTERM (`timeout`, a scheduler, Ctrl-C), also when
        // its launcher started it with them blocked; `train` then installs its own handlers.
        unblockStopSignals()
        arguments = attachingNegativeValues(Array(CommandLine.arguments.dropFirst()))
        main(arguments)
    }

    /// `--lr -1` as `--lr=-1`: the argument parser reads a word starting with `-` as a flag, so
    /// a negative number after a flag would be "a missing value". Every flag that takes a number
    /// then gets the value and judges it by its own rule (`--lr must be positive, got -1.0`).
    static func attachingNegativeValues(_ arguments: [String]) -> [String] {
        var result: [String] = []
        for argument in arguments {
            if let flag = result.last, isNegativeNumber(argument), flag.hasPrefix("-"), flag != "--", !flag.contains("="), !isNegativeNumber(flag) {
                // `-T` is the one short flag taking a value; its long spelling is `--T`.
                result[result.count - 1] = (flag.hasPrefix("--") ? flag : "-" + flag) + "=" + argument
            } else {
                result.append(argument)
            }
        }
        return result
    }

    /// `-1`, `-0.5`, `-1e-3`, `-.5`, `-inf`, `-nan`: what Swift's number parsers read.
    static func isNegativeNumber(_ word: String) -> Bool {
        guard word.hasPrefix("-"), word.count > 1 else { return false }
        return Double(word) != nil
    }
}

/// The version printed by `snn --version`.
enum SwiftSNNVersion {
    static let string = "0.1.0"
}

/// `snn bench ...`: benchmark programs (release builds only give meaningful figures).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of SwiftSNN's kernels.",
        subcommands: [BenchOps.self, BenchTrain.self, BenchData.self, BenchAllReduce.self])
}
