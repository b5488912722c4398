import ArgumentParser
import Foundation
import SNNAnalysis
import SNNReports
import SNNTensor
import SNNTraining

/// An experiment of the paper's tables: the data set, the network, T, TRT's settings (Table S2)
/// and the accuracies the specification still has.
struct PaperExperiment {
    let name: String
    let dataset: String
    let topology: String
    let timesteps: Int
    /// TRT's η, λ and decay (ε is 1e-5 everywhere).
    let eta: Double, lambda: Double, decay: Double
    /// Best test accuracy (%) in the paper by method, where TRT-SPEC.md §10 kept it.
    let paper: [String: Double]

    static let all: [PaperExperiment] = {
        var list: [PaperExperiment] = []
        for (data, name) in [("CIFAR10", "cifar10"), ("CIFAR100", "cifar100")] {
            for t in [6, 4, 2] {
                list.append(PaperExperiment(name: "\(name)-resnet19-T\(t)", dataset: data, topology: "ResNet-19", timesteps: t,
                                            eta: 0.05, lambda: 1e-5, decay: 0.25, paper: [:]))
            }
        }
        list.append(PaperExperiment(name: "imagenet100-sewresnet34-T4", dataset: "ImageNet100", topology: "SEW-ResNet-34", timesteps: 4,
                                    eta: 0.001, lambda: 5e-5, decay: 0.5, paper: [:]))
        list.append(PaperExperiment(name: "dvscifar10-vggsnn-T10", dataset: "DVSCIFAR10", topology: "VGGSNN", timesteps: 10,
                                    eta: 0.001, lambda: 5e-5, decay: 0.5, paper: ["SDT": 78.50, "TRT": 83.20]))
        list.append(PaperExperiment(name: "ncaltech101-vggsnn-T10", dataset: "NCaltech101", topology: "VGGSNN", timesteps: 10,
                                    eta: 0.05, lambda: 5e-5, decay: 0.5, paper: [:]))
        // Not in the paper: end to end in minutes on what every checkout has or can make.
        list.append(PaperExperiment(name: "synthetic-T8", dataset: "synthetic", topology: DatasetName.synthetic.defaultTopology, timesteps: 8,
                                    eta: 0.05, lambda: 1e-5, decay: 0.5, paper: [:]))
        list.append(PaperExperiment(name: "nmnist-T10", dataset: "NMNIST", topology: DatasetName.nmnist.defaultTopology, timesteps: 10,
                                    eta: 0.05, lambda: 5e-5, decay: 0.5, paper: [:]))
        return list
    }()

    /// The loss flags of each method: SDT with CE; TET with its paper's λ = 0.05 and φ = 1; TRT
    /// with this experiment's Table S2 settings.
    func lossFlags(_ method: String) -> [String] {
        switch method {
        case "SDT": return ["--trtloss", "0", "--tetloss", "0", "--criterion", "CE"]
        case "TET": return ["--tetloss", "1", "--loss_lambda", "0.05", "--loss_means", "1.0"]
        default: return ["--trtloss", "1", "--loss_eta", "\(eta)", "--loss_lambda", "\(lambda)", "--loss_decay", "\(decay)", "--loss_epsilon", "1e-5"]
        }
    }
}

/// `snn reproduce`: a named experiment of the paper with SDT, TET and TRT, then one report.
struct Reproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a named experiment of the paper with SDT, TET and TRT and write one report comparing them.",
        discussion: """
            Trains the experiment's network on --data-dir with each method (the paper's flags: TRT's η, λ and \
            decay from its Table S2, TET with λ = 0.05 and φ = 1, SDT with cross-entropy; everything else the \
            reference's defaults), measures the information centroid every epoch and the Fisher information \
            after the last, the firing rates and energy of each best checkpoint, then writes \
            OUTPUT/reproduce-<name>.html with the three runs overlaid and their best test accuracy beside the \
            paper's where the specification has it. --epochs shortens the runs (the paper trains 300). \
            Experiments: \(PaperExperiment.all.map(\.name).joined(separator: ", ")).
            """)

    @Argument(help: "The experiment, e.g. dvscifar10-vggsnn-T10 or synthetic-T8 (see the list above).")
    var experiment: String
    @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "The data set's folder (not for synthetic-T8).")
    var dataDir: String?
    @Option(help: "Epochs per run (default: the reference's 300; 8 for synthetic-T8).")
    var epochs: Int?
    @Option(help: "Methods to run, joined by ',': any of SDT, TET, TRT.")
    var methods: String = "SDT,TET,TRT"
    @Option(help: "Folder the runs (OUTPUT/result/<run>) and the report go to.")
    var output: String = "runs"
    @Option(name: [.customLong("batch_size"), .customLong("batch-size")], help: "Batch size (default: the reference's 64).")
    var batchSize: Int?
    @Option(name: [.customLong("synthetic-samples")], help: "Training samples of synthetic-T8.")
    var syntheticSamples: Int?
    @Option(help: "Another network than the paper's (a smaller one for a quick look; the comparison then is not the paper's).")
    var topology: String?

    var chosen: PaperExperiment? { PaperExperiment.all.first { $0.name.lowercased() == experiment.lowercased() } }
    var methodList: [String] { methods.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() } }

    func validate() throws {
        guard let chosen else {
            throw FlagError("unknown experiment '\(experiment)'; one of: \(PaperExperiment.all.map(\.name).joined(separator: ", "))")
        }
        if chosen.dataset != "synthetic" && dataDir == nil {
            throw FlagError("\(chosen.name) needs --data-dir: the folder holding \(DatasetName(named: chosen.dataset)?.layout ?? chosen.dataset)")
        }
        if let e = epochs, e < 1 { throw FlagError("--epochs must be positive, got \(e)") }
        if methodList.isEmpty || !methodList.allSatisfy(["SDT", "TET", "TRT"].contains) {
            throw FlagError("--methods takes SDT, TET, TRT joined by ','; got \(methods)")
        }
    }

    func run() throws {
        SNN.prepare()
        installInterruptHandler()
        guard let chosen else { return }
        var runs: [(method: String, summary: TrainingSummary)] = []
        for method in methodList {
            var args = ["--dataset", chosen.dataset, "--topology", topology ?? chosen.topology, "--T", "\(chosen.timesteps)", "--output", output,
                        "--observe_ic", "1"] + chosen.lossFlags(method)
            if let dataDir { args += ["--data-dir", dataDir] }
            if let epochs { args += ["--epochs", "\(epochs)"] }
            if let batchSize { args += ["--batch_size", "\(batchSize)"] }
            if let syntheticSamples { args += ["--synthetic-samples", "\(syntheticSamples)"] }
            let options: TrainOptions
            do { options = try TrainOptions.parse(args) } catch { throw CLIError("\(chosen.name): \(TrainOptions.message(for: error))") }
            let total = options.epochs ?? (chosen.dataset == "synthetic" ? 8 : 300)
            // The Fisher information after the last epoch, on every run.
            let withFisher = try TrainOptions.parse(args + ["--observe_fi", "1", "--fi_epochs", "\(total)"])
            print("== \(chosen.name): \(method)")
            let summary = try withFisher.train(resuming: nil, in: nil)
            runs.append((method, summary))
            // Firing rates and energy of the best checkpoint, where the report finds them.
            try AnalyzeRates.parse(["--checkpoint", "\(summary.runDirectory)/weights/best", "--output", "\(summary.runDirectory)/analysis"]).run()
        }
        let records = try runs.map { try RunRecord.load($0.summary.runDirectory) }
        let figures = Report.figures(records, smoothing: 0.5)
        let comparison = runs.map { Report.Comparison(method: $0.method, accuracy: $0.summary.bestTestAccuracy,
                                                      paper: chosen.paper[$0.method], epochs: $0.summary.epochs) }
        let html = Report.html(records, figures: figures, title: "SwiftSNN: \(chosen.name)", comparison: comparison)
        let path = "\(output)/reproduce-\(chosen.name).html"
        try ReportCommand.write(html, figures: figures, to: path, figuresIn: "\(output)/reproduce-\(chosen.name)_figures")
        print("\(chosen.name): best test accuracy " + comparison.map { c in
            "\(c.method) \(String(format: "%.2f%%", c.accuracy * 100))" + (c.paper.map { String(format: " (paper %.2f%%)", $0) } ?? "")
        }.joined(separator: ", "))
        print("report: \(path)")
    }
}
