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
    /// (stdout, then stderr, each through a file so no pipe can fill or be held open by a stray
    /// rank), its stdout alone (where a rank's long line is never cut by another rank's errors)
    /// and whether it was killed.
    static func run(_ launcher: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) throws
        -> (status: Int32, output: String, standardOutput: String, timedOut: Bool, seconds: Double) {
        let logs = ["out", "err"].map { FileManager.default.temporaryDirectory.appendingPathComponent("snn-mpi-test-\(UUID().uuidString).\($0)") }
        for log in logs { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        defer { for log in logs { try? FileManager.default.removeItem(at: log) } }
        let handles = try logs.map { try FileHandle(forWritingTo: $0) }
        defer { for handle in handles { try? handle.close() } }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        (process.standardOutput, process.standardError) = (handles[0], handles[1])
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
        let texts = logs.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }
        let (standardOutput, standardError) = (texts[0], texts[1])
        return (process.terminationStatus, standardOutput + standardError, standardOutput, timedOut, Date().timeIntervalSince(start))
    }

    /// mpirun's path, or nil with an issue recorded: `make test` installs Open MPI.
    static func mpirunOrIssue(sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        guard let launcher = onPath("mpirun") else {
            Issue.record("mpirun is not on PATH: install Open MPI (apt-get install libopenmpi-dev openmpi-bin; make test installs it)",
                         sourceLocation: sourceLocation)
            return nil
        }
        return launcher
    }

    /// Open MPI's mpirun, as root too, with more ranks than cores.
    static func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 30,
                        sourceLocation: SourceLocation = #_sourceLocation)
        throws -> (status: Int32, output: String, standardOutput: String, timedOut: Bool, seconds: Double)? {
        guard let launcher = mpirunOrIssue(sourceLocation: sourceLocation) else { return nil }
        let result = try MPIRun.run(launcher, ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", SNNBinary.executable.path] + arguments,
                             environment: environment, timeout: timeout)
        #expect(!result.timedOut, "mpirun -np \(ranks) hung (killed after \(Int(timeout)) s):\n\(result.output)", sourceLocation: sourceLocation)
        return result
    }

    /// Starts `ranks` processes of `snn` at once as torchrun would (`RANK`, `WORLD_SIZE`,
    /// `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR=127.0.0.1`, a free `MASTER_PORT`), with
    /// `arguments(rank)`, each killed after `timeout` seconds; returns each one's status and output,
    /// whether any was killed, and the seconds until the last ended.
    static func joined(_ ranks: Int, environment: [String: String] = [:], timeout: Double = 30,
                       _ arguments: (Int) -> [String]) throws -> (status: [Int32], output: [String], timedOut: Bool, seconds: Double) {
        let port = try freePortPair()
        let group = DispatchGroup()
        let lock = NSLock()
        nonisolated(unsafe) var results = [(Int32, String, Bool)](repeating: (0, "", false), count: ranks)
        let start = Date()
        for rank in 0..<ranks {
            let variables = ["RANK": "\(rank)", "WORLD_SIZE": "\(ranks)", "LOCAL_RANK": "\(rank)", "LOCAL_WORLD_SIZE": "\(ranks)",
                             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "\(port)"].merging(environment) { $1 }
            let argv = arguments(rank)
            group.enter()
            Thread {
                let result = (try? run(SNNBinary.executable.path, argv, environment: variables, timeout: timeout))
                    ?? (status: -1, output: "could not start", standardOutput: "", timedOut: false, seconds: 0)
                lock.withLock { results[rank] = (result.status, result.output, result.timedOut) }
                group.leave()
            }.start()
        }
        group.wait()
        return (results.map(\.0), results.map(\.1), results.contains { $0.2 }, Date().timeIntervalSince(start))
    }

    /// A port `p` such that `p` and `p + 1` were free a moment ago (SwiftSNN's ranks meet at
    /// `MASTER_PORT + 1`).
    static func freePortPair() throws -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 20000...59000)
            if [port, port + 1].allSatisfy(isFree) { return port }
        }
        throw CocoaError(.featureUnsupported)
    }

    private static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = INADDR_ANY
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
