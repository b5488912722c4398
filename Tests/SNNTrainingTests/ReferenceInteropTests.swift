import Foundation
import SNNCPU
import SNNData
import SNNLayers
import SNNModels
import SNNTensor
import SNNTraining
import Testing

/// Agreement with the TRT reference implementation: state-dict names, weights import/export, and
/// outputs, losses and gradients on fixtures written by scripts/make_interop_fixtures.py from the
/// reference's own code (torch is not needed here).
@Suite("reference interop")
struct ReferenceInteropTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/interop")

    /// case.json of one fixture case.
    struct Case: Decodable {
        struct Neuron: Decodable {
            let tau: Double, v_threshold: Double, v_reset: Double, surrogate_type: String, surrogate_param: Double
        }
        let topology: String
        let T: Int
        let frame: [Int]
        let classes: Int
        let neuron: Neuron
        let losses: [String: [String]]
        let grad_modes: [String: [String]]
        let threshold_margin: Double
    }

    /// `max |a - b| / max(max |b|, 1e-12)`: the error relative to the reference tensor's scale.
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        let (x, y) = (a.toDoubles(), b.toDoubles())
        precondition(x.count == y.count && a.shape == b.shape, "shapes \(a.shape) and \(b.shape)")
        let scale = max(y.map(abs).max() ?? 0, 1e-12)
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    /// The `TrainingLoss` a case's `snn forward` flags select.
    static func loss(_ flags: [String]) -> TrainingLoss {
        var f: [String: String] = [:]
        for i in stride(from: 0, to: flags.count - 1, by: 2) { f[flags[i]] = flags[i + 1] }
        let value = { (k: String, d: Double) in f[k].flatMap(Double.init) ?? d }
        if f["--tetloss"] == "1" {
            return .tet(lambda: value("--loss_lambda", 1e-5), means: value("--loss_means", 1), criterion: f["--criterion"] == "MSE" ? .mse : nil)
        }
        if f["--trtloss"] == "1" {
            return .trt(lambda: value("--loss_lambda", 1e-5), decay: value("--loss_decay", 0.5), epsilon: value("--loss_epsilon", 1e-5),
                        eta: value("--loss_eta", 0.05))
        }
        return .sdt(f["--criterion"] == "MSE" ? .mse : .crossEntropy)
    }

    static func load(_ name: String) throws -> (Case, [String: Tensor]) {
        let dir = fixtures.appendingPathComponent(name)
        let c = try JSONDecoder().decode(Case.self, from: Data(contentsOf: dir.appendingPathComponent("case.json")))
        return (c, try SafeTensors.load(dir.appendingPathComponent("expected.safetensors").path))
    }

    static func network(_ c: Case) throws -> SpikingNetwork {
        CPUBackend.register()
        let n = c.neuron
        let neuron = NeuronParameters(tau: n.tau, threshold: n.v_threshold, reset: n.v_reset < 0 ? .soft : .hard(n.v_reset),
                                      surrogate: Surrogate(kind: n.surrogate_type, parameter: n.surrogate_param) ?? .triangle(gamma: 1))
        return try SpikingNetwork(c.topology, classes: c.classes, config: ModelConfig(timesteps: c.T, inputShape: c.frame, neuron: neuron),
                                  generator: RandomGenerator(seed: 0))
    }

    /// Compares one case against its fixture; returns the worst relative error per kind.
    @discardableResult
    static func check(_ dir: URL, weights: String = "weights.safetensors", tolerance: Double = 1e-4) throws -> [String: Double] {
        let c = try JSONDecoder().decode(Case.self, from: Data(contentsOf: dir.appendingPathComponent("case.json")))
        let expected = try SafeTensors.load(dir.appendingPathComponent("expected.safetensors").path)
        var worst: [String: Double] = [:]
        for mode in ["train", "eval"] {
            for (name, flags) in c.losses.sorted(by: { $0.key < $1.key }) {
                let net = try network(c)
                try ReferenceWeights.load(dir.appendingPathComponent(weights).path, into: net)
                let withGrads = c.grad_modes[mode]?.contains(name) ?? false
                let r = ReferenceForward.run(net, input: try #require(expected["input"]), labels: expected["labels"], loss: loss(flags),
                                             training: mode == "train", gradients: withGrads)
                let out = relativeError(r.output, try #require(expected["output.\(mode)"]))
                #expect(out <= tolerance, "\(dir.lastPathComponent) output.\(mode): relative error \(out)")
                worst["output.\(mode)"] = max(worst["output.\(mode)"] ?? 0, out)
                let l = relativeError(try #require(r.loss), try #require(expected["loss.\(mode).\(name)"]))
                #expect(l <= tolerance, "\(dir.lastPathComponent) loss.\(mode).\(name): relative error \(l)")
                worst["loss.\(mode).\(name)"] = l
                guard withGrads else { continue }
                #expect(r.gradients.count == net.namedParameters().count)
                for (key, g) in r.gradients {
                    let e = relativeError(g, try #require(expected["grad.\(mode).\(name).\(key)"], "no reference gradient for \(key)"))
                    #expect(e <= tolerance, "\(dir.lastPathComponent) grad.\(mode).\(name).\(key): relative error \(e)")
                    worst["grad.\(mode).\(name)"] = max(worst["grad.\(mode).\(name)"] ?? 0, e)
                }
            }
        }
        return worst
    }

    @Test("state-dict keys and shapes equal the reference's for every block kind, BN buffers included")
    func keyNames() throws {
        struct Row: Decodable { let topology: String, norm: String, frame: [Int], keys: [[Key]], parameters: Int }
        enum Key: Decodable {
            case name(String), shape([Int])
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) { self = .name(s) } else { self = .shape(try c.decode([Int].self)) }
            }
        }
        let rows = try JSONDecoder().decode([Row].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("keys.json")))
        #expect(rows.count >= 10)
        for row in rows {
            var reference: [String: [Int]] = [:]
            for pair in row.keys {
                guard pair.count == 2, case .name(let k) = pair[0], case .shape(let s) = pair[1] else { continue }
                reference[k] = s
            }
            let classes = Int(row.topology.split(separator: "-").last ?? "") ?? 0
            let net = try SpikingNetwork(row.topology, classes: classes,
                                         config: ModelConfig(timesteps: 2, inputShape: row.frame, batchNorm: row.norm == "tdBN"),
                                         generator: RandomGenerator(seed: 0))
            let ours = net.stateDict().mapValues(\.shape)
            #expect(Set(ours.keys) == Set(reference.keys), "\(row.topology) \(row.norm): only ours \(Set(ours.keys).subtracting(reference.keys).sorted()), only the reference's \(Set(reference.keys).subtracting(ours.keys).sorted())")
            for (k, s) in reference where ours[k] != nil { #expect(ours[k] == s, "\(row.topology) \(k)") }
            #expect(net.parameterCount == row.parameters, "\(row.topology)")
        }
    }

    @Test("outputs, SDT/TET/TRT losses and gradients agree with the reference (relative error <= 1e-4)",
          arguments: ["convnp", "residual"])
    func agreement(_ name: String) throws {
        try Self.check(Self.fixtures.appendingPathComponent(name))
    }

    @Test("a .pth state dict, the reference's checkpoint dict and a DataParallel state dict load alike")
    func torchFiles() throws {
        let dir = Self.fixtures.appendingPathComponent("convnp")
        let reference = try SafeTensors.load(dir.appendingPathComponent("weights.safetensors").path)
        for (file, note) in [("weights.pth", nil), ("checkpoint.pth", "model_state_dict"), ("weights_dataparallel.pth", "module."),
                             ("weights_zip64.pth", nil)] {
            let read = try ReferenceWeights.read(dir.appendingPathComponent(file).path)
            #expect(Set(read.tensors.keys) == Set(reference.keys), "\(file)")
            for (k, v) in reference {
                let t = try #require(read.tensors[k])
                #expect(t.dtype == v.dtype && t.shape == v.shape && t.toDoubles() == v.toDoubles(), "\(file) \(k)")
            }
            if let note { #expect(read.notes.contains { $0.contains(note) }, "\(file): \(read.notes)") }
        }
        try Self.check(dir, weights: "weights.pth")
    }

    @Test("export then import gives back every tensor, under the reference's names")
    func roundTrip() throws {
        let (c, _) = try Self.load("convnp")
        let net = try Self.network(c)
        try ReferenceWeights.load(Self.fixtures.appendingPathComponent("convnp/weights.pth").path, into: net)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-export-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ReferenceWeights.export(net, to: path)
        let back = try SafeTensors.load(path)
        let reference = try SafeTensors.load(Self.fixtures.appendingPathComponent("convnp/weights.safetensors").path)
        #expect(Set(back.keys) == Set(reference.keys))
        for (k, v) in reference { #expect(back[k]?.toDoubles() == v.toDoubles() && back[k]?.dtype == v.dtype, "\(k)") }
        let twin = try Self.network(c)
        try ReferenceWeights.load(path, into: twin)
        for (k, v) in net.stateDict() { #expect(twin.stateDict()[k]?.toDoubles() == v.toDoubles(), "\(k)") }
    }

    @Test("a missing, unexpected or wrongly shaped key is an error naming the file and the key")
    func strictKeys() throws {
        let (c, _) = try Self.load("convnp")
        var tensors = try SafeTensors.load(Self.fixtures.appendingPathComponent("convnp/weights.safetensors").path)
        tensors["layers.0.conv2d_layer.module.1.running_var"] = nil
        tensors["layers.9.extra"] = Tensor.zeros([2])
        tensors["layers.3.module.bias"] = Tensor.zeros([11])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-bad-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.save(tensors, to: path)
        #expect { try ReferenceWeights.load(path, into: try Self.network(c)) } throws: { error in
            let s = "\(error)"
            return s.contains(path) && s.contains("missing key 'layers.0.conv2d_layer.module.1.running_var'")
                && s.contains("unexpected key 'layers.9.extra'") && s.contains("'layers.3.module.bias' has shape [11], expected [10]")
        }
    }

    @Test("--l1/--l2 penalties go with SDT only, as in the reference's train.py (regression)")
    func penaltiesWithSDTOnly() throws {
        CPUBackend.register()
        let outputs = Tensor([0.2, -0.1, 0.4, 0.3, 0.0, -0.2], shape: [2, 1, 3])
        let labels = Tensor(labels: [2])
        let w = Tensor([0.5, -1.0], shape: [2])
        let params = [(key: "layers.0.weight", value: w)]
        for loss in [TrainingLoss.trt(lambda: 1e-3, decay: 0.5, epsilon: 1e-5, eta: 0.05), .tet(lambda: 0.1, means: 1)] {
            let plain = loss(outputs, labels: labels, parameters: params).item()
            #expect(loss.total(outputs, labels: labels, parameters: params, l1: 0.3, l2: 0.7).item() == plain)
        }
        let sdt = TrainingLoss.sdt(.crossEntropy)
        let plain = sdt(outputs, labels: labels, parameters: params).item()
        let total = sdt.total(outputs, labels: labels, parameters: params, l1: 0.3, l2: 0.7).item()
        #expect(abs(total - plain - (0.3 * 1.5 + 0.7 * 1.25)) < 1e-6)
    }

    @Test("a TET loss recorded before TET took a criterion still decodes (checkpoint sidecars)")
    func tetDecodesWithoutCriterion() throws {
        let old = try JSONDecoder().decode(TrainingLoss.self, from: Data(#"{"tet":{"lambda":0.1,"means":1}}"#.utf8))
        #expect(old == .tet(lambda: 0.1, means: 1, criterion: nil))
        let mse = TrainingLoss.tet(lambda: 0.1, means: 1, criterion: .mse)
        #expect(try JSONDecoder().decode(TrainingLoss.self, from: JSONEncoder().encode(mse)) == mse)
    }

    /// VGGSNN: 37 MB of weights are not committed; with SNN_SLOW_TESTS=1 and torch installed the
    /// fixture is regenerated into a temporary folder from the reference code.
    @Test("VGGSNN agrees with the reference (SNN_SLOW_TESTS=1, needs torch and the reference code)",
          .enabled(if: ProcessInfo.processInfo.environment["SNN_SLOW_TESTS"] == "1"))
    func vggsnn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-vggsnn-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/make_interop_fixtures.py").path
        func python(_ arguments: [String]) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            var all = ["python3", script] + arguments
            if let reference = ProcessInfo.processInfo.environment["SNN_TRT_REFERENCE"] { all += ["--reference", reference] }
            process.arguments = all
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
        try #require(try python([dir.path, "--cases", "vggsnn"]) == 0, "python3 scripts/make_interop_fixtures.py --cases vggsnn failed (needs torch, safetensors and the reference code at /tmp/trt-ref or SNN_TRT_REFERENCE)")
        let worst = try Self.check(dir.appendingPathComponent("vggsnn"))
        for (k, v) in worst.sorted(by: { $0.key < $1.key }) { print(String(format: "VGGSNN %@: max relative error %.2e", k, v)) }
        // The .pth the reference saved holds the same tensors.
        let pth = try ReferenceWeights.read(dir.appendingPathComponent("vggsnn/weights.pth").path).tensors
        let safetensors = try SafeTensors.load(dir.appendingPathComponent("vggsnn/weights.safetensors").path)
        #expect(Set(pth.keys) == Set(safetensors.keys))
        for (k, v) in safetensors { #expect(pth[k]?.toFloats() == v.toFloats(), "\(k)") }
        // The other way: SwiftSNN's export loads into the reference's SNN with strict=True.
        let c = try JSONDecoder().decode(Case.self, from: Data(contentsOf: dir.appendingPathComponent("vggsnn/case.json")))
        let net = try Self.network(c)
        try ReferenceWeights.load(dir.appendingPathComponent("vggsnn/weights.pth").path, into: net)
        let exported = dir.appendingPathComponent("exported.safetensors").path
        try ReferenceWeights.export(net, to: exported)
        #expect(try python(["--check-load", "VGGSNN", c.frame.map(String.init).joined(separator: ","), exported]) == 0)
    }
}
