import Foundation

/// Shares NCCL's 128-byte unique id from rank 0 to every rank before `ncclCommInitRank`.
///
/// Under MPI the id travels by ``broadcast(_:over:)``. Without MPI (torchrun, a plain `srun`,
/// `--rank`/`--world-size`), ``share(_:)`` carries it over TCP: rank 0 listens on
/// `masterPort + portOffset` and the others connect to `masterAddress` there.
///
/// The port is `masterPort + 1` by default because torchrun's own TCPStore (the c10d store its
/// agents and PyTorch ranks use) already listens on `MASTER_PORT` itself on the master host; a
/// job that sets `MASTER_PORT` for SwiftSNN alone may use any offset, 0 included.
///
/// The exchange, on one connection per rank:
/// - the rank sends a hello: the magic `SNNNCCLID/1` (11 bytes), its rank and its world size
///   (each 4 bytes, big-endian);
/// - rank 0 answers `0` and the 128 id bytes, or `1`, a 2-byte length and a refusal message, for
///   a peer of another program, another world size, a rank out of range or already seen.
///
/// Every blocking call has a deadline: a rank that cannot reach rank 0 retries with backoff
/// (50 ms, doubling up to 1 s) and fails by ``timeout`` naming `host:port`, its rank and the last
/// error; rank 0 fails by ``timeout`` naming the ranks that never connected.
public struct UniqueIDExchange: Sendable {
    /// This process's rank.
    public var rank: Int
    /// The number of processes, rank 0's included.
    public var worldSize: Int
    /// Rank 0's host, as the others reach it (a name or an IPv4/IPv6 address).
    public var masterAddress: String
    /// The job's master port (torchrun's `MASTER_PORT`).
    public var masterPort: Int
    /// Added to `masterPort` to make the exchange's port (1: next to torchrun's store).
    public var portOffset: Int
    /// Seconds every rank waits in all before giving up (120 by default: ranks start minutes
    /// apart on a busy cluster).
    public var timeout: Double
    /// Where rank 0 listens: `nil` for all interfaces (what torchrun's store does), or an
    /// address of this host.
    public var listenAddress: String?

    static let magic = Array("SNNNCCLID/1".utf8)
    private static let helloSize = magic.count + 8
    private static let maxRefusal = 1024

    /// - Precondition: `worldSize >= 1`, `rank` in `0..<worldSize`, `timeout > 0`.
    /// - Throws: ``DistributedError`` when `masterPort + portOffset` is outside 1...65535.
    public init(rank: Int, worldSize: Int, masterAddress: String, masterPort: Int, portOffset: Int = 1,
                timeout: Double = 120, listenAddress: String? = nil) throws {
        precondition(worldSize >= 1 && (0..<worldSize).contains(rank), "[UniqueIDExchange] rank \(rank) of \(worldSize)")
        precondition(timeout > 0, "[UniqueIDExchange] expected a positive timeout, got \(timeout)")
        guard (1...65535).contains(masterPort + portOffset) else {
            throw DistributedError("[NCCL unique id] MASTER_PORT \(masterPort) + offset \(portOffset) = \(masterPort + portOffset) "
                                   + "is not a port in 1...65535")
        }
        (self.rank, self.worldSize, self.masterAddress, self.masterPort) = (rank, worldSize, masterAddress, masterPort)
        (self.portOffset, self.timeout, self.listenAddress) = (portOffset, timeout, listenAddress)
    }

    /// The exchange for `rendezvous`'s place and master.
    ///
    /// - Throws: ``DistributedError`` when the launch names no master address or port (torchrun
    ///   sets `MASTER_ADDR` and `MASTER_PORT`; otherwise pass `--master-address`, `--master-port`).
    public init(rendezvous: Rendezvous, portOffset: Int = 1, timeout: Double = 120) throws {
        guard let address = rendezvous.masterAddress, let port = rendezvous.masterPort else {
            throw DistributedError("[NCCL unique id] rank \(rendezvous.rank) of \(rendezvous.worldSize): no master address and port "
                                   + "to meet at (set MASTER_ADDR and MASTER_PORT, or --master-address and --master-port)")
        }
        try self.init(rank: rendezvous.rank, worldSize: rendezvous.worldSize, masterAddress: address, masterPort: port,
                      portOffset: portOffset, timeout: timeout)
    }

    /// The port rank 0 listens on.
    public var port: Int { masterPort + portOffset }

    /// `root`'s id on every rank, through `communicator`'s broadcast (MPI's, when MPI launched
    /// the job). `id` matters only on `root`; every rank passes 128 bytes.
    public static func broadcast(_ id: [UInt8], over communicator: any Communicator, root: Int = 0) throws -> [UInt8] {
        precondition(id.count == NCCLLibrary.uniqueIDByteCount,
                     "[UniqueIDExchange] expected a \(NCCLLibrary.uniqueIDByteCount)-byte id, got \(id.count)")
        var copy = id
        try copy.withUnsafeMutableBytes { try communicator.broadcast($0, root: root) }
        return copy
    }

    /// Rank 0's id on every rank, over TCP: rank 0 passes its id (128 bytes), the others `nil`.
    ///
    /// - Throws: ``DistributedError``: on rank 0, when it cannot listen, or the deadline passes
    ///   before every rank got the id (naming the ranks missing and the peers refused); on the
    ///   others, when rank 0 cannot be reached by the deadline (naming `host:port`, the rank and the
    ///   last error), refuses this rank (with its reason), or breaks off.
    public func share(_ id: [UInt8]?) throws -> [UInt8] {
        let deadline = Deadline(secondsFromNow: timeout)
        if rank == 0 {
            guard let id, id.count == NCCLLibrary.uniqueIDByteCount else {
                preconditionFailure("[UniqueIDExchange] rank 0 must pass a \(NCCLLibrary.uniqueIDByteCount)-byte id")
            }
            if worldSize > 1 { try serve(id, until: deadline) }
            return id
        }
        return try fetch(until: deadline)
    }

    private var place: String { "rank \(rank) of \(worldSize)" }

    // MARK: rank 0

    private func serve(_ id: [UInt8], until deadline: Deadline) throws {
        let listener: TCPSocket
        do {
            listener = try TCPSocket.listen(host: listenAddress, port: port)
        } catch {
            throw DistributedError("[NCCL unique id] rank 0 cannot listen on \(listenAddress ?? "*"):\(port) "
                                   + "(MASTER_PORT \(masterPort) + \(portOffset)): \(error)")
        }
        var served = Set<Int>()
        var refused: [String] = []
        while served.count < worldSize - 1 {
            guard let (peer, address) = try accepted(listener, until: deadline) else {
                let missing = (1..<worldSize).filter { !served.contains($0) }
                let also = refused.isEmpty ? "" : "; refused: \(refused.joined(separator: "; "))"
                throw DistributedError("[NCCL unique id] rank 0 of \(worldSize) waited \(Self.seconds(timeout)) on port \(port): "
                                       + "\(Self.list(missing)) never connected\(also)")
            }
            // A peer gets a few seconds for its hello, so a silent connection cannot hold up the rest.
            let helloDeadline = deadline.capped(atSecondsFromNow: 10)
            do {
                let hello = try peer.read(count: Self.helloSize, until: helloDeadline)
                if let reason = refusal(of: hello, served: served) {
                    refused.append("\(address): \(reason)")
                    try? peer.write(Self.refusalMessage(reason), until: helloDeadline)
                    continue
                }
                try peer.write([0] + id, until: helloDeadline)
                served.insert(Self.integer(hello, at: Self.magic.count))
            } catch {
                refused.append("\(address): \(error)")
            }
        }
    }

    private func accepted(_ listener: TCPSocket, until deadline: Deadline) throws -> (TCPSocket, String)? {
        do {
            return try listener.accept(until: deadline)
        } catch {
            throw DistributedError("[NCCL unique id] rank 0 of \(worldSize) on port \(port): \(error)")
        }
    }

    /// Why a hello is refused, or `nil` when it comes from a rank of this job not served yet.
    private func refusal(of hello: [UInt8], served: Set<Int>) -> String? {
        guard Array(hello.prefix(Self.magic.count)) == Self.magic else {
            return "not a SwiftSNN NCCL id request (another program on port \(port)?)"
        }
        let (peerRank, peerSize) = (Self.integer(hello, at: Self.magic.count), Self.integer(hello, at: Self.magic.count + 4))
        guard peerSize == worldSize else {
            return "rank \(peerRank) says world size \(peerSize), but rank 0's world size is \(worldSize) (another job, or a "
                + "launch with different sizes?)"
        }
        guard (1..<worldSize).contains(peerRank) else { return "rank \(peerRank) is not in 1..<\(worldSize)" }
        guard !served.contains(peerRank) else { return "rank \(peerRank) connected twice (two processes with one rank?)" }
        return nil
    }

    private static func refusalMessage(_ reason: String) -> [UInt8] {
        let text = Array(reason.utf8.prefix(maxRefusal))
        return [1, UInt8(text.count >> 8), UInt8(text.count & 0xff)] + text
    }

    // MARK: the other ranks

    private func fetch(until deadline: Deadline) throws -> [UInt8] {
        let target = "\(masterAddress):\(port)"
        var delay = 0.05
        var attempts = 0
        var last = SocketFailure("no attempt")
        while true {
            attempts += 1
            do {
                let socket = try TCPSocket.connect(host: masterAddress, port: port, deadline: deadline)
                return try receive(on: socket, from: target, until: deadline)
            } catch let failure as SocketFailure {
                last = failure
            }
            // Rank 0 may not listen yet (it starts later, or is still resolving): wait and retry.
            let left = Double(deadline.remainingMilliseconds) / 1000
            guard left > 0 else {
                throw DistributedError("[NCCL unique id] \(place) could not reach rank 0 at \(target) within "
                                       + "\(Self.seconds(timeout)) (\(attempts) attempts; last: \(last))")
            }
            usleep(UInt32(min(delay, left) * 1e6))
            delay = min(delay * 2, 1)
        }
    }

    /// Sends this rank's hello and reads rank 0's answer; a connection lost before any answer is a
    /// `SocketFailure` (retried), a refusal or a broken answer a ``DistributedError``.
    private func receive(on socket: TCPSocket, from target: String, until deadline: Deadline) throws -> [UInt8] {
        try socket.write(Self.magic + Self.bytes(rank) + Self.bytes(worldSize), until: deadline)
        let status = try socket.read(count: 1, until: deadline)[0]
        do {
            if status == 0 { return try socket.read(count: NCCLLibrary.uniqueIDByteCount, until: deadline) }
            let length = try socket.read(count: 2, until: deadline)
            let count = min(Int(length[0]) << 8 | Int(length[1]), Self.maxRefusal)
            let reason = String(decoding: try socket.read(count: count, until: deadline), as: UTF8.self)
            throw DistributedError("[NCCL unique id] \(place): rank 0 at \(target) refused it: \(reason)")
        } catch let failure as SocketFailure {
            throw DistributedError("[NCCL unique id] \(place): rank 0 at \(target) broke off its answer: \(failure)")
        }
    }

    // MARK: helpers

    private static func bytes(_ value: Int) -> [UInt8] {
        let v = UInt32(truncatingIfNeeded: value)
        return [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }

    private static func integer(_ bytes: [UInt8], at offset: Int) -> Int {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// `rank 3`, `ranks 1, 2, 3`, or the first 16 and a count.
    private static func list(_ ranks: [Int]) -> String {
        let shown = ranks.prefix(16).map(String.init).joined(separator: ", ")
        let more = ranks.count > 16 ? " and \(ranks.count - 16) more" : ""
        return (ranks.count == 1 ? "rank " : "ranks ") + shown + more
    }
}
