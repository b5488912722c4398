import Foundation
import Testing

/// Launching `snn` under mpirun from tests, with a time limit.
enum MPIRun {
    /// A launcher found on PATH, or nil.
    static func onPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `launcher arguments`, killing it after `timeout` seconds; returns its status, its output
    /// (stdout and stderr, through a file so no pipe can fill or be held open by a stray rank) and
    /// whether it was killed.
    static func run(_ launcher: String, _ arguments: [String], environment: [String: String] = [:],
                     timeout: Double = 30) throws -> (status: Int32, output: String, timedOut: Bool, seconds: Double) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("snn-mpi-test-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        (process.standardOutput, process.standardError) = (handle, handle)
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let start = Date()
        try process.run()
        var timedOut = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            process.terminate()  // mpirun passes SIGTERM on to its ranks
            if done.wait(timeout: .now() + 5) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                done.wait()
            }
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return (process.terminationStatus, output, timedOut, Date().timeIntervalSince(start))
    }

    /// Open MPI's mpirun, as root too, with more ranks than cores.
    static func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:],
                        sourceLocation: SourceLocation = #_sourceLocation) throws -> (status: Int32, output: String, timedOut: Bool, seconds: Double)? {
        guard let launcher = onPath("mpirun") else {
            Issue.record("mpirun is not on PATH: install Open MPI (apt-get install libopenmpi-dev openmpi-bin; make test installs it)",
                         sourceLocation: sourceLocation)
            return nil
        }
        let result = try MPIRun.run(launcher, ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", SNNBinary.executable.path] + arguments,
                             environment: environment)
        #expect(!result.timedOut, "mpirun -np \(ranks) hung (killed after 30 s):\n\(result.output)", sourceLocation: sourceLocation)
        return result
    }
}
