import Foundation
import SNNAnalysis

/// The grid points of `snn analyze landscape --parallel N`, evaluated by N child processes of this
/// executable.
///
/// Processes, not threads: the engine keeps process-wide state (the storage counters, the
/// gradient mode), so two evaluations cannot share a process. Worker `w` runs the same command
/// with `--points-shard w/N` and the directions in a file, evaluates the points
/// ``LossLandscape/shard(_:of:grid:)`` gives it and prints one line per point,
/// `point <flat index> <loss> <accuracy>` (Swift's shortest exact spelling of each double). Each
/// worker gets `OMP_NUM_THREADS` = the threads of this process / N (at least 1), so the merged
/// landscape is the one a single process computes with that many threads, bit for bit; at
/// another thread count oneDNN and OpenBLAS may sum in another order (differences near float
/// precision; our own kernels do not depend on it).
enum LandscapeWorkers {
    /// What the workers have sent so far; every field behind `lock`.
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var landscape: LossLandscape
        var seen: [Bool]
        var done = 0
        /// The first worker that failed (its index), when one has.
        var failed: Int?
        var processes: [Process] = []
        var errors: [Data]

        init(landscape: LossLandscape, workers: Int) {
            self.landscape = landscape
            seen = Array(repeating: false, count: landscape.coordinates.count * landscape.coordinates.count)
            errors = Array(repeating: Data(), count: workers)
        }
    }

    /// Runs `workers` children (`arguments(w)` after the executable) and merges their points into
    /// a landscape of `coordinates`; `progress` shows points done over all of them.
    ///
    /// - Throws: `CLIError` when a child cannot start, fails (the others are stopped; its
    ///   standard error is in the message) or leaves points out.
    static func evaluate(workers: Int, coordinates: [Double], samples: Int, progress: TerminalProgress,
                         removeOnSignal: String? = nil, arguments: (Int) -> [String]) throws -> LossLandscape {
        let grid = coordinates.count
        let unknown = [[Double]](repeating: [Double](repeating: .nan, count: grid), count: grid)
        let state = State(landscape: LossLandscape(coordinates: coordinates, loss: unknown, accuracy: unknown, samples: samples),
                          workers: workers)
        let executable = try executableURL()
        var environment = ProcessInfo.processInfo.environment
        let threads = Int(environment["OMP_NUM_THREADS"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? ProcessInfo.processInfo.activeProcessorCount
        environment["OMP_NUM_THREADS"] = String(max(1, threads / workers))
        // SIGINT or SIGTERM to this process alone (a scheduler, `kill`) must not leave workers
        // running, nor the caller's file behind: the handler stops the workers, removes the file
        // and exits with the conventional status (only async-signal-safe calls, on data set up here).
        StopOnSignal.arm(removing: removeOnSignal)
        defer { StopOnSignal.disarm() }
        let readers = DispatchGroup()
        for w in 0..<workers {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments(w)
            process.environment = environment
            let (out, err) = (Pipe(), Pipe())
            (process.standardOutput, process.standardError, process.standardInput) = (out, err, FileHandle.nullDevice)
            process.terminationHandler = { finished in
                guard finished.terminationStatus != 0 || finished.terminationReason != .exit else { return }
                state.lock.withLock {
                    guard state.failed == nil else { return }
                    state.failed = w
                    for other in state.processes where other !== finished && other.isRunning { other.terminate() }
                }
            }
            do {
                // Under the lock, so a worker failing at once finds every earlier one to stop,
                // and none starts after one has failed.
                let started = try state.lock.withLock {
                    guard state.failed == nil else { return false }
                    try process.run()
                    state.processes.append(process)
                    StopOnSignal.add(process.processIdentifier)
                    return true
                }
                guard started else { break }
            } catch {
                stopAll(state)
                throw CLIError("--parallel: cannot start \(executable.path): \(error)")
            }
            readers.enter()
            DispatchQueue.global().async {
                read(out.fileHandleForReading, into: state, total: grid * grid, progress: progress)
                readers.leave()
            }
            readers.enter()
            DispatchQueue.global().async {
                let data = err.fileHandleForReading.readDataToEndOfFile()
                state.lock.withLock { state.errors[w] = data }
                readers.leave()
            }
        }
        readers.wait()
        for process in state.processes { process.waitUntilExit() }
        progress.clear()
        let statuses = state.processes.map { ($0.terminationReason, $0.terminationStatus) }
        if let w = state.failed ?? statuses.firstIndex(where: { $0.0 != .exit || $0.1 != 0 }) {
            let text = String(decoding: state.errors[w], as: UTF8.self).split(separator: "\n")
                .map { $0.hasPrefix("Error: ") ? String($0.dropFirst(7)) : String($0) }.joined(separator: "; ")
            let how = statuses[w].0 == .exit ? "exit status \(statuses[w].1)" : "signal \(statuses[w].1)"
            throw CLIError("--parallel: worker \(w + 1) of \(workers) failed (\(how))\(text.isEmpty ? "" : ": \(text)")")
        }
        if let missing = state.seen.firstIndex(of: false) {
            throw CLIError("--parallel: the workers left out grid point \(missing) (of \(grid * grid))")
        }
        return state.landscape
    }

    /// Reads `point <k> <loss> <accuracy>` lines until the end of `handle`; other lines are ignored.
    private static func read(_ handle: FileHandle, into state: State, total: Int, progress: TerminalProgress) {
        var buffer = Data()
        while case let chunk = handle.availableData, !chunk.isEmpty {
            buffer.append(chunk)
            while let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let words = String(decoding: buffer[buffer.startIndex..<end], as: UTF8.self).split(separator: " ")
                buffer.removeSubrange(buffer.startIndex...end)
                guard words.count == 4, words[0] == "point", let k = Int(words[1]), (0..<total).contains(k),
                      let loss = Double(words[2]), let accuracy = Double(words[3]) else { continue }
                state.lock.withLock {
                    let grid = state.landscape.coordinates.count
                    (state.landscape.loss[k / grid][k % grid], state.landscape.accuracy[k / grid][k % grid]) = (loss, accuracy)
                    if !state.seen[k] { (state.seen[k], state.done) = (true, state.done + 1) }
                    progress.show("landscape", state.done, total, unit: "points")
                }
            }
        }
    }

    private static func stopAll(_ state: State) {
        state.lock.withLock { for process in state.processes where process.isRunning { process.terminate() } }
        for process in state.processes { process.waitUntilExit() }
    }

    /// This executable: the running binary, else the first argument resolved.
    private static func executableURL() throws -> URL {
        if let url = Bundle.main.executableURL, FileManager.default.isExecutableFile(atPath: url.path) { return url }
        let first = CommandLine.arguments.first ?? "snn"
        let url = URL(fileURLWithPath: first, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        guard first.contains("/"), FileManager.default.isExecutableFile(atPath: url.path) else {
            throw CLIError("--parallel: cannot find this program's executable to start workers (\(first))")
        }
        return url
    }
}

/// What SIGINT and SIGTERM do while workers run: signal them, remove a file, exit with 128 + the
/// signal. A C signal handler may touch only fixed memory and call only async-signal-safe
/// functions (`kill`, `unlink`, `_exit`), so the workers' process ids and the file's path are
/// kept in buffers allocated before the handler is installed.
private enum StopOnSignal {
    static let capacity = 256
    nonisolated(unsafe) static let children = UnsafeMutablePointer<pid_t>.allocate(capacity: capacity)
    nonisolated(unsafe) static var count = 0
    nonisolated(unsafe) static var file: UnsafeMutablePointer<CChar>?

    static func arm(removing path: String?) {
        count = 0
        file = path.flatMap { strdup($0) }
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { sig in
                for i in 0..<StopOnSignal.count { kill(StopOnSignal.children[i], SIGTERM) }
                if let file = StopOnSignal.file { unlink(file) }
                _exit(128 + sig)
            }
        }
        unblockStopSignals()
    }

    /// Records a worker (called before the next one starts, so the handler sees whole entries).
    static func add(_ pid: pid_t) {
        guard count < capacity else { return }
        children[count] = pid
        count += 1
    }

    static func disarm() {
        for sig in [SIGINT, SIGTERM] { signal(sig, SIG_DFL) }
        count = 0
        free(file)
        file = nil
    }
}
