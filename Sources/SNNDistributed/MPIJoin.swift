import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension MPICommunicator {
    /// Makes one MPI world of processes that no MPI launcher started (torchrun, a plain `srun`,
    /// `--rank`/`--world-size` on each host), and returns its communicator: each process starts MPI
    /// alone (a singleton), then rank 0 accepts the others one at a time on an MPI port
    /// (`MPI_Comm_accept`, `MPI_Comm_connect`, `MPI_Intercomm_merge`), in rank order.
    ///
    /// The ranks meet first over TCP at the rendezvous's master address, on `MASTER_PORT + 1` (a
    /// ``RankZeroLink``: torchrun's own store listens on `MASTER_PORT`). Rank 0 tells each rank
    /// its MPI port name when that rank's turn comes, and under Open MPI, whose singletons cannot
    /// connect by themselves, first starts Open MPI's `ompi-server` (the rendezvous server
    /// `mpirun --ompi-server` uses; it lives as long as rank 0) and tells every rank its address,
    /// which each sets as `OMPI_MCA_pmix_server_uri` before `MPI_Init_thread`.
    ///
    /// The whole join has one deadline (starting `ompi-server` has its own, as it waits on no
    /// rank). The TCP meeting fails with an error naming what is
    /// missing; MPI's own calls cannot be interrupted, so should they outlast the deadline (a rank
    /// died between the two), a watchdog ends this process with a message naming the step.
    ///
    /// - Throws: ``DistributedError`` when the rendezvous names no master, the ranks do not meet
    ///   in time, `ompi-server` cannot start, or an MPI call fails.
    public static func join(_ rendezvous: Rendezvous, timeout: Double = 120) throws -> MPICommunicator {
        startLock.lock()
        defer { startLock.unlock() }
        try checkNotFinalized()
        if let started { return started }
        let (rank, size) = (rendezvous.rank, rendezvous.worldSize)
        let place = "rank \(rank) of \(size)"
        guard let address = rendezvous.masterAddress, let masterPort = rendezvous.masterPort else {
            throw DistributedError("[MPI join] \(place) (\(rendezvous.launcher)): no master address and port to meet at "
                                   + "(set MASTER_ADDR and MASTER_PORT, or --master-addr and --master-port)")
        }
        guard masterPort < 65535 else {
            throw DistributedError("[MPI join] MASTER_PORT \(masterPort) + 1 is not a port; choose a lower MASTER_PORT")
        }
        let link = RankZeroLink(label: "MPI join", magic: Array("SNNMPIJOIN/1".utf8), rank: rank, worldSize: size,
                                masterAddress: address, port: masterPort + 1, listenAddress: nil,
                                portOrigin: " (MASTER_PORT \(masterPort) + 1)", timeout: timeout)
        let deadline = Deadline(secondsFromNow: timeout)
        let library = try MPILibrary.load()

        // 1. Meet over TCP; learn Open MPI's server.
        var peers: [TCPSocket?] = []
        var toRankZero: TCPSocket?
        var serverURI: String
        if rank == 0 {
            // The server takes seconds to listen: the ranks meet meanwhile.
            let server = library.abi == .openMPI ? try OMPIServer.start() : nil
            do {
                peers = try link.gather(until: deadline)
            } catch {
                server?.stop()
                throw error
            }
            serverURI = try server?.address() ?? ""
            for (peerRank, peer) in peers.enumerated() {
                guard let peer else { continue }
                try link.send(Array(serverURI.utf8), to: peer, rank: peerRank, until: deadline)
            }
        } else {
            let (socket, uri) = try link.join(until: deadline)
            (toRankZero, serverURI) = (socket, String(decoding: uri, as: UTF8.self))
        }
        if !serverURI.isEmpty { setenv("OMPI_MCA_pmix_server_uri", serverURI, 1) }

        // 2. Start MPI alone, then join rank by rank. Under a plain srun, Open MPI sees Slurm's
        // variables, takes itself for a process srun started through PMI and refuses to start
        // alone: it starts without them, and they come back after.
        let ownsMPI = try withoutLauncherVariables { try initialize(library) }
        let watchdog = JoinWatchdog(place: place, timeout: timeout, deadline: deadline)
        defer { watchdog.finish() }
        var comm = library.selfComm
        var port = [CChar](repeating: 0, count: MPILibrary.maxPortName + 1)
        func mpi(_ code: Int32, _ function: String) throws {
            try check(code, function, library, place: "\(place) joining")
        }
        /// Replaces `comm` by the merge of `intercomm`, freeing both (never MPI_COMM_SELF).
        func merged(_ intercomm: MPILibrary.Comm, high: Bool) throws {
            let (code, next) = library.merge(intercomm, high)
            try mpi(code, "MPI_Intercomm_merge")
            _ = library.free(intercomm)
            if comm != library.selfComm { _ = library.free(comm) }
            comm = next
            try mpi(library.setErrorsReturn(comm), "MPI_Comm_set_errhandler")
        }
        if rank == 0 {
            try mpi(library.openPort(&port), "MPI_Open_port")
        } else {
            watchdog.step = "waiting for rank 0 to call this rank in"
            guard let toRankZero else { preconditionFailure("[MPI join] no connection to rank 0") }
            let name = try link.receive(on: toRankZero, until: deadline)
            guard name.count <= MPILibrary.maxPortName else {
                throw DistributedError("[MPI join] \(place): rank 0 sent a \(name.count)-byte port name")
            }
            for (i, byte) in name.enumerated() { port[i] = CChar(bitPattern: byte) }
            watchdog.step = "connecting to rank 0's MPI port"
            let (code, intercomm) = library.connect(port, 0, library.selfComm)
            try mpi(code, "MPI_Comm_connect")
            try merged(intercomm, high: true)
        }
        for newcomer in (rank + 1)..<size {
            watchdog.step = "accepting rank \(newcomer)"
            if rank == 0, let peer = peers[newcomer] {
                let name = Array(port.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
                try link.send(name, to: peer, rank: newcomer, until: deadline)
            }
            let (code, intercomm) = library.accept(port, 0, comm)
            try mpi(code, "MPI_Comm_accept")
            try merged(intercomm, high: false)
        }
        if rank == 0 { _ = library.closePort(port) }

        var joinedRank: Int32 = 0, joinedSize: Int32 = 0
        try mpi(library.commRank(comm, &joinedRank), "MPI_Comm_rank")
        try mpi(library.commSize(comm, &joinedSize), "MPI_Comm_size")
        guard Int(joinedRank) == rank, Int(joinedSize) == size else {
            throw DistributedError("[MPI join] \(place): the joined world says rank \(joinedRank) of \(joinedSize)")
        }
        let communicator = MPICommunicator(library: library, comm: comm, ownsMPI: ownsMPI, rank: rank, size: size)
        let links = rank == 0 ? peers.enumerated().compactMap { peer in peer.element.map { (peer.offset, $0) } }
            : toRankZero.map { [(0, $0)] } ?? []
        communicator.monitor = JoinMonitor(rank: rank, place: place, links: links)
        started = communicator
        return communicator
    }
}

/// Keeps the join's TCP links open for the whole run and ends this process when the process at
/// the other end of one stops without saying goodbye: MPI processes joined from singletons share
/// no launcher that would stop them, and a collective waiting for a dead rank never returns.
///
/// Rank 0 watches every rank and the others watch rank 0, so a rank's death reaches every rank
/// within moments: rank 0 stops, which the others see. ``sayGoodbye()`` (before `MPI_Finalize`)
/// tells the other end that this process ends on purpose. Keep-alive probes catch a host that
/// vanishes without closing its connections, within about a minute.
final class JoinMonitor: @unchecked Sendable {
    static let goodbye: UInt8 = 0x42
    /// Rank 0 to the others: the rank in the next 4 bytes stopped.
    static let lost: UInt8 = 0x4c

    private let rank: Int
    private let place: String
    private let links: [(rank: Int, socket: TCPSocket)]
    private let lock = NSLock()
    private var leaving = false

    init(rank: Int, place: String, links: [(Int, TCPSocket)]) {
        (self.rank, self.place) = (rank, place)
        self.links = links.map { (rank: $0.0, socket: $0.1) }
        links.forEach { $0.1.keepAlive(idleSeconds: 20, intervalSeconds: 5, probes: 8) }
        guard !links.isEmpty else { return }
        Thread { [self] in watch() }.start()
    }

    /// Tells the other ends that this process finishes on purpose; from now on their closing is
    /// no failure either.
    func sayGoodbye() {
        lock.withLock { leaving = true }
        let deadline = Deadline(secondsFromNow: 2)
        for link in links { try? link.socket.write([Self.goodbye], until: deadline) }
    }

    private func watch() {
        var open = links
        while !open.isEmpty {
            var entries = open.map { pollfd(fd: $0.socket.descriptor, events: Int16(POLLIN), revents: 0) }
            let count = poll(&entries, nfds_t(entries.count), -1)
            if count < 0 {
                guard errno == EINTR else { return }
                continue
            }
            var closed = Set<Int>()
            for (index, entry) in entries.enumerated() where entry.revents != 0 {
                var byte: UInt8 = 0
                let got = recv(entry.fd, &byte, 1, 0)
                if got == 1 && byte == Self.goodbye {
                    closed.insert(index)  // it finishes on purpose
                } else if got == 1 && byte == Self.lost, rank != 0 {
                    let peer = (try? open[index].socket.read(count: 4, until: Deadline(secondsFromNow: 2)))
                        .map { RankZeroLink.integer($0, at: 0) }
                    stopped(peer ?? 0, peer == nil ? "its connection broke" : "rank 0 saw its connection close")
                } else if got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    stopped(open[index].rank, got == 0 ? "its connection closed" : String(cString: strerror(errno)))
                    closed.insert(index)
                }
            }
            open = open.enumerated().filter { !closed.contains($0.offset) }.map(\.element)
        }
    }

    /// A peer ended without a goodbye: unless this process is leaving too, it cannot go on.
    private func stopped(_ peer: Int, _ how: String) {
        guard !lock.withLock({ leaving }) else { return }
        if rank == 0 {
            let deadline = Deadline(secondsFromNow: 1)
            for link in links where link.rank != peer {
                try? link.socket.write([Self.lost] + RankZeroLink.bytes(peer), until: deadline)
            }
        }
        fputs("Error: [distributed] \(place): rank \(peer) stopped without finishing (\(how)); stopping this rank too\n", stderr)
        fflush(stderr)
        _exit(1)
    }
}

/// Runs `body` with the variables of Slurm and PMI unset, and sets them again after.
private func withoutLauncherVariables<T>(_ body: () throws -> T) rethrows -> T {
    let hidden = ProcessInfo.processInfo.environment.filter { name, _ in
        ["SLURM_", "PMI_", "PMIX_"].contains { name.hasPrefix($0) }
    }
    hidden.keys.forEach { unsetenv($0) }
    defer { hidden.forEach { setenv($0.key, $0.value, 1) } }
    return try body()
}

/// Ends the process when a join outlasts its deadline inside MPI, whose calls cannot time out.
private final class JoinWatchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var current = "starting MPI"
    private let finished = DispatchSemaphore(value: 0)

    var step: String {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }

    init(place: String, timeout: Double, deadline: Deadline) {
        let seconds = max(Double(deadline.remainingMilliseconds) / 1000, 1)
        Thread { [self] in
            if finished.wait(timeout: .now() + seconds) == .timedOut {
                let message = "Error: [MPI join] \(place): not joined within \(RankZeroLink.seconds(timeout)) while \(step) "
                    + "(a rank stopped, or cannot reach this host's MPI ports)\n"
                fputs(message, stderr)
                fflush(stderr)
                _exit(1)
            }
        }.start()
    }

    func finish() { finished.signal() }
}
