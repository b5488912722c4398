import ArgumentParser
import Foundation
import SNNTraining

/// How `snn train --resume 1` combines the configuration saved in the checkpoint with the flags
/// given again.
///
/// The saved configuration is written back as flags, the user's flags are parsed after them (the
/// last value of a flag wins), and the two configurations are compared field by field. Flags
/// that define the experiment (data, model, loss, optimiser, batch size, seed) must match the
/// run; flags that control how it runs may change, and each change is named once.
enum ResumeConfiguration {
    /// Fields a resumed run may change, with the flag that changes them.
    static let changeable: [String: String] = [
        "epochs": "--epochs", "device": "--device", "workers": "--workers", "clipGradNorm": "--clip-grad-norm",
        "checkpointEpochs": "--checkpoint_epochs", "saveCheckpoints": "--save_checkpoint", "dataOptions.data_dir": "--data-dir",
        "fisherEpochs": "--observe_fi/--fi_epochs", "observeCentroid": "--observe_ic", "accumulate": "--accumulate",
        "syncBatchNorm": "--sync-bn", "amp": "--amp", "tf32": "--tf32",
    ]

    /// The flags behind every other field, for messages.
    static let defining: [String: String] = [
        "dataset": "--dataset", "topology": "--topology", "modelName": "--topology", "timesteps": "--T",
        "batchSize": "--batch_size", "learningRate": "--lr", "optimizer": "--optimizer", "scheduler": "--scheduler",
        "weightDecay": "--weight_decay", "l1": "--l1", "l2": "--l2",
        "loss": "the loss (--trtloss, --tetloss, --loss_*, --criterion)",
        "neuron": "the neuron (--tau, --v_threshold, --v_reset, --surrogate_*)", "dropout": "--dropout", "batchNorm": "--norm",
        "kaimingInit": "--init", "seed": "--seed", "dropLast": "--drop-last",
        "dataOptions.augment": "--augment", "dataOptions.frame_size": "--frame-size", "dataOptions.dvs_frames": "--dvs-frames",
        "dataOptions.classes": "--classes", "dataOptions.samples": "--synthetic-samples", "dataOptions.skip_corrupt": "--skip-corrupt",
    ]

    /// The options of the resumed run and the overrides to announce, or an error naming every
    /// flag that contradicts the run. `given` are the user's `snn train` arguments.
    static func merge(saved: TrainingConfig, given: [String], checkpoint: String) throws -> (TrainOptions, overrides: [String]) {
        let merged: TrainOptions
        do {
            merged = try TrainOptions.parse(saved.trainArguments + given)
        } catch {
            throw CLIError("--resume_path \(checkpoint): the run's configuration with these flags is not valid: \(TrainOptions.message(for: error))")
        }
        var overrides: [String] = [], conflicts: [String] = []
        for (field, value, was) in differences(saved, merged.makeConfig()) {
            if let flag = changeable[field] {
                overrides.append("\(flag) \(value) (the run had \(was))")
            } else {
                conflicts.append("\(defining[field] ?? field) \(value) (the run has \(was))")
            }
        }
        if !conflicts.isEmpty {
            let weights = checkpoint.hasSuffix(".safetensors") ? checkpoint
                : (checkpoint.hasSuffix(".json") ? String(checkpoint.dropLast(5)) : checkpoint) + ".safetensors"
            throw CLIError("a resumed run keeps the settings that define it, but \(conflicts.joined(separator: ", ")) "
                + "\(conflicts.count == 1 ? "differs" : "differ"); leave \(conflicts.count == 1 ? "it" : "them") out to resume, "
                + "or start a new run from these weights with --weights \(shellQuoted(weights))")
        }
        return (merged, overrides)
    }

    /// The fields whose values differ, as (field, new value, saved value). `maxSteps` is not
    /// compared: a resumed run stops where its own `--max-steps` says. Data options that the
    /// saved run did not record (older checkpoints) take the new value without comparison.
    static func differences(_ saved: TrainingConfig, _ new: TrainingConfig) -> [(String, String, String)] {
        let a = fields(saved), b = fields(new)
        var result: [(String, String, String)] = []
        for key in Set(a.keys).union(b.keys).sorted() where key != "maxSteps" {
            if key.hasPrefix("dataOptions."), a[key] == nil { continue }
            if a[key] != b[key] { result.append((key, b[key] ?? "none", a[key] ?? "none")) }
        }
        return result
    }

    /// Every field of a configuration as text (`dataOptions` flattened to `dataOptions.<key>`).
    static func fields(_ config: TrainingConfig) -> [String: String] {
        var result: [String: String] = [:]
        for child in Mirror(reflecting: config).children {
            guard let label = child.label else { continue }
            if label == "dataOptions" {
                for (k, v) in config.dataOptions ?? [:] { result["dataOptions.\(k)"] = v }
                continue
            }
            let mirror = Mirror(reflecting: child.value)
            if mirror.displayStyle == .optional {
                if let wrapped = mirror.children.first { result[label] = "\(wrapped.value)" }
            } else {
                result[label] = "\(child.value)"
            }
        }
        return result
    }
}

extension TrainingConfig {
    /// `snn train` flags that rebuild this configuration (each as one `--flag=value` word, so
    /// negative values need no care), `--max-steps` excepted.
    var trainArguments: [String] {
        var flags: [(String, String)] = [
            ("--dataset", dataset), ("--topology", topology), ("--T", "\(timesteps)"), ("--epochs", "\(epochs)"),
            ("--batch_size", "\(batchSize)"), ("--lr", "\(learningRate)"), ("--optimizer", optimizer.rawValue),
            ("--scheduler", scheduler ? "1" : "0"), ("--weight_decay", "\(weightDecay)"), ("--l1", "\(l1)"), ("--l2", "\(l2)"),
            ("--tau", "\(neuron.tau)"), ("--v_threshold", "\(neuron.threshold)"),
            ("--surrogate_type", neuron.surrogate.kind), ("--surrogate_param", "\(neuron.surrogate.parameter)"),
            ("--dropout", "\(dropout)"), ("--norm", batchNorm ? "tdBN" : "No"), ("--init", kaimingInit ? "1" : "0"),
            ("--seed", "\(seed)"), ("--device", device), ("--workers", "\(workers)"),
            ("--checkpoint_epochs", checkpointEpochs.map(String.init).joined(separator: "-")),
            ("--save_checkpoint", saveCheckpoints ? "1" : "0"),
        ]
        switch neuron.reset {
        case .soft: flags.append(("--v_reset", "-1"))
        case .hard(let v): flags.append(("--v_reset", "\(v)"))
        }
        switch loss {
        case .sdt(let criterion):
            flags += [("--trtloss", "0"), ("--tetloss", "0"), ("--criterion", criterion.rawValue)]
        case .tet(let lambda, let means, let criterion):
            flags += [("--tetloss", "1"), ("--tet_lambda", "\(lambda)"), ("--loss_means", "\(means)"),
                      ("--criterion", (criterion ?? .crossEntropy).rawValue)]
        case .trt(let lambda, let decay, let epsilon, let eta):
            flags += [("--trtloss", "1"), ("--tetloss", "0"), ("--loss_lambda", "\(lambda)"), ("--loss_decay", "\(decay)"),
                      ("--loss_epsilon", "\(epsilon)"), ("--loss_eta", "\(eta)")]
        }
        if let c = clipGradNorm { flags.append(("--clip-grad-norm", "\(c)")) }
        if let epochs = fisherEpochs, !epochs.isEmpty {
            flags += [("--observe_fi", "1"), ("--fi_epochs", epochs.map(String.init).joined(separator: "-"))]
        }
        if observeCentroid == true { flags.append(("--observe_ic", "1")) }
        if let k = accumulate, k > 1 { flags.append(("--accumulate", "\(k)")) }
        flags.append(("--amp", amp ?? "0"))
        let dataFlags = ["augment": "--augment", "frame_size": "--frame-size", "dvs_frames": "--dvs-frames", "classes": "--classes",
                         "samples": "--synthetic-samples", "data_dir": "--data-dir"]
        for (key, value) in (dataOptions ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let flag = dataFlags[key] { flags.append((flag, value)) }
        }
        var words = flags.map { "\($0.0)=\($0.1)" }
        if dropLast { words.append("--drop-last") }
        if syncBatchNorm == true { words.append("--sync-bn") }
        if tf32 == true { words.append("--tf32") }
        if dataOptions?["skip_corrupt"] == "1" { words.append("--skip-corrupt") }
        return words
    }
}

/// `word` as one shell word: unchanged when it holds only safe characters, else single-quoted
/// (run folders are named like `TRT(CE)_T8_...`, which bash cannot parse unquoted).
func shellQuoted(_ word: String) -> String {
    let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,+@%-")
    if !word.isEmpty && word.unicodeScalars.allSatisfy(safe.contains) { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
