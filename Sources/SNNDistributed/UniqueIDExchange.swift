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
/// The exchange is a ``RankZeroLink`` whose hello starts `SNNNCCLID/1` and whose one message is
/// the 128 id bytes, sent once every rank has connected. Every blocking call has a deadline: a
/// rank that cannot reach rank 0 fails by ``timeout`` naming `host:port`, its rank and the last
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
            for (peerRank, peer) in try link.gather(until: deadline).enumerated() {
                guard let peer else { continue }
                try link.send(id, to: peer, rank: peerRank, until: deadline)
            }
            return id
        }
        let id = try link.join(until: deadline).1
        guard id.count == NCCLLibrary.uniqueIDByteCount else {
            throw DistributedError("[NCCL unique id] \(link.place): rank 0 at \(masterAddress):\(port) sent \(id.count) bytes, "
                                   + "not a \(NCCLLibrary.uniqueIDByteCount)-byte id")
        }
        return id
    }

    private var link: RankZeroLink {
        RankZeroLink(label: "NCCL unique id", magic: Self.magic, rank: rank, worldSize: worldSize, masterAddress: masterAddress,
                     port: port, listenAddress: listenAddress, portOrigin: " (MASTER_PORT \(masterPort) + \(portOffset))",
                     timeout: timeout)
    }
}
