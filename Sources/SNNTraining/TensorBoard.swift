import Foundation
import SNNTensor

/// Writes TensorBoard event files (`events.out.tfevents.*`): TFRecord framing of `Event`
/// protocol buffers holding scalar summaries. Encoded by hand: the few fields we write do not
/// justify a protobuf dependency.
public final class TensorBoardWriter {
    private let file: RecordAppender
    public let path: String

    /// Creates `events.out.tfevents.<time>.<host>` in `directory`.
    public init(directory: String) throws {
        try FileSystem.makeDirectory(directory)
        let host = ProcessInfo.processInfo.hostName
        // A resumed run adds a file beside the first one's; TensorBoard reads them in name order.
        var name = "\(directory)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host)"
        var n = 1
        while FileManager.default.fileExists(atPath: name) {
            n += 1
            name = "\(directory)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(n)"
        }
        path = name
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw FileSystemError("create", path) }
        file = RecordAppender(handle: FileHandle(fileDescriptor: fd, closeOnDealloc: true), path: path)
        // The first record names the file format.
        var event = Proto()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        try write(event.bytes)
    }

    deinit { try? file.handle.close() }

    /// Appends scalars at `step`; a record that cannot be written in full is cut back off.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int) throws {
        var summary = Proto()
        for (tag, value) in values {
            var v = Proto()
            v.string(1, tag)
            v.float(2, Float(value))
            summary.message(1, v)
        }
        var event = Proto()
        event.double(1, Date().timeIntervalSince1970)
        event.varintField(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        try write(event.bytes)
    }

    /// Flushes to disk.
    public func flush() { try? file.handle.synchronize() }

    private func write(_ data: [UInt8]) throws {
        var record: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        record += length
        record += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        record += data
        record += withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
        try file.append(Data(record))
    }
}

/// A minimal protocol-buffer encoder for the fields TensorBoard reads.
struct Proto {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var x = v
        while x >= 0x80 { bytes.append(UInt8(x & 0x7F) | 0x80); x >>= 7 }
        bytes.append(UInt8(x))
    }
    mutating func key(_ field: Int, _ wire: UInt64) { varint(UInt64(field) << 3 | wire) }
    mutating func varintField(_ field: Int, _ v: UInt64) { key(field, 0); varint(v) }
    mutating func double(_ field: Int, _ v: Double) { key(field, 1); bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
    mutating func float(_ field: Int, _ v: Float) { key(field, 5); bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
    mutating func string(_ field: Int, _ s: String) { lengthDelimited(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: Proto) { lengthDelimited(field, m.bytes) }
    mutating func lengthDelimited(_ field: Int, _ data: [UInt8]) { key(field, 2); varint(UInt64(data.count)); bytes += data }
}

/// CRC-32C (Castagnoli), as TFRecord frames use it, with TensorFlow's masking.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func masked(_ data: [UInt8]) -> UInt32 {
        let c = checksum(data)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
