import Foundation
import Testing

/// `snn train` as a run's life goes: interrupted by a signal or `--max-steps`, resumed with the
/// command it printed (through a shell, as a user pastes it), checked before it starts work.
@Suite("snn train: interruption, resume and checks before work")
struct TrainRunTests {
    /// A folder of its own for each test, removed afterwards by the caller.
    private func temporary(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-run-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    /// A tiny training run: 64 synthetic samples in batches of 8 (8 steps per epoch).
    private func tiny(_ output: String, epochs: Int) -> [String] {
        ["train", "--synthetic-samples", "64", "--batch_size", "8", "--T", "2", "--topology", "CONV-4-3-1-1_FC-8_L-8",
         "--epochs", String(epochs), "--output", output]
    }

    /// The one run folder under `output/result`.
    private func runFolder(_ output: String) throws -> String {
        let runs = try FileManager.default.contentsOfDirectory(atPath: output + "/result")
        #expect(runs.count == 1, "\(runs)")
        return "\(output)/result/\(try #require(runs.first))"
    }

    private func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// The first column of every data row of a CSV file.
    private func firstColumn(_ path: String) throws -> [Int] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst().map { Int($0.prefix { $0 != "," }) ?? -1 }
    }

    /// The `resume with:` command an interrupted run printed.
    private func resumeCommand(_ output: String) throws -> String {
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("resume with: ") }, "\(output)")
        return String(line.dropFirst("resume with: ".count))
    }

    /// Runs `command` through /bin/sh with the built `snn` first on PATH.
    private func shell(_ command: String) throws -> (status: Int32, output: String) {
        let path = "\(SNNBinary.executable.deletingLastPathComponent().path):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.environment = ProcessInfo.processInfo.environment.merging(["PATH": path]) { $1 }
        let pipe = Pipe()
        (process.standardOutput, process.standardError) = (pipe, pipe)
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Starts a long run, sends `signal` once its first step is logged, and returns its exit
    /// status and output.
    private func interrupted(_ output: String, by signal: Int32) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = SNNBinary.executable
        process.arguments = tiny(output, epochs: 500) + ["--log-interval", "0"]
        let pipe = Pipe()
        (process.standardOutput, process.standardError) = (pipe, pipe)
        try process.run()
        var text = ""
        while !text.contains(" step ") {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        kill(process.processIdentifier, signal)
        text += String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test("Ctrl-C saves a checkpoint, says where, prints a shell-quoted resume command and exits 130; the command continues the same run folder")
    func interruptAndResume() throws {
        let dir = temporary("sigint")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try interrupted(dir, by: SIGINT)
        #expect(status == 130, "\(output)")
        #expect(output.contains("interrupted by SIGINT in epoch 1/500 after step "), "\(output)")
        #expect(!output.contains("best test accuracy 0.00%") && output.contains("no test evaluation yet"), "\(output)")
        let run = try runFolder(dir)
        let first = try json(run + "/summary.json")
        #expect(first["interrupted"] as? Bool == true && (first["stopped_at"] as? [String: Any])?["reason"] as? String == "SIGINT")
        let done = try #require(try json(run + "/weights/last.json")["globalStep"] as? Int)
        // The printed command, pasted into a shell (the folder name holds parentheses), with one
        // deliberate override so the run ends soon.
        let command = try resumeCommand(output)
        #expect(command.contains("'") && command.contains("TRT(CE)_T2"), "\(command)")
        let (resumed, log) = try shell(command + " --epochs 2")
        #expect(resumed == 0, "\(log)")
        #expect(log.contains("resuming with overrides: --epochs 2 (the run had 500)") && log.contains("(continued)"), "\(log)")
        #expect(log.contains("epoch 2/2") && log.contains("best test accuracy"), "\(log)")
        // One folder tells the whole run: its logs continue, every step once, in order.
        #expect(try runFolder(dir) == run)
        let steps = try firstColumn(run + "/steps.csv")
        #expect(steps == Array(1...16), "\(steps)")
        #expect(try firstColumn(run + "/metrics.csv") == [1, 2])
        #expect(done < 16)
        let summary = try json(run + "/summary.json")
        #expect((summary["wall_seconds"] as? Double ?? 0) >= (first["wall_seconds"] as? Double ?? .infinity))
        #expect(summary["interrupted"] as? Bool == false && summary["epochs"] as? Int == 2)
        // One epoch convention (1-based, as printed) in the summary and in best.json.
        let best = try json(run + "/weights/best.json")
        let bestEpoch = try #require(summary["best_epoch"] as? Int)
        #expect(best["epoch"] as? Int == bestEpoch && best["bestEpoch"] as? Int == bestEpoch && (1...2).contains(bestEpoch))
        #expect(log.contains("at epoch \(bestEpoch),"), "\(log)")
        let events = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("events.out.tfevents.") }
        #expect(events.count == 2, "a new TensorBoard file beside the first: \(events)")
    }

    @Test("SIGTERM (a scheduler's stop) saves a checkpoint and exits 143")
    func sigterm() throws {
        let dir = temporary("sigterm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try interrupted(dir, by: SIGTERM)
        #expect(status == 143, "\(output)")
        #expect(output.contains("interrupted by SIGTERM") && output.contains("resume with: snn train --resume 1 --resume_path "), "\(output)")
        #expect(FileManager.default.fileExists(atPath: try runFolder(dir) + "/weights/last.safetensors"))
    }

    @Test("--max-steps stops with status 0 and the resume command, which trains the run's epochs, not the default")
    func maxStepsAndResume() throws {
        let dir = temporary("maxsteps")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try SNNBinary.run(tiny(dir, epochs: 2) + ["--max-steps", "3"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("stopped by --max-steps 3 in epoch 1/2 after step 3/8 (3 steps in all)"), "\(output)")
        let (resumed, log) = try shell(try resumeCommand(output))
        #expect(resumed == 0, "\(log)")
        #expect(!log.contains("overrides") && log.contains("epoch 2/2") && !log.contains("epoch 3/"), "\(log)")
        let run = try runFolder(dir)
        #expect(try firstColumn(run + "/steps.csv") == Array(1...16))
    }

    @Test("resume refuses flags that contradict the run, naming each, and announces the ones a run may change")
    func resumeFlags() throws {
        let dir = temporary("flags")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try SNNBinary.run(tiny(dir, epochs: 1))
        #expect(status == 0, "\(output)")
        let run = try runFolder(dir)
        let last = run + "/weights/last"
        let before = try firstColumn(run + "/steps.csv")
        let (refused, message) = try SNNBinary.run(["train", "--resume", "1", "--resume_path", last, "--batch_size", "4",
                                                   "--topology", "CONV-8-3-1-1_L-8", "--seed", "42", "--T", "2"])
        #expect(refused == 1, "\(message)")
        #expect(message.contains("--batch_size 4 (the run has 8)") && message.contains("--topology CONV-8-3-1-1_L-8 (the run has CONV-4-3-1-1_FC-8_L-8)"),
                "\(message)")
        #expect(!message.contains("--seed") && !message.contains("--T "), "flags equal to the run's are fine: \(message)")
        #expect(message.contains("--weights") && message.split(separator: "\n").count <= 3, "\(message)")
        #expect(try firstColumn(run + "/steps.csv") == before, "nothing trained")
        // Rows a killed run logged after its checkpoint are dropped (that work is redone).
        let handle = try #require(FileHandle(forWritingAtPath: run + "/steps.csv"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("9,1.0,0.001,1.0\n".utf8))
        try handle.close()
        let (more, log) = try SNNBinary.run(["train", "--resume", "1", "--resume_path", last, "--epochs", "2", "--workers", "0"])
        #expect(more == 0, "\(log)")
        #expect(log.contains("resuming with overrides: --epochs 2 (the run had 1), --workers 0 (the run had 2)"), "\(log)")
        #expect(log.contains("dropped 1 log row(s) written after the checkpoint"), "\(log)")
        #expect(try firstColumn(run + "/steps.csv") == Array(1...16))
        // snn convert checks a checkpoint against its topology on the run's own data set's frames.
        let (converted, convertLog) = try SNNBinary.run(["convert", last, dir + "/out.safetensors", "--topology", "CONV-4-3-1-1_FC-8_L-8"])
        #expect(converted == 0 && convertLog.contains("matches CONV-4-3-1-1_FC-8_L-8"), "\(convertLog)")
        let (mismatch, hint) = try SNNBinary.run(["convert", last, dir + "/out.safetensors", "--topology", "CONV-4-3-1-1_FC-8_L-8", "--dataset", "cifar10"])
        #expect(mismatch == 1 && hint.contains("(the network was built for input frames of 3×32×32, from --dataset cifar10; --dataset or --input-shape C,H,W sets the frames the weights were trained on)"),
                "\(hint)")
        // --output asks for a new folder.
        let elsewhere = dir + "/elsewhere"
        let (moved, movedLog) = try SNNBinary.run(["train", "--resume", "1", "--resume_path", last, "--epochs", "3", "--output", elsewhere])
        #expect(moved == 0 && movedLog.contains("run directory: \(elsewhere)/result/"), "\(movedLog)")
    }

    @Test("every option is checked before any work: a topology typo builds no frame cache, an unwritable --output starts nothing")
    func checksBeforeWork() throws {
        let root = temporary("early")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for c in ["cat", "dog"] {
            try FileManager.default.createDirectory(atPath: "\(root)/data/\(c)", withIntermediateDirectories: true)
            var d = Data("#!AER-DAT2.0\r\n".utf8)
            for e in 0..<20 {
                withUnsafeBytes(of: UInt32(e % 2 | (e % 128) << 1 | (e % 100) << 8).bigEndian) { d.append(contentsOf: $0) }
                withUnsafeBytes(of: UInt32(e).bigEndian) { d.append(contentsOf: $0) }
            }
            try d.write(to: URL(fileURLWithPath: "\(root)/data/\(c)/cifar10_\(c)_0.aedat"))
        }
        let (status, output) = try SNNBinary.run(["train", "--dataset", "dvscifar10", "--data-dir", root + "/data", "--topology", "CONVX-8-3-1-1_L-2",
                                                 "--output", root + "/runs"])
        #expect(status == 1 && output.contains("--topology: ") && output.contains("CONVX"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: root + "/data/.snn-frames"), "frames were built for a run that could not start")
        #expect(!FileManager.default.fileExists(atPath: root + "/runs"))
        // A file where a folder must go: one line naming the path and the cause, before any line
        // about the run.
        let file = root + "/a-file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let (blocked, message) = try SNNBinary.run(tiny(file + "/runs", epochs: 1))
        #expect(blocked == 1 && message == "Error: --output: cannot create folder \(file)/runs/result: \(file) is a file\n", "\(message)")
        let (unconverted, why) = try SNNBinary.run(["convert", file, file + "/out.safetensors"])
        #expect(unconverted == 1 && why == "Error: \(file)/out.safetensors: cannot create folder \(file): a file of that name exists\n", "\(why)")
    }

    @Test("a one-letter relative --output works (Foundation's path splitting traps on it)")
    func oneLetterOutput() throws {
        let dir = temporary("one-letter")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try shell("cd '\(dir)' && snn train --synthetic-samples 16 --batch_size 8 --T 2 --topology CONV-4-3-1-1_L-8 --epochs 1 --output r")
        #expect(status == 0 && output.contains("run directory: r/result/"), "\(output)")
    }

    @Test("a redirected log shows step lines before the first epoch ends")
    func stepLines() throws {
        let dir = temporary("lines")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try SNNBinary.run(tiny(dir, epochs: 1) + ["--log-interval", "0", "--dataset", "SYNTHETIC"])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n")
        let firstStep = try #require(lines.firstIndex { $0.hasPrefix("epoch 1 step 1/8  loss ") }, "\(output)")
        let epochLine = try #require(lines.firstIndex { $0.hasPrefix("epoch 1/1  train loss") })
        #expect(firstStep < epochLine && lines.filter { $0.hasPrefix("epoch 1 step ") }.count == 7, "\(output)")
    }
}
