import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Open MPI's `ompi-server`, the rendezvous through which Open MPI singletons connect, run by
/// rank 0 of a join for as long as rank 0 lives.
///
/// It runs under a small shell that reads this process's end of a pipe and kills the server when
/// the pipe closes, which happens however this process ends (a crash or `SIGKILL` included), so
/// no server outlives its job.
enum OMPIServer {
    /// How long the server may take to write its address once started (it takes about 2.3 s on
    /// an idle 2-core machine): its own bound, not the join's, which is for waiting on ranks.
    static let startSeconds = 20.0

    /// A started server whose address may not be written yet: rank 0 meets the other ranks
    /// meanwhile.
    struct Started {
        let server: String
        let pid: pid_t
        let uriFile: String
        let logFile: String
        let started: Deadline

        /// Waits for the server's address (`0.0;tcp://10.0.0.2:4711;...`), at most
        /// ``OMPIServer/startSeconds`` from the server's start.
        ///
        /// - Throws: ``DistributedError`` when the server stops first or writes no address in time.
        func address() throws -> String {
            defer { removeFiles() }
            while !started.hasPassed {
                // The server writes one line once it listens; a file without its newline is still being written.
                if let text = try? String(contentsOfFile: uriFile, encoding: .utf8), text.hasSuffix("\n") {
                    return text.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    let log = (try? String(contentsOfFile: logFile, encoding: .utf8))?
                        .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                    throw DistributedError("[MPI join] \(server) stopped before it listened" + (log.isEmpty ? "" : ": \(log)"))
                }
                usleep(20_000)
            }
            throw DistributedError("[MPI join] \(server) wrote no address to \(uriFile) within "
                                   + "\(Int(OMPIServer.startSeconds)) s of starting")
        }

        /// Stops the server now and removes its files, for a join that failed before it needed
        /// the address (the server would otherwise write its file after they were removed).
        func stop() {
            // The server finishes starting before it heeds SIGTERM, and may write its file as it
            // ends: wait (briefly) until no process of its group is left.
            kill(-pid, SIGTERM)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            let patience = Deadline(secondsFromNow: 5)
            while kill(-pid, 0) == 0 && !patience.hasPassed { usleep(20_000) }
            kill(-pid, SIGKILL)
            removeFiles()
        }

        private func removeFiles() {
            unlink(uriFile)
            unlink(logFile)
        }
    }

    /// Starts the server; ``Started/address()`` gives its address once written.
    ///
    /// - Throws: ``DistributedError`` when `ompi-server` is not on `PATH` (Open MPI's `openmpi-bin`
    ///   has it) or cannot start.
    static func start() throws -> Started {
        guard let server = executable() else {
            throw DistributedError("[MPI join] Open MPI's processes need ompi-server to connect, and it is not on PATH "
                                   + "(apt-get install openmpi-bin, or put Open MPI's bin folder on PATH)")
        }
        let base = NSTemporaryDirectory() + "snn-ompi-server-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let (uriFile, logFile) = (base + ".uri", base + ".log")

        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0, fcntl(ends[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(ends[1], F_SETFD, FD_CLOEXEC) == 0 else {
            throw DistributedError("[MPI join] pipe for ompi-server: \(String(cString: strerror(errno)))")
        }
        // The write end (ends[1]) stays open, unused, until this process ends; the shell sees end
        // of file then.
        let readEnd = ends[0]
        defer { close(readEnd) }
        let script = "\"$1\" --no-daemonize -r \"$2\" 2>\"$3\" & s=$!; cat >/dev/null; kill $s 2>/dev/null"
        let arguments = ["/bin/sh", "-c", script, "snn-ompi-server", server, uriFile, logFile]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, readEnd, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        // Its own process group, so that ``Started/stop()`` reaches the server under the shell.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let code = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
        guard code == 0 else {
            throw DistributedError("[MPI join] could not start \(server): \(String(cString: strerror(code)))")
        }
        return Started(server: server, pid: pid, uriFile: uriFile, logFile: logFile,
                       started: Deadline(secondsFromNow: startSeconds))
    }

    /// `ompi-server` on `PATH`, or `SNN_OMPI_SERVER`.
    static func executable(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit = environment["SNN_OMPI_SERVER"], !explicit.isEmpty { return explicit }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/ompi-server" }.first { access($0, X_OK) == 0 }
    }
}
