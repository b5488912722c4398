import Foundation
@testable import SNNDistributed
import Testing

/// The TCP exchange of NCCL's unique id, with every rank a thread of this process on the loopback
/// interface. Each test finds a free port by binding port 0 first.
@Suite("NCCL unique-id exchange")
struct UniqueIDExchangeTests {
    /// A master port whose exchange port (`+ 1`) was free a moment ago.
    private func freeMasterPort() throws -> Int {
        let port = try TCPSocket.listen(host: "127.0.0.1", port: 0).localPort
        #expect(port > 1)
        return port - 1
    }

    /// Runs `body(rank)` on one thread per rank, all at once, and returns each rank's result.
    private func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
        let lock = NSLock()
        nonisolated(unsafe) var results = [T?](repeating: nil, count: count)
        let group = DispatchGroup()
        for rank in 0..<count {
            group.enter()
            Thread {
                let value = body(rank)
                lock.withLock { results[rank] = value }
                group.leave()
            }.start()
        }
        group.wait()
        return results.compactMap { $0 }
    }

    private func randomID() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<NCCLLibrary.uniqueIDByteCount).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test("4 ranks on 127.0.0.1: every rank gets rank 0's id, rank 0 starting late")
    func fourRanks() throws {
        let masterPort = try freeMasterPort()
        let id = randomID()
        let results = onThreads(4) { rank -> Result<[UInt8], DistributedError> in
            // Rank 0 comes last, so the others go through refused connections and retries.
            if rank == 0 { usleep(300_000) }
            return Result {
                let exchange = try UniqueIDExchange(rank: rank, worldSize: 4, masterAddress: "127.0.0.1", masterPort: masterPort,
                                                    timeout: 10)
                #expect(exchange.port == masterPort + 1)
                return try exchange.share(rank == 0 ? id : nil)
            }.mapError { $0 as? DistributedError ?? DistributedError("\($0)") }
        }
        #expect(results.count == 4)
        for (rank, result) in results.enumerated() {
            switch result {
            case .success(let got): #expect(got == id, "rank \(rank)")
            case .failure(let error): Issue.record("rank \(rank): \(error)")
            }
        }
    }

    @Test("a host name (localhost) and an offset of 0")
    func hostName() throws {
        let port = try freeMasterPort() + 1
        let id = randomID()
        let results = onThreads(2) { rank -> [UInt8]? in
            try? UniqueIDExchange(rank: rank, worldSize: 2, masterAddress: "localhost", masterPort: port, portOffset: 0,
                                  timeout: 10).share(rank == 0 ? id : nil)
        }
        #expect(results == [id, id])
    }

    @Test("a peer of another world size is refused, and both sides say why")
    func wrongWorldSize() throws {
        let masterPort = try freeMasterPort()
        let port = masterPort + 1
        let started = Date()
        let results = onThreads(2) { rank -> String in
            do {
                // Rank 1 believes the world has 3 ranks.
                let exchange = try UniqueIDExchange(rank: rank, worldSize: rank == 0 ? 2 : 3, masterAddress: "127.0.0.1",
                                                    masterPort: masterPort, timeout: 1.5)
                _ = try exchange.share(rank == 0 ? randomID() : nil)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let reason = "rank 1 says world size 3, but rank 0's world size is 2 (another job, or a launch with different sizes?)"
        #expect(results[1] == "[NCCL unique id] rank 1 of 3: rank 0 at 127.0.0.1:\(port) refused it: \(reason)")
        #expect(results[0].hasPrefix("[NCCL unique id] rank 0 of 2 waited 1.5 s on port \(port): rank 1 never connected; "
                                     + "refused: 127.0.0.1:"))
        #expect(results[0].hasSuffix(reason))
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("a stranger's bytes are refused without stopping the exchange")
    func stranger() throws {
        let masterPort = try freeMasterPort()
        let id = randomID()
        let results = onThreads(3) { rank -> [UInt8]? in
            if rank == 2 {
                // Not a SwiftSNN rank: connects, sends 19 bytes of something else, reads the refusal.
                let deadline = Deadline(secondsFromNow: 5)
                while !deadline.hasPassed {
                    if let socket = try? TCPSocket.connect(host: "127.0.0.1", port: masterPort + 1, deadline: deadline) {
                        try? socket.write(Array("GET / HTTP/1.1\r\n\r\n\r".utf8), until: deadline)
                        return try? socket.read(count: 1, until: deadline)
                    }
                    usleep(20_000)
                }
                return nil
            }
            // Rank 1 comes after the stranger: rank 0 stops listening once every rank has the id.
            if rank == 1 { usleep(300_000) }
            return try? UniqueIDExchange(rank: rank, worldSize: 2, masterAddress: "127.0.0.1", masterPort: masterPort, timeout: 5)
                .share(rank == 0 ? id : nil)
        }
        #expect(results[0] == id && results[1] == id)
        #expect(results[2] == [1])
    }

    /// A fake rank 0 on the loopback that answers the first connection with `answer` and closes.
    private func fakeRankZero(answering answer: [UInt8]) throws -> (port: Int, thread: Thread) {
        let listener = try TCPSocket.listen(host: "127.0.0.1", port: 0)
        let thread = Thread {
            let deadline = Deadline(secondsFromNow: 5)
            guard let (peer, _) = try? listener.accept(until: deadline) else { return }
            _ = try? peer.read(count: UniqueIDExchange.magic.count + 8, until: deadline)
            try? peer.write(answer, until: deadline)
        }
        thread.start()
        return (listener.localPort, thread)
    }

    /// Answers of a fake rank 0 and what the error must say.
    static let craftedCases: [([UInt8], String)] = [
        ([0, 0xff, 0xff, 0xff, 0xff], "announced 4294967295 bytes, more than 1048576"),
        ([0, 0, 0, 0, 128] + [UInt8](repeating: 7, count: 10), "broke off its answer: read: connection closed after 10 of 128 bytes"),
        ([0, 0, 0, 0, 3, 1, 2, 3], "sent 3 bytes, not a 128-byte id"),
        ([1, 0xff, 0xff] + [UInt8](repeating: 65, count: 5), "broke off its answer: read: connection closed after 5 of 1024 bytes"),
        ([1, 0, 5] + [UInt8](repeating: 65, count: 5), "refused it: AAAAA"),
    ]

    @Test("crafted answers from rank 0 (huge or overflowing lengths, truncated ids, refusals) end in one clear error each",
          arguments: craftedCases)
    func craftedAnswers(_ c: ([UInt8], String)) throws {
        let (answer, expected) = c
        let (port, _) = try fakeRankZero(answering: answer)
        do {
            _ = try UniqueIDExchange(rank: 1, worldSize: 2, masterAddress: "127.0.0.1", masterPort: port, portOffset: 0, timeout: 3)
                .share(nil)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".hasPrefix("[NCCL unique id] rank 1 of 2"), "\(error)")
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test("an unreachable master: the error names host:port, the rank and errno's text, within the deadline")
    func unreachableMaster() throws {
        let masterPort = try freeMasterPort()
        let started = Date()
        do {
            _ = try UniqueIDExchange(rank: 2, worldSize: 4, masterAddress: "127.0.0.1", masterPort: masterPort, timeout: 1)
                .share(nil)
            Issue.record("expected an error")
        } catch {
            let message = "\(error)"
            #expect(message.hasPrefix("[NCCL unique id] rank 2 of 4 could not reach rank 0 at 127.0.0.1:\(masterPort + 1) within 1 s ("))
            #expect(message.hasSuffix("last: connect: Connection refused)"))
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.9 && elapsed < 3, "took \(elapsed) s")
    }

    @Test("a host name that does not resolve is reported by the deadline")
    func unresolvableHost() throws {
        do {
            _ = try UniqueIDExchange(rank: 1, worldSize: 2, masterAddress: "no-such-host.invalid", masterPort: 29500, timeout: 0.5)
                .share(nil)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("could not reach rank 0 at no-such-host.invalid:29501"))
            #expect("\(error)".contains("getaddrinfo(no-such-host.invalid): "))
        }
    }

    @Test("rank 0 alone names the ranks that never connected")
    func nobodyComes() throws {
        let masterPort = try freeMasterPort()
        do {
            _ = try UniqueIDExchange(rank: 0, worldSize: 3, masterAddress: "127.0.0.1", masterPort: masterPort, timeout: 0.5)
                .share(randomID())
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "[NCCL unique id] rank 0 of 3 waited 0.5 s on port \(masterPort + 1): ranks 1, 2 never connected")
        }
    }

    @Test("the port must stay a port; a rendezvous needs a master")
    func validation() {
        #expect(throws: DistributedError.self) {
            try UniqueIDExchange(rank: 0, worldSize: 2, masterAddress: "h", masterPort: 65535)
        }
        do {
            _ = try UniqueIDExchange(rendezvous: Rendezvous(rank: 1, worldSize: 2, launcher: "flags"))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".hasPrefix("[NCCL unique id] rank 1 of 2: no master address and port"))
        }
        let exchange = try? UniqueIDExchange(rendezvous: Rendezvous(rank: 1, worldSize: 2, masterAddress: "node1", masterPort: 29500))
        #expect(exchange?.port == 29501 && exchange?.masterAddress == "node1" && exchange?.timeout == 120)
    }

    @Test("under a communicator the id is broadcast")
    func broadcast() throws {
        let id = randomID()
        #expect(try UniqueIDExchange.broadcast(id, over: SingleProcess()) == id)
    }
}
