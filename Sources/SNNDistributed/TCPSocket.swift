import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A point in monotonic time after which blocking calls give up.
struct Deadline {
    let nanoseconds: UInt64

    init(secondsFromNow seconds: Double) {
        nanoseconds = Self.now() &+ UInt64(max(0, min(seconds, 1e9)) * 1e9)
    }

    private init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    var hasPassed: Bool { Self.now() >= nanoseconds }

    /// What is left, rounded up, for `poll` (0 once passed).
    var remainingMilliseconds: Int32 {
        let now = Self.now()
        guard now < nanoseconds else { return 0 }
        return Int32(min((nanoseconds - now + 999_999) / 1_000_000, UInt64(Int32.max)))
    }

    /// The earlier of this deadline and `seconds` from now.
    func capped(atSecondsFromNow seconds: Double) -> Deadline {
        Deadline(nanoseconds: min(nanoseconds, Deadline(secondsFromNow: seconds).nanoseconds))
    }
}

/// A failed socket call, as `connect: Connection refused` or `read: timed out`.
struct SocketFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }

    /// `function: strerror(errno)`.
    static func errno(_ function: String, _ code: Int32 = Glibc.errno) -> SocketFailure {
        SocketFailure("\(function): \(String(cString: strerror(code)))")
    }
}

/// One non-blocking TCP socket whose every wait goes through `poll` with a deadline, so no call
/// can block past it. Closed when released.
final class TCPSocket {
    let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// The addresses of `host:port` (IPv4 or IPv6, a name or a numeric address), or all local
    /// interfaces for a passive `nil` host.
    private static func addresses(host: String?, port: Int, passive: Bool) throws -> [(Int32, [UInt8])] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, "\(port)", &hints, &list)
        guard code == 0 else {
            let text = code == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(code))
            throw SocketFailure("getaddrinfo(\(host ?? "*")): \(text)")
        }
        defer { freeaddrinfo(list) }
        var result: [(Int32, [UInt8])] = []
        var entry = list
        while let info = entry?.pointee {
            if let address = info.ai_addr {
                result.append((info.ai_family, Array(UnsafeRawBufferPointer(start: address, count: Int(info.ai_addrlen)))))
            }
            entry = info.ai_next
        }
        return result
    }

    private static func makeSocket(family: Int32) throws -> TCPSocket {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure.errno("socket") }
        return TCPSocket(descriptor: fd)
    }

    /// A socket listening on `port` of `host` (all interfaces when `nil`: IPv6 dual-stack when
    /// the host has IPv6, else IPv4).
    static func listen(host: String?, port: Int) throws -> TCPSocket {
        var failure = SocketFailure("getaddrinfo: no address")
        let candidates = try addresses(host: host, port: port, passive: true).sorted { $0.0 == AF_INET6 && $1.0 != AF_INET6 }
        for (family, address) in candidates {
            do {
                let socket = try makeSocket(family: family)
                var on: Int32 = 1, off: Int32 = 0
                setsockopt(socket.descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
                if family == AF_INET6 {
                    setsockopt(socket.descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
                }
                let bound = address.withUnsafeBytes {
                    bind(socket.descriptor, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count))
                }
                guard bound == 0 else { throw SocketFailure.errno("bind") }
                guard Glibc.listen(socket.descriptor, 128) == 0 else { throw SocketFailure.errno("listen") }
                return socket
            } catch let error as SocketFailure {
                failure = error
            }
        }
        throw failure
    }

    /// One attempt to connect to `host:port`, trying each of its addresses until `deadline`.
    static func connect(host: String, port: Int, deadline: Deadline) throws -> TCPSocket {
        var failure = SocketFailure("getaddrinfo(\(host)): no address")
        for (family, address) in try addresses(host: host, port: port, passive: false) {
            do {
                let socket = try makeSocket(family: family)
                let started = address.withUnsafeBytes {
                    Glibc.connect(socket.descriptor, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count))
                }
                if started != 0 {
                    guard errno == EINPROGRESS || errno == EINTR else { throw SocketFailure.errno("connect") }
                    guard try socket.wait(for: Int16(POLLOUT), until: deadline) else { throw SocketFailure("connect: timed out") }
                    var code: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(socket.descriptor, SOL_SOCKET, SO_ERROR, &code, &length)
                    guard code == 0 else { throw SocketFailure.errno("connect", code) }
                }
                return socket
            } catch let error as SocketFailure {
                failure = error
            }
        }
        throw failure
    }

    /// Waits for `events`; `false` when `deadline` passes first. Retries on EINTR.
    private func wait(for events: Int16, until deadline: Deadline) throws -> Bool {
        while true {
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let count = poll(&entry, 1, deadline.remainingMilliseconds)
            if count > 0 { return true }
            if count == 0 { return false }
            guard errno == EINTR else { throw SocketFailure.errno("poll") }
        }
    }

    /// The next connection and its peer's `address:port`; `nil` when `deadline` passes first.
    func accept(until deadline: Deadline) throws -> (TCPSocket, String)? {
        while try wait(for: Int16(POLLIN), until: deadline) {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.accept(descriptor, $0, &length)
                }
            }
            if fd >= 0 {
                // accept4 (flags at once) is a GNU extension Glibc's module does not export.
                let connection = TCPSocket(descriptor: fd)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else { throw SocketFailure.errno("fcntl") }
                return (connection, Self.text(&storage, length: length))
            }
            // A peer that gave up between poll and accept, or a signal: wait again.
            guard [EINTR, EAGAIN, EWOULDBLOCK, ECONNABORTED].contains(errno) else { throw SocketFailure.errno("accept") }
        }
        return nil
    }

    private static func text(_ storage: inout sockaddr_storage, length: socklen_t) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST)), service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let code = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard code == 0 else { return "unknown peer" }
        var name = String(cString: host)
        if name.hasPrefix("::ffff:") { name.removeFirst(7) }  // an IPv4 peer of a dual-stack listener
        return "\(name):\(String(cString: service))"
    }

    /// Writes all of `bytes` (partial writes continue) before `deadline`.
    func write(_ bytes: [UInt8], until deadline: Deadline) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(descriptor, $0.baseAddress.map { $0 + sent }, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                sent += count
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                guard try wait(for: Int16(POLLOUT), until: deadline) else { throw SocketFailure("write: timed out") }
            } else {
                throw SocketFailure.errno("write")
            }
        }
    }

    /// Reads exactly `count` bytes (partial reads continue) before `deadline`.
    func read(count: Int, until deadline: Deadline) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let got = bytes.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress.map { $0 + received }, count - received, 0) }
            if got > 0 {
                received += got
            } else if got == 0 {
                throw SocketFailure("read: connection closed after \(received) of \(count) bytes")
            } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                guard try wait(for: Int16(POLLIN), until: deadline) else {
                    throw SocketFailure("read: timed out after \(received) of \(count) bytes")
                }
            } else {
                throw SocketFailure.errno("read")
            }
        }
        return bytes
    }

    /// Turns on TCP keep-alive: after `idleSeconds` of silence, a probe every `intervalSeconds`,
    /// and the connection fails after `probes` unanswered ones. Best effort.
    func keepAlive(idleSeconds: Int32, intervalSeconds: Int32, probes: Int32) {
        let size = socklen_t(MemoryLayout<Int32>.size)
        for (level, option, value) in [(SOL_SOCKET, SO_KEEPALIVE, Int32(1)), (Int32(IPPROTO_TCP), TCP_KEEPIDLE, idleSeconds),
                                       (Int32(IPPROTO_TCP), TCP_KEEPINTVL, intervalSeconds), (Int32(IPPROTO_TCP), TCP_KEEPCNT, probes)] {
            var v = value
            _ = setsockopt(descriptor, level, option, &v, size)
        }
    }

    /// The port this socket is bound to (for a listener on port 0).
    var localPort: Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        let text = Self.text(&storage, length: length)
        return Int(text.split(separator: ":").last ?? "") ?? 0
    }
}
