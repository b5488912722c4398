import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One TCP connection between rank 0 and every other rank, made before a library that needs a
/// bootstrap starts: NCCL (its unique id) or MPI joined by connect/accept (the server's address,
/// then a port name per rank). Rank 0 listens on `port`; the others connect to
/// `masterAddress:port`.
///
/// On each connection:
/// - the rank sends a hello: `magic`, its rank and its world size (each 4 bytes, big-endian);
/// - rank 0 answers with messages: `0`, a 4-byte length and the bytes; or once, `1`, a 2-byte
///   length and a refusal, for a peer of another program, another world size, a rank out of
///   range or already seen.
///
/// Every blocking call has a deadline: a rank that cannot reach rank 0 retries with backoff
/// (50 ms, doubling up to 1 s) and fails naming `host:port`, its rank and the last error; rank 0
/// fails naming the ranks that never connected and the peers it refused.
struct RankZeroLink {
    /// The messages' prefix: `NCCL unique id`, `MPI join`.
    let label: String
    /// What a hello starts with.
    let magic: [UInt8]
    let rank: Int
    let worldSize: Int
    let masterAddress: String
    let port: Int
    /// Where rank 0 listens: `nil` for all interfaces, or an address of this host.
    let listenAddress: String?
    /// Said after the port when rank 0 cannot listen: ` (MASTER_PORT 29500 + 1)`.
    let portOrigin: String
    /// Seconds the whole meeting may take.
    let timeout: Double

    private static let maxRefusal = 1024
    private static let maxMessage = 1 << 20
    private var helloSize: Int { magic.count + 8 }
    var place: String { "rank \(rank) of \(worldSize)" }

    // MARK: rank 0

    /// Rank 0: waits for every other rank's hello and returns their connections, indexed by rank
    /// (index 0 is unused), none answered yet.
    func gather(until deadline: Deadline) throws -> [TCPSocket?] {
        precondition(rank == 0, "[\(label)] only rank 0 gathers")
        var peers = [TCPSocket?](repeating: nil, count: worldSize)
        guard worldSize > 1 else { return peers }
        let listener: TCPSocket
        do {
            listener = try TCPSocket.listen(host: listenAddress, port: port)
        } catch {
            throw DistributedError("[\(label)] rank 0 cannot listen on \(listenAddress ?? "*"):\(port)\(portOrigin): \(error)")
        }
        var joined = 0
        var refused: [String] = []
        while joined < worldSize - 1 {
            let next: (TCPSocket, String)?
            do {
                next = try listener.accept(until: deadline)
            } catch {
                throw DistributedError("[\(label)] rank 0 of \(worldSize) on port \(port): \(error)")
            }
            guard let (peer, address) = next else {
                let missing = (1..<worldSize).filter { peers[$0] == nil }
                let also = refused.isEmpty ? "" : "; refused: \(refused.joined(separator: "; "))"
                throw DistributedError("[\(label)] rank 0 of \(worldSize) waited \(Self.seconds(timeout)) on port \(port): "
                                       + "\(Self.list(missing)) never connected\(also)")
            }
            // A peer gets a few seconds for its hello, so a silent connection cannot hold up the rest.
            let helloDeadline = deadline.capped(atSecondsFromNow: 10)
            do {
                let hello = try peer.read(count: helloSize, until: helloDeadline)
                if let reason = refusal(of: hello, peers: peers) {
                    refused.append("\(address): \(reason)")
                    try? peer.write(Self.refusalMessage(reason), until: helloDeadline)
                    continue
                }
                peers[Self.integer(hello, at: magic.count)] = peer
                joined += 1
            } catch {
                refused.append("\(address): \(error)")
            }
        }
        return peers
    }

    /// Why a hello is refused, or `nil` when it comes from a rank of this job not seen yet.
    private func refusal(of hello: [UInt8], peers: [TCPSocket?]) -> String? {
        guard Array(hello.prefix(magic.count)) == magic else {
            return "not a SwiftSNN \(label) request (another program on port \(port)?)"
        }
        let (peerRank, peerSize) = (Self.integer(hello, at: magic.count), Self.integer(hello, at: magic.count + 4))
        guard peerSize == worldSize else {
            return "rank \(peerRank) says world size \(peerSize), but rank 0's world size is \(worldSize) (another job, or a "
                + "launch with different sizes?)"
        }
        guard (1..<worldSize).contains(peerRank) else { return "rank \(peerRank) is not in 1..<\(worldSize)" }
        guard peers[peerRank] == nil else { return "rank \(peerRank) connected twice (two processes with one rank?)" }
        return nil
    }

    /// Rank 0: sends `payload` to the rank at the other end of `peer`.
    func send(_ payload: [UInt8], to peer: TCPSocket, rank peerRank: Int, until deadline: Deadline) throws {
        do {
            try peer.write([0] + Self.bytes(payload.count) + payload, until: deadline)
        } catch {
            throw DistributedError("[\(label)] rank 0 of \(worldSize) could not reach rank \(peerRank) again: \(error)")
        }
    }

    // MARK: the other ranks

    /// Any other rank: connects to rank 0 (retrying until it listens), says hello and returns the
    /// connection with rank 0's first message.
    func join(until deadline: Deadline) throws -> (TCPSocket, [UInt8]) {
        precondition(rank != 0, "[\(label)] rank 0 does not join itself")
        let target = "\(masterAddress):\(port)"
        var delay = 0.05
        var attempts = 0
        var last = SocketFailure("no attempt")
        while true {
            attempts += 1
            do {
                let socket = try TCPSocket.connect(host: masterAddress, port: port, deadline: deadline)
                try socket.write(magic + Self.bytes(rank) + Self.bytes(worldSize), until: deadline)
                let status = try socket.read(count: 1, until: deadline)[0]
                return (socket, try message(after: status, on: socket, until: deadline))
            } catch let failure as SocketFailure {
                // Lost before any answer: rank 0 may not listen yet (it starts later, or is still
                // resolving). Wait and retry.
                last = failure
            }
            let left = Double(deadline.remainingMilliseconds) / 1000
            guard left > 0 else {
                throw DistributedError("[\(label)] \(place) could not reach rank 0 at \(target) within "
                                       + "\(Self.seconds(timeout)) (\(attempts) attempts; last: \(last))")
            }
            usleep(UInt32(min(delay, left) * 1e6))
            delay = min(delay * 2, 1)
        }
    }

    /// Any other rank: rank 0's next message on `socket`.
    func receive(on socket: TCPSocket, until deadline: Deadline) throws -> [UInt8] {
        do {
            let status = try socket.read(count: 1, until: deadline)[0]
            return try message(after: status, on: socket, until: deadline)
        } catch let failure as SocketFailure {
            throw DistributedError("[\(label)] \(place): lost rank 0 at \(masterAddress):\(port) (\(failure)); "
                                   + "rank 0 stopped, and its own error says why")
        }
    }

    /// The rest of a message whose status byte was read: its bytes, or a refusal thrown.
    private func message(after status: UInt8, on socket: TCPSocket, until deadline: Deadline) throws -> [UInt8] {
        let target = "\(masterAddress):\(port)"
        do {
            if status == 0 {
                let length = Self.integer(try socket.read(count: 4, until: deadline), at: 0)
                guard length <= Self.maxMessage else {
                    throw DistributedError("[\(label)] \(place): rank 0 at \(target) announced \(length) bytes, more than "
                                           + "\(Self.maxMessage) (not a SwiftSNN rank 0?)")
                }
                return try socket.read(count: length, until: deadline)
            }
            let length = try socket.read(count: 2, until: deadline)
            let count = min(Int(length[0]) << 8 | Int(length[1]), Self.maxRefusal)
            let reason = String(decoding: try socket.read(count: count, until: deadline), as: UTF8.self)
            throw DistributedError("[\(label)] \(place): rank 0 at \(target) refused it: \(reason)")
        } catch let failure as SocketFailure {
            throw DistributedError("[\(label)] \(place): rank 0 at \(target) broke off its answer: \(failure)")
        }
    }

    // MARK: helpers

    private static func refusalMessage(_ reason: String) -> [UInt8] {
        let text = Array(reason.utf8.prefix(maxRefusal))
        return [1, UInt8(text.count >> 8), UInt8(text.count & 0xff)] + text
    }

    static func bytes(_ value: Int) -> [UInt8] {
        let v = UInt32(truncatingIfNeeded: value)
        return [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }

    static func integer(_ bytes: [UInt8], at offset: Int) -> Int {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// `rank 3`, `ranks 1, 2, 3`, or the first 16 and a count.
    static func list(_ ranks: [Int]) -> String {
        let shown = ranks.prefix(16).map(String.init).joined(separator: ", ")
        let more = ranks.count > 16 ? " and \(ranks.count - 16) more" : ""
        return (ranks.count == 1 ? "rank " : "ranks ") + shown + more
    }
}
