import Foundation
@testable import SNNDistributed
import Testing

/// The socket layer under the unique-id exchange: reads and writes that arrive in pieces, and
/// deadlines on every wait.
@Suite("TCP sockets with deadlines")
struct TCPSocketTests {
    /// A connected pair on the loopback interface.
    private func pair() throws -> (TCPSocket, TCPSocket) {
        let listener = try TCPSocket.listen(host: "127.0.0.1", port: 0)
        let deadline = Deadline(secondsFromNow: 5)
        let client = try TCPSocket.connect(host: "127.0.0.1", port: listener.localPort, deadline: deadline)
        guard let (server, _) = try listener.accept(until: deadline) else { throw SocketFailure("accept: timed out") }
        return (client, server)
    }

    @Test("a read gathers bytes sent in pieces")
    func piecewiseRead() throws {
        let (client, server) = try pair()
        let bytes = (0..<128).map { UInt8($0) }
        let writer = Thread {
            for piece in [bytes[0..<5], bytes[5..<64], bytes[64..<128]] {
                try? client.write(Array(piece), until: Deadline(secondsFromNow: 5))
                usleep(50_000)
            }
        }
        writer.start()
        #expect(try server.read(count: 128, until: Deadline(secondsFromNow: 5)) == bytes)
    }

    @Test("a write larger than the socket buffers waits for the reader")
    func largeWrite() throws {
        let (client, server) = try pair()
        let bytes = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        nonisolated(unsafe) var received: [UInt8] = []
        let done = DispatchSemaphore(value: 0)
        Thread {
            usleep(100_000)  // the writer fills the buffers first
            received = (try? server.read(count: bytes.count, until: Deadline(secondsFromNow: 20))) ?? []
            done.signal()
        }.start()
        try client.write(bytes, until: Deadline(secondsFromNow: 20))
        done.wait()
        #expect(received == bytes)
    }

    @Test("a read stops at its deadline, saying how much came; a closed peer is named")
    func deadlines() throws {
        let (client, server) = try pair()
        try client.write([1, 2, 3, 4, 5], until: Deadline(secondsFromNow: 1))
        let started = Date()
        #expect(throws: SocketFailure.self) { try server.read(count: 128, until: Deadline(secondsFromNow: 0.3)) }
        do {
            _ = try server.read(count: 128, until: Deadline(secondsFromNow: 0.2))
        } catch {
            #expect("\(error)" == "read: timed out after 0 of 128 bytes")
        }
        #expect(Date().timeIntervalSince(started) < 2)
        let listener = try TCPSocket.listen(host: "127.0.0.1", port: 0)
        #expect(try listener.accept(until: Deadline(secondsFromNow: 0.2)) == nil)
        let (other, peer) = try pair()
        try other.write([9], until: Deadline(secondsFromNow: 1))
        _ = consume other
        do {
            _ = try peer.read(count: 4, until: Deadline(secondsFromNow: 1))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "read: connection closed after 1 of 4 bytes")
        }
    }
}
