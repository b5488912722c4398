import Foundation
import Testing

/// `snn analyze` on a checkpoint of a tiny run, and the reference's observation flags in training.
@Suite("snn analyze")
struct AnalyzeCommandTests {
    /// A tiny synthetic run of `epochs` epochs in a fresh folder, with `extra` flags.
    private func run(_ name: String, epochs: Int, _ extra: [String] = []) throws -> (folder: String, run: String, output: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snn-analyze-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: folder)
        let (status, output) = try SNNBinary.run(["train", "--synthetic-samples", "64", "--batch_size", "16", "--T", "3",
                                                  "--topology", "CONVAP-4-3-1-1_L-8", "--epochs", String(epochs), "--output", folder] + extra)
        #expect(status == 0, "\(output)")
        let runs = try FileManager.default.contentsOfDirectory(atPath: folder + "/result")
        return (folder, "\(folder)/result/\(try #require(runs.first))", output)
    }

    @Test("analyze fisher: FI for every t and the centroid, as text, one JSON object, and CSV/JSON files")
    func fisher() throws {
        let (folder, run, _) = try run("fisher", epochs: 1)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let checkpoint = run + "/weights/best"
        let (status, text) = try SNNBinary.run(["analyze", "fisher", "--checkpoint", checkpoint, "--batches", "2", "--output", folder + "/fi"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("(reference estimator") && text.contains("2 batches, 32 samples") && text.contains("t=3 ")
                && text.contains("information centroid "), "\(text)")
        let csv = try String(contentsOfFile: folder + "/fi/fisher.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.first == "t,fisher_information" && csv.count == 4, "\(csv)")
        let (jsonStatus, json) = try SNNBinary.run(["analyze", "fisher", "--checkpoint", checkpoint, "--batches", "1",
                                                    "--estimator", "per-sample", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        let fi = try #require(object["fisher_information"] as? [Double])
        let ic = try #require(object["information_centroid"] as? Double)
        #expect(jsonStatus == 0 && fi.count == 3 && fi.allSatisfy { $0 > 0 } && object["samples"] as? Int == 16)
        #expect(abs(ic - (fi[0] + 2 * fi[1] + 3 * fi[2]) / fi.reduce(0, +)) < 1e-9 && object["estimator"] as? String == "per-sample")
    }

    @Test("bad input gets one line: a missing checkpoint, an unknown estimator, zero batches, an FI epoch list that does not parse", arguments: [
        (["analyze", "fisher", "--checkpoint", "/nonexistent/weights/best"], "--checkpoint: checkpoint /nonexistent/weights/best.safetensors: no such file"),
        (["analyze", "fisher", "--checkpoint", "x", "--estimator", "exact"], "--estimator accepts reference, per-sample; got exact"),
        (["analyze", "fisher", "--checkpoint", "x", "--batches", "0"], "--batches must be positive, got 0"),
        (["analyze", "landscape", "--checkpoint", "x", "--grid", "1"], "--grid must be 2 or more (a landscape needs points on both sides), got 1"),
        (["analyze", "landscape", "--checkpoint", "x", "--span", "0"], "--span must be positive, got 0.0"),
        (["analyze", "landscape", "--checkpoint", "x", "--parallel", "0"], "--parallel must be 1 or more, got 0"),
        (["analyze", "landscape", "--checkpoint", "x", "--points-shard", "2/2"], "--points-shard expects i/N with 0 <= i < N, got 2/2"),
        (["analyze", "rates", "--checkpoint", "x", "--samples", "0"], "--samples must be positive, got 0"),
        (["analyze", "rates", "--checkpoint", "x", "--ac-energy", "-1"], "--mac-energy and --ac-energy must be 0 or more"),
        (["report", "/nonexistent/run"], "/nonexistent/run: no such run folder"),
        (["report", "/tmp", "--smoothing", "1"], "--smoothing must be in [0, 1), got 1.0"),
        (["reproduce", "cifar11-resnet19-T6"], "unknown experiment 'cifar11-resnet19-T6'; one of: cifar10-resnet19-T6, "),
        (["reproduce", "dvscifar10-vggsnn-T10"], "dvscifar10-vggsnn-T10 needs --data-dir: the folder holding one folder of .aedat files per class"),
        (["train", "--observe_fi", "1", "--fi_epochs", "20-x"], "--fi_epochs expects positive epoch numbers joined by '-' (e.g. 20-40-60), got 20-x"),
    ])
    func badInput(_ c: ([String], String)) throws {
        let (status, output) = try SNNBinary.run(c.0)
        #expect(status == 1 && output.hasPrefix("Error: \(c.1)") && output.split(separator: "\n").count == 1, "\(output)")
    }

    @Test("analyze landscape: a grid of loss and accuracy, the trained weights at its centre; --directions reuses the same directions")
    func landscape() throws {
        let (folder, run, _) = try run("landscape", epochs: 1)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let args = ["analyze", "landscape", "--checkpoint", run + "/weights/last", "--grid", "3", "--samples", "32", "--json",
                    "--directions", folder + "/directions.safetensors"]
        let (status, first) = try SNNBinary.run(args)
        #expect(status == 0 && FileManager.default.fileExists(atPath: folder + "/directions.safetensors"), "\(first)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any], "\(first)")
        let loss = try #require(object["loss"] as? [[Double]])
        #expect(loss.count == 3 && loss.allSatisfy { $0.count == 3 } && object["samples"] as? Int == 32)
        #expect(object["coordinates"] as? [Double] == [-1, 0, 1])
        // Another seed with the same file: the file's directions, so the same numbers.
        let (_, again) = try SNNBinary.run(args + ["--seed", "7"])
        let reused = try #require(try JSONSerialization.jsonObject(with: Data(again.utf8)) as? [String: Any])
        #expect(reused["loss"] as? [[Double]] == loss && reused["seed"] as? Int == 0)
    }

    @Test("analyze landscape --parallel: worker processes give the landscape of one process at their thread count, file for file")
    func parallelLandscape() throws {
        let (folder, run, _) = try run("parallel", epochs: 1)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func directionFiles() throws -> Set<String> {
            Set(try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path).filter { $0.hasPrefix("snn-landscape-") })
        }
        let before = try directionFiles()
        var csv: [String] = []
        for n in [1, 2, 4] {
            let (status, output) = try SNNBinary.run(["analyze", "landscape", "--checkpoint", run + "/weights/last", "--grid", "4", "--samples", "32",
                                                      "--parallel", String(n), "--output", "\(folder)/p\(n)"],
                                                     // One thread everywhere: oneDNN and OpenBLAS may sum in another order at another count.
                                                     environment: ["OMP_NUM_THREADS": "1"])
            #expect(status == 0 && output.contains("loss landscape of CONVAP-4-3-1-1_L-8: 4×4 points"), "\(output)")
            csv.append(try String(contentsOfFile: "\(folder)/p\(n)/landscape.csv", encoding: .utf8))
        }
        let rows = csv[0].split(separator: "\n")
        #expect(rows.count == 17 && Set(rows.dropFirst().map { $0.split(separator: ",")[2] }).count > 4, "\(csv[0])")
        #expect(csv[1] == csv[0] && csv[2] == csv[0])
        // The workers read the directions from a temporary file, removed afterwards.
        #expect(try directionFiles() == before)
        // (In the same test: the check above would see the file of the run below.)
        try interruptedLandscape(run: run, folder: folder)
    }

    /// `analyze landscape --parallel` stopped by SIGTERM to the parent alone: the workers stop,
    /// the directions file goes, and the status is 143 (128 + SIGTERM), within seconds.
    private func interruptedLandscape(run: String, folder: String) throws {
        let temporary = FileManager.default.temporaryDirectory.path
        let process = Process()
        process.executableURL = SNNBinary.executable
        // A grid big enough to take many seconds.
        process.arguments = ["analyze", "landscape", "--checkpoint", run + "/weights/last", "--grid", "41", "--samples", "64",
                             "--parallel", "2", "--output", folder + "/out"]
        process.environment = ProcessInfo.processInfo.environment.merging(["OMP_NUM_THREADS": "1"]) { $1 }
        (process.standardOutput, process.standardError) = (FileHandle.nullDevice, FileHandle.nullDevice)
        try process.run()
        let parent = process.processIdentifier
        let ours = "snn-landscape-\(parent)-"
        func workers() -> [Int32] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap(Int32.init).filter { pid in
                let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
                // Field 4, after the parenthesised name, is the parent's pid.
                let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
                return fields.count > 1 && fields[1] == "\(parent)"
            }
        }
        // Wait until both workers run and the directions file exists.
        let deadline = Date().addingTimeInterval(30)
        func fileExists() -> Bool { ((try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []).contains { $0.hasPrefix(ours) } }
        while Date() < deadline, workers().count < 2 || !fileExists() { usleep(50_000) }
        let started = workers()
        #expect(started.count == 2, "the workers never started")
        let signalled = Date()
        kill(parent, SIGTERM)
        process.waitUntilExit()
        #expect(Date().timeIntervalSince(signalled) < 10, "took \(Date().timeIntervalSince(signalled)) s to stop")
        #expect(process.terminationReason == .exit && process.terminationStatus == 143)
        #expect(!fileExists(), "the directions file is left")
        usleep(200_000)
        for pid in started {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: ")").last?
                .split(separator: " ").first
            #expect(state == nil || state == "Z", "worker \(pid) still runs (state \(state.map(String.init) ?? "?"))")
        }
    }

    @Test("analyze rates: every spiking layer's rate per timestep, operations per layer, energy with the given constants")
    func rates() throws {
        let (folder, run, _) = try run("rates", epochs: 1)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (status, json) = try SNNBinary.run(["analyze", "rates", "--checkpoint", run + "/weights/last", "--json", "--ac-energy", "0",
                                                "--output", folder + "/rates"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(status == 0 && object["samples"] as? Int == 16 && layers.count == 1 && (layers[0]["per_timestep"] as? [Double])?.count == 3)
        // With free accumulates, the energy is the first layer's MACs at 4.6 pJ.
        let macs = try #require(object["macs"] as? Double)
        #expect(abs((object["energy_joules"] as? Double ?? 0) - macs * 4.6e-12) < 1e-18)
        let csv = try String(contentsOfFile: folder + "/rates/firing_rates.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.first == "layer,t,firing_rate" && csv.count == 4)
    }

    @Test("report: a run's page with its figures and files; what the run lacks is said")
    func report() throws {
        let (folder, run, _) = try run("report", epochs: 2, ["--observe_ic", "1"])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (status, output) = try SNNBinary.run(["report", run, "--output", folder + "/report.html"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("1 run, 6 figures; SVG, PNG and CSV of each in \(folder)/report_figures/"), "\(output)")
        #expect(output.contains("not in these runs: Fisher information per timestep: no Fisher information was measured"), "\(output)")
        let html = try String(contentsOfFile: folder + "/report.html", encoding: .utf8)
        #expect(html.components(separatedBy: "<svg").count == 7 && html.contains("information centroid over training"))
        #expect(FileManager.default.fileExists(atPath: folder + "/report_figures/test_acc.svg"))
        #expect(FileManager.default.fileExists(atPath: folder + "/report_figures/information_centroid.csv"))
        // A PNG beside every SVG, none for the figure the run lacks.
        let files = try FileManager.default.contentsOfDirectory(atPath: folder + "/report_figures")
        let svgs = files.filter { $0.hasSuffix(".svg") }.map { String($0.dropLast(4)) }.sorted()
        #expect(svgs.count == 6 && files.filter { $0.hasSuffix(".png") }.map { String($0.dropLast(4)) }.sorted() == svgs, "\(files)")
        let png = try Data(contentsOf: URL(fileURLWithPath: folder + "/report_figures/test_acc.png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && !files.contains("fisher_information.png"))
        // Without librsvg: one line says so, the rest is written, and the command succeeds.
        let (bare, without) = try SNNBinary.run(["report", run, "--output", folder + "/bare.html"], environment: ["SNN_LIBRSVG": "/nonexistent/librsvg-2.so.2"])
        #expect(bare == 0 && without.contains("1 run, 6 figures; SVG and CSV of each in \(folder)/bare_figures/"), "\(without)")
        let line = "PNG figures skipped: librsvg not found (looked for /nonexistent/librsvg-2.so.2; Debian package librsvg2-2)"
        #expect(without.components(separatedBy: line).count == 2, "once: \(without)")
        let bareFiles = try FileManager.default.contentsOfDirectory(atPath: folder + "/bare_figures")
        #expect(bareFiles.contains("test_acc.svg") && !bareFiles.contains { $0.hasSuffix(".png") }, "\(bareFiles)")
    }

    @Test("reproduce: each method trained, analysed and compared in one report")
    func reproduce() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snn-reproduce-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (status, output) = try SNNBinary.run(["reproduce", "synthetic-T8", "--epochs", "1", "--synthetic-samples", "32", "--batch_size", "16",
                                                  "--methods", "SDT,TRT", "--topology", "CONVAP-4-3-1-1_L-8", "--output", folder])
        #expect(status == 0, "\(output)")
        #expect(output.contains("== synthetic-T8: SDT") && output.contains("== synthetic-T8: TRT") && output.contains("synthetic-T8: best test accuracy SDT "),
                "\(output)")
        let html = try String(contentsOfFile: folder + "/reproduce-synthetic-T8.html", encoding: .utf8)
        #expect(html.contains("best test accuracy beside the paper's") && html.contains("not in the specification"))
        let runs = try FileManager.default.contentsOfDirectory(atPath: folder + "/result")
        #expect(runs.count == 2 && runs.allSatisfy { FileManager.default.fileExists(atPath: "\(folder)/result/\($0)/analysis/rates.json") })
        #expect(runs.allSatisfy { FileManager.default.fileExists(atPath: "\(folder)/result/\($0)/fisher.csv") })
    }

    @Test("train --observe_fi/--fi_epochs and --observe_ic log FI per t (fisher.csv, TensorBoard fisher/epoch_<n>) and the centroid per epoch")
    func observeDuringTraining() throws {
        let (folder, run, output) = try run("observe", epochs: 2, ["--observe_fi", "1", "--fi_epochs", "2", "--observe_ic", "1"])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let fisher = try String(contentsOfFile: run + "/fisher.csv", encoding: .utf8).split(separator: "\n")
        #expect(fisher.count == 4 && fisher[0] == "epoch,t,fisher_information" && fisher[1].hasPrefix("2,1,") && fisher[3].hasPrefix("2,3,"),
                "\(fisher) \(output)")
        let metrics = try String(contentsOfFile: run + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        let header = metrics[0].split(separator: ",")
        let column = try #require(header.firstIndex(of: "information_centroid"), "\(header)")
        for row in metrics.dropFirst() {
            let ic = try #require(Double(row.split(separator: ",", omittingEmptySubsequences: false)[column]))
            #expect(ic >= 1 && ic <= 3, "\(row)")
        }
        #expect(metrics.count == 3)
        // snn analyze fisher on the last checkpoint measures the same batches: the same numbers.
        let (status, json) = try SNNBinary.run(["analyze", "fisher", "--checkpoint", run + "/weights/last", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        let logged = fisher.dropFirst().map { Double($0.split(separator: ",")[2])! }
        let measured = try #require(object["fisher_information"] as? [Double])
        #expect(status == 0 && measured.count == 3)
        for (a, b) in zip(measured, logged) { #expect(abs(a - b) <= 1e-9 * abs(b), "\(measured) vs \(logged)") }
    }
}
