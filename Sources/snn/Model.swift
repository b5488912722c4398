import ArgumentParser
import Foundation
import SNNModels
import SNNTensor

/// `snn model`: the layers of a network with output shapes, parameters and MACs.
struct Model: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a network's layers, output shapes, parameters and multiply-accumulates per timestep.")

    @Option(name: .customLong("topology"), help: "A named model (ResNet-19, VGGSNN, ResNet-34, SEW-ResNet-34) or a topology string.")
    var topology: String

    @Option(name: .customLong("dataset"), help: "Sets the input shape and class count: CIFAR10, CIFAR100, ImageNet100, DVSCIFAR10, NCaltech101, NMNIST, DVSGesture, synthetic.")
    var dataset: String = "CIFAR10"

    @Option(name: [.customLong("T"), .customShort("T")], help: "Timesteps (MACs are per timestep and sample).")
    var timesteps: Int = 4

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        _ = try DatasetName.parse(dataset)
        guard timesteps >= 1 else { throw FlagError("--T must be positive, got \(timesteps)") }
    }

    func run() throws {
        SNN.prepare()
        let data = try DatasetName.parse(dataset)
        let (shape, classes) = (data.inputShape, data.classes)
        let net: SpikingNetwork
        do {
            net = try SpikingNetwork(topology, classes: classes, config: ModelConfig(timesteps: timesteps, inputShape: shape),
                                     generator: RandomGenerator(seed: 0))
        } catch {
            throw CLIError("--topology: \(error)")
        }
        let parameters = net.parameterCount
        let macs = net.summary.map(\.macsPerTimestep).reduce(0, +)
        if json {
            let layers = net.summary.map { row -> [String: Any] in
                ["index": row.index, "token": row.token, "output_shape": row.outputShape, "parameters": row.parameters,
                 "macs_per_timestep": row.macsPerTimestep]
            }
            let object: [String: Any] = ["topology": net.topology.description, "dataset": data.rawValue, "input_shape": shape,
                                         "classes": classes, "T": timesteps, "parameters": parameters,
                                         "macs_per_timestep": macs, "layers": layers]
            try Output.printJSON(object)
            return
        }
        print("\(topology) on \(data.rawValue) (input \(shape.map(String.init).joined(separator: "×")), \(classes) classes, T=\(timesteps))")
        print("idx  layer                                output          parameters   MACs/timestep")
        for row in net.summary {
            let out = row.outputShape.map(String.init).joined(separator: "×")
            let index = String(row.index).leftPadded(3)
            print("\(index)  \(pad(row.token, 36)) \(pad(out, 14)) \(grouped(row.parameters).leftPadded(12)) \(grouped(row.macsPerTimestep).leftPadded(15))")
        }
        print("     \(pad("total", 36)) \(pad("", 14)) \(grouped(parameters).leftPadded(12)) \(grouped(macs).leftPadded(15))")
    }

    private func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? String(s.prefix(n - 1)) + "…" : s.padding(toLength: n, withPad: " ", startingAt: 0)
    }

    private func grouped(_ n: Int) -> String {
        let f = NumberFormatter()
        f.numberStyle = .decimal
        f.groupingSeparator = ","
        return f.string(from: NSNumber(value: n)) ?? String(n)
    }
}

extension String {
    /// Right-aligns in `width` columns.
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
