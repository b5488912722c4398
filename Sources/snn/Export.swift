import ArgumentParser
import Foundation
import SNNExport
import SNNModels
import SNNTensor
import SNNTraining

/// `snn export`: a trained network to NIR (for neuromorphic hardware and simulators) or to
/// safetensors under the reference's names.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a trained network: NIR for neuromorphic hardware and simulators, or safetensors.",
        discussion: """
            CHECKPOINT is a SwiftSNN checkpoint (RUN/weights/best, with or without .safetensors), whose run \
            gives the network, or any weights snn convert reads (.pth, .safetensors) with --topology or --model. \
            The format follows OUT's extension (.nir or .safetensors) unless --format says it.

            NIR (the Neuromorphic Intermediate Representation, read by nir.read and the importers of \
            snnTorch, SpikingJelly, Norse, Lava, sinabs and Rockpool): conv + tdBN becomes one Conv2d with \
            batch norm folded in (running statistics); the neuron h_t = v_{t-1}/tau + x_t with a hard reset \
            becomes NIR's LIF as one exact forward-Euler step at --dt (beta = 1/tau, tau_nir = dt/(1-beta), \
            r = 1/(1-beta), v_leak = 0; IF when tau = 1); max pooling of spikes SumPool2d then Threshold(0); \
            average pooling AvgPool2d; \
            residual sums edges into one node; SEW AND Threshold(1.5), IAND Scale(-1) plus the shortcut into \
            Threshold(0.5); the readout Affine into Output, one value per step (the prediction averages \
            them over T). A reset by subtraction has no NIR form: refused unless --allow-inexact. \
            --portable writes only node types every importer maps, each replacement exact: average pooling \
            as SumPool2d with the next weights divided by the window, Threshold as a LIF of almost no memory \
            firing half-way between integers, Scale as a 1x1 Conv2d, a padded SumPool2d as a Conv2d. \
            The file is written to a temporary name and renamed: a failure leaves no partial file.
            """)

    @Argument(help: "A SwiftSNN checkpoint, or weights (.pth, .safetensors) with --topology or --model.")
    var checkpoint: String
    @Argument(help: "The file to write: OUT.nir or OUT.safetensors.")
    var output: String
    @Option(help: "nir or safetensors (default: from OUT's extension).")
    var format: String?
    @Option(name: .customLong("topology"), help: "A topology string or named model (default: the checkpoint's).")
    var topology: String?
    @Option(name: .customLong("model"), help: "A named model (default: the checkpoint's).")
    var model: String?
    @Option(name: .customLong("dataset"), help: "Input shape and class count (default: the checkpoint's run).")
    var dataset: String?
    @Option(name: [.customLong("input-shape"), .customLong("input_shape")], help: "One input frame C,H,W (default: the data set's).")
    var inputShape: String?
    @Option(name: [.customLong("T"), .customShort("T")], help: "Timesteps, recorded in the metadata (default: the checkpoint's, else 4).")
    var timesteps: Int?
    @Option(help: "NIR: the time step in seconds the continuous-time neuron parameters are derived for.")
    var dt: Double = 1e-4
    @Flag(name: .customLong("allow-inexact"), help: "NIR: write a reset by subtraction as a hard reset to 0 (recorded in the metadata) instead of refusing.")
    var allowInexact = false
    @Flag(help: "NIR: only Input, Output, Conv2d, Affine, Flatten, LIF/IF and unpadded SumPool2d, which every importer maps (snnTorch and SpikingJelly have no Threshold or Scale; hardware toolchains no AvgPool2d); each replacement is exact.")
    var portable = false
    @OptionGroup var network: NetworkOptions
    @OptionGroup var limits: ReaderLimitOptions

    func validate() throws {
        if topology != nil && model != nil { throw FlagError("pass at most one of --topology or --model") }
        if let model, NamedModel(rawValue: model) == nil {
            throw FlagError("--model accepts \(NamedModel.allCases.map(\.rawValue).joined(separator: ", ")); got \(model)")
        }
        if let dataset { _ = try DatasetName.parse(dataset) }
        if let inputShape, Convert.frame(inputShape) == nil { throw FlagError("--input-shape expects C,H,W (e.g. 2,48,48), got \(inputShape)") }
        if let timesteps, timesteps < 1 { throw FlagError("--T must be a positive integer, got \(timesteps)") }
        try requireFinite([("--dt", dt)])
        if dt <= 0 { throw FlagError("--dt must be positive, got \(dt)") }
        let kind = try resolvedFormat()
        if kind == "safetensors" && (allowInexact || portable) { throw FlagError("--allow-inexact and --portable apply to --format nir") }
        do { try FileSystem.checkCreatable(FileSystem.parent(output)) } catch { throw FlagError("\(output): \(error)") }
    }

    private func resolvedFormat() throws -> String {
        if let format {
            guard ["nir", "safetensors"].contains(format) else { throw FlagError("--format accepts nir, safetensors; got \(format)") }
            return format
        }
        if output.hasSuffix(".nir") { return "nir" }
        if output.hasSuffix(".safetensors") { return "safetensors" }
        throw FlagError("cannot tell the format from \(output): name it .nir or .safetensors, or pass --format nir|safetensors")
    }

    func run() throws {
        SNN.prepare()
        limits.apply()
        if try resolvedFormat() == "safetensors" {
            return try Convert.perform(source: checkpoint, destination: output, name: model ?? topology, dataset: dataset,
                                       inputShape: inputShape.flatMap(Convert.frame), timesteps: timesteps ?? 4, network: network)
        }
        let (net, path, description) = try loadNetwork()
        net.eval()
        var options = NIRExport.Options()
        options.dt = dt
        options.allowInexact = allowInexact
        options.portable = portable
        options.metadata = [("source", .string(FileSystem.lastComponent(path))), ("topology", .string(net.topology.description))]
        let graph: NIRGraph
        do { graph = try NIRExport.graph(net.graph(), options: options) } catch { throw CLIError("\(path): \(error)") }
        do { try graph.write(to: output) } catch { throw CLIError("\(output): \(error)") }
        let counts = Dictionary(grouping: graph.nodes, by: \.type).map { "\($0.value.count) \($0.key)" }.sorted()
        print("\(output): NIR \(NIRGraph.formatVersion) graph of \(description), \(graph.nodes.count) nodes (\(counts.joined(separator: ", "))), \(graph.edges.count) edges, dt \(dt) s")
        if let inexact = graph.metadata.first(where: { $0.key == "inexact" }), case .string(let text) = inexact.value {
            print("inexact: \(text)")
        }
    }

    /// The network with the checkpoint's weights, the weights file read, and a description.
    private func loadNetwork() throws -> (SpikingNetwork, String, String) {
        let path = Convert.weightsFile(checkpoint)
        let state: ReferenceWeights.StateDict
        do { state = try ReferenceWeights.read(path) } catch { throw CLIError("\(error)") }
        let run = path.hasSuffix(".safetensors") ? (try? CheckpointState.read(path)) : nil
        let net: SpikingNetwork
        if let name = model ?? topology {
            let frame = inputShape.flatMap(Convert.frame)
                ?? dataset.flatMap(DatasetName.init(named:))?.inputShape
                ?? run.flatMap { Convert.frame(of: $0.config) }
                ?? (name == "ResNet-19" ? DatasetName.cifar10 : .dvsCIFAR10).inputShape
            net = try Forward.network(name, frame: frame, timesteps: timesteps ?? run?.config.timesteps ?? 4, dataset: dataset ?? run?.config.dataset,
                                      weights: state.tensors, options: network, device: .cpu)
        } else {
            guard let run else {
                throw CLIError("\(path) is not a SwiftSNN checkpoint (no run configuration in it): pass --topology or --model (and --dataset or --input-shape) to say which network these weights are for")
            }
            let options: TrainOptions
            do {
                options = try TrainOptions.parse(run.config.trainArguments + (timesteps.map { ["--T", String($0)] } ?? []))
            } catch {
                throw CLIError("\(path): its run's configuration is not valid here: \(TrainOptions.message(for: error))")
            }
            let config = options.makeConfig()
            let expected = options.expectedInput
            let frame = inputShape.flatMap(Convert.frame) ?? expected.shape
            let rows = Export.readoutRows(state.tensors)
            net = try options.makeModel(config, shape: frame, classes: expected.classes ?? rows, device: .cpu)
        }
        do { try net.load(stateDict: state.tensors) } catch { throw CLIError("\(path): \(error)") }
        let name = run.map { $0.config.modelName ?? $0.config.topology } ?? model ?? topology ?? net.topology.description
        return (net, path, "\(name), T = \(net.config.timesteps), input \(net.config.inputShape.map(String.init).joined(separator: "×"))")
    }

    /// The readout's rows: the class count of weights whose data set does not fix it.
    private static func readoutRows(_ tensors: [String: SNNTensor.Tensor]) -> Int? {
        let readouts = tensors.filter { $0.key.hasSuffix(".module.weight") && $0.value.rank == 2 }
        return readouts.max { $0.key.localizedStandardCompare($1.key) == .orderedAscending }?.value.shape.first
    }
}

/// `snn inspect-nir FILE`: the nodes, shapes and edges of a NIR file.
struct InspectNIR: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect-nir",
        abstract: "List the nodes (type, output shape, parameters), edges and metadata of a NIR file.")

    @Argument(help: "A .nir file (HDF5, written by snn export or nir.write).")
    var file: String
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws { try InspectNIR.describe(file, json: json) }

    static func describe(_ file: String, json: Bool) throws {
        let graph: NIRGraph
        do { graph = try NIRGraph.read(file) } catch { throw CLIError("\(error)") }
        let shapes = graph.outputShapes()
        let incoming = Dictionary(grouping: graph.edges, by: \.to).mapValues { $0.map(\.from) }
        func dims(_ s: [Int]?) -> String { s.map { $0.isEmpty ? "scalar" : $0.map(String.init).joined(separator: "×") } ?? "?" }
        func parameters(_ n: NIRGraph.Node) -> String {
            n.fields.compactMap { key, value -> String? in
                switch value {
                case .floats(let v, let shape):
                    // A constant array by its value, any other by its shape.
                    if let first = v.first, v.allSatisfy({ $0 == first }) { return "\(key)=\(String(format: "%g", first))" }
                    return "\(key)[\(dims(shape))]"
                case .integers(let v, _): return "\(key)=(\(v.map(String.init).joined(separator: ", ")))"
                case .integer(let v): return "\(key)=\(v)"
                case .number(let v): return "\(key)=\(String(format: "%g", v))"
                case .string(let s): return "\(key)=\(s)"
                }
            }.filter { !$0.hasPrefix("shape=") }.joined(separator: " ")
        }
        let ordered = graph.topologicalOrder()
        if json {
            /// A scalar as itself (a string or a number), an array by its shape (node fields) or values (metadata).
            func plain(_ v: NIRGraph.Value, arraysBy shape: Bool) -> Any {
                if case .string(let s) = v { return s }
                if shape && !v.shape.isEmpty { return v.shape }
                let numbers = v.numbers ?? []
                return numbers.count == 1 && v.shape.isEmpty ? numbers[0] : numbers
            }
            var nodes: [[String: Any]] = []
            for n in ordered {
                var fields: [String: Any] = [:]
                for (k, v) in n.fields { fields[k] = plain(v, arraysBy: true) }
                nodes.append(["name": n.name, "type": n.type, "output_shape": shapes[n.name] as Any? ?? NSNull(),
                              "inputs": incoming[n.name] ?? [], "fields": fields])
            }
            var metadata: [String: Any] = [:]
            for (k, v) in graph.metadata { metadata[k] = plain(v, arraysBy: false) }
            try Output.printJSON(["file": file, "version": graph.version, "nodes": nodes,
                                  "edges": graph.edges.map { [$0.from, $0.to] }, "metadata": metadata])
            return
        }
        print("\(file): NIR \(graph.version), \(graph.nodes.count) nodes, \(graph.edges.count) edges")
        let nameWidth = min(max(graph.nodes.map(\.name.count).max() ?? 4, 4), 28)
        let typeWidth = max(graph.nodes.map(\.type.count).max() ?? 4, 4)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        print("\(pad("node", nameWidth))  \(pad("type", typeWidth))  \(pad("output", 10))  inputs; parameters")
        for n in ordered {
            let from = incoming[n.name].map { "← " + $0.joined(separator: " + ") } ?? ""
            let params = parameters(n)
            let row = "\(pad(n.name, nameWidth))  \(pad(n.type, typeWidth))  \(pad(dims(shapes[n.name]), 10))  \([from, params].filter { !$0.isEmpty }.joined(separator: "; "))"
            print(row.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
        }
        if !graph.metadata.isEmpty {
            print("metadata:")
            for (k, v) in graph.metadata {
                switch v {
                case .string(let s): print("  \(k): \(s)")
                default: print("  \(k): \(v.numbers?.map { String(format: "%g", $0) }.joined(separator: ", ") ?? "")")
                }
            }
        }
    }
}
