import Foundation

/// A file that is not what its format says; names the file, the record and the byte offset.
public struct DataFileError: Error, CustomStringConvertible {
    public let path: String
    public let record: Int?
    public let offset: Int
    public let reason: String

    public var description: String {
        "\(path): \(reason) (\(record.map { "record \($0), " } ?? "")byte offset \(offset))"
    }
}

/// Readers of event-camera recordings into ``EventStream``s.
public enum EventFiles {
    /// Reads a whole file, naming it in the error.
    static func contents(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw DataFileError(path: path, record: nil, offset: 0, reason: "cannot read the file (\(error.localizedDescription))")
        }
    }

    /// The ATIS 40-bit format of N-MNIST and N-Caltech101 (`.bin`; SLAYER's `.bs2` is the same):
    /// 5 bytes per event, byte 0 x, byte 1 y, byte 2 bit 7 polarity, then a 23-bit microsecond
    /// timestamp over bytes 2-4. A record with y = 240 marks a timestamp overflow: 2^13 µs are
    /// added to every later timestamp and the record is dropped (the original MATLAB reader's rule).
    ///
    /// - Parameters: `width`/`height`: the sensor (34×34 for N-MNIST, 240×180 for N-Caltech101);
    ///   an event outside it is an error.
    public static func readATIS(_ path: String, width: Int, height: Int) throws -> EventStream {
        try decodeATIS(try contents(path), path: path, width: width, height: height)
    }

    /// ``readATIS(_:width:height:)`` on bytes in memory; `path` labels errors.
    public static func decodeATIS(_ data: Data, path: String, width: Int, height: Int) throws -> EventStream {
        guard data.count % 5 == 0 else {
            throw DataFileError(path: path, record: data.count / 5, offset: data.count - data.count % 5,
                                 reason: "the file has \(data.count) bytes, not a whole number of 5-byte events; it is truncated or not an ATIS 40-bit file")
        }
        var events = EventStream(width: width, height: height)
        let n = data.count / 5
        events.x.reserveCapacity(n); events.y.reserveCapacity(n)
        events.polarity.reserveCapacity(n); events.timestamp.reserveCapacity(n)
        var overflow: Int64 = 0
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            for i in 0..<n {
                let o = i * 5
                let x = Int(b[o]), y = Int(b[o + 1])
                if y == 240 {
                    overflow += 1 << 13
                    continue
                }
                guard x < width && y < height else {
                    throw DataFileError(path: path, record: i, offset: o,
                                         reason: "event at (\(x), \(y)) lies outside the \(width)×\(height) sensor")
                }
                let t = (Int64(b[o + 2] & 0x7F) << 16) | (Int64(b[o + 3]) << 8) | Int64(b[o + 4])
                events.append(x: x, y: y, on: b[o + 2] & 0x80 != 0, time: t + overflow)
            }
        }
        return events
    }

    /// jAER's AEDAT 2.0 (`#!AER-DAT2.0`): `#`-prefixed header lines, then 8-byte big-endian
    /// records of a 32-bit address and a 32-bit microsecond timestamp, decoded with the DVS128
    /// address layout CIFAR10-DVS uses: polarity bit 0, x bits 1-7, y bits 8-14. Coordinates are
    /// returned as recorded (raw sensor orientation); data sets apply their own orientation.
    /// Records with bit 15 set are special (external) events and are skipped.
    public static func readAEDAT2(_ path: String) throws -> EventStream {
        try decodeAEDAT2(try contents(path), path: path)
    }

    /// ``readAEDAT2(_:)`` on bytes in memory; `path` labels errors.
    public static func decodeAEDAT2(_ data: Data, path: String) throws -> EventStream {
        var start = 0
        // Header lines start with '#'; the first byte of a line that does not is the data.
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            guard b.count >= 12, Array(b[0..<11]) == Array("#!AER-DAT2.".utf8) || b[0] == UInt8(ascii: "#") else {
                throw DataFileError(path: path, record: nil, offset: 0, reason: "no AEDAT header (expected '#!AER-DAT2.0')")
            }
            while start < b.count && b[start] == UInt8(ascii: "#") {
                guard let end = b[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                    throw DataFileError(path: path, record: nil, offset: start, reason: "the header line starting here never ends")
                }
                start = end + 1
            }
        }
        let body = data.count - start
        guard body % 8 == 0 else {
            throw DataFileError(path: path, record: body / 8, offset: start + body - body % 8,
                                 reason: "\(body % 8) stray bytes after the last whole 8-byte record; the file is truncated")
        }
        var events = EventStream(width: 128, height: 128)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            for i in 0..<(body / 8) {
                let o = start + i * 8
                let address = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))
                let t = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self))
                if address & 0x8000 != 0 { continue }
                events.append(x: Int((address >> 1) & 0x7F), y: Int((address >> 8) & 0x7F), on: address & 1 != 0, time: Int64(t))
            }
        }
        return events
    }
}
