import Foundation

/// Readers of event-camera recordings into ``EventStream``s.
public enum EventFiles {
    /// Reads a whole file, naming it in the error.
    static func contents(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            guard FileManager.default.fileExists(atPath: path) else { throw DataFileError(path: path, reason: "no such file") }
            throw DataFileError(path: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
    }

    /// The ATIS 40-bit format of N-MNIST and N-Caltech101 (`.bin`; SLAYER's `.bs2` is the same):
    /// 5 bytes per event, byte 0 x, byte 1 y, byte 2 bit 7 polarity, then a 23-bit microsecond
    /// timestamp over bytes 2-4. A record with y = 240 marks a timestamp overflow: 2^13 µs are
    /// added to every later timestamp and the record is dropped (the original MATLAB reader's rule).
    /// Timestamps so extended never run backwards in the format (the real N-MNIST files never
    /// do), so an event earlier than the one before it is an error naming its record and offset:
    /// frame integration assumes time order, and such a file is damaged or not ATIS.
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
                guard x < width && y < height else { throw atisError(path, record: i, outside: (x, y), width: width, height: height) }
                let t = ((Int64(b[o + 2] & 0x7F) << 16) | (Int64(b[o + 3]) << 8) | Int64(b[o + 4])) + overflow
                if let last = events.timestamp.last, t < last { throw atisError(path, record: i, time: t, after: last) }
                events.append(x: x, y: y, on: b[o + 2] & 0x80 != 0, time: t)
            }
        }
        return events
    }

    /// The errors of ``decodeATIS(_:path:width:height:)``, built out of line so that the event
    /// loop stays small enough to be optimised as a whole (with them inline it ran 50 % more
    /// instructions per event).
    @inline(never)
    private static func atisError(_ path: String, record: Int, outside xy: (Int, Int), width: Int, height: Int) -> DataFileError {
        DataFileError(path: path, record: record, offset: record * 5, reason: "event at (\(xy.0), \(xy.1)) lies outside the \(width)×\(height) sensor")
    }

    @inline(never)
    private static func atisError(_ path: String, record: Int, time t: Int64, after last: Int64) -> DataFileError {
        DataFileError(path: path, record: record, offset: record * 5,
                      reason: "timestamp \(t) µs is earlier than the previous event's \(last) µs; ATIS timestamps only run forward (a wrap-around is marked by an overflow record, y = 240)")
    }

    /// jAER's AEDAT 2.0 (`#!AER-DAT2.0`): `#`-prefixed header lines, then 8-byte big-endian
    /// records of a 32-bit address and a 32-bit microsecond timestamp, decoded with the DVS128
    /// address layout CIFAR10-DVS uses: polarity bit 0, x bits 1-7, y bits 8-14. Coordinates are
    /// returned as recorded (raw sensor orientation); data sets apply their own orientation.
    /// Records with bit 15 set are special (external) events and are skipped unless
    /// `includeSpecial` (the reference's MATLAB reader keeps them as pixel events).
    public static func readAEDAT2(_ path: String, includeSpecial: Bool = false) throws -> EventStream {
        try decodeAEDAT2(try contents(path), path: path, includeSpecial: includeSpecial)
    }

    /// ``readAEDAT2(_:includeSpecial:)`` on bytes in memory; `path` labels errors.
    public static func decodeAEDAT2(_ data: Data, path: String, includeSpecial: Bool = false) throws -> EventStream {
        var start = 0
        // Header lines start with '#'; the first byte of a line that does not is the data.
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            guard b.count >= 12, Array(b[0..<11]) == Array("#!AER-DAT2.".utf8) || b[0] == UInt8(ascii: "#") else {
                throw DataFileError(path: path, reason: "no AEDAT header (expected '#!AER-DAT2.0')")
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
                if address & 0x8000 != 0 && !includeSpecial { continue }
                events.append(x: Int((address >> 1) & 0x7F), y: Int((address >> 8) & 0x7F), on: address & 1 != 0, time: Int64(t))
            }
        }
        return events
    }
}

extension EventFiles {
    /// iniVation's AEDAT 3.1 (`#!AER-DAT3.1`, DVS128 Gesture's format): `#`-prefixed header
    /// lines up to `#!END-HEADER`, then event packets, each a 28-byte little-endian header
    /// (libcaer's `caerEventPacketHeader`: int16 type at byte 0, int16 source at 2, int32 event
    /// size at 4, timestamp offset at 8, timestamp overflow at 12, capacity at 16, number at 20,
    /// valid at 24) followed by `capacity × size` bytes. The first `number` events are filled;
    /// capacity is only the packet's allocation, and the slots after `number` are not events.
    /// Polarity packets (type 1) hold 8-byte events: a 32-bit word (bit 0 valid, bit 1 polarity,
    /// bits 2-16 y, bits 17-31 x) and a 32-bit timestamp in µs at the timestamp offset (4),
    /// extended by the packet's overflow counter (`overflow << 31`). Other packet types are
    /// skipped, and so are events whose valid bit is clear (`valid` counts the others).
    /// The overflow counter counts up from 0; a negative one is an error, as is any header
    /// whose counts disagree (number > capacity, valid > number) or run past the file.
    public static func readAEDAT3(_ path: String, width: Int = 128, height: Int = 128) throws -> EventStream {
        try decodeAEDAT3(try contents(path), path: path, width: width, height: height)
    }

    /// ``readAEDAT3(_:width:height:)`` on bytes in memory; `path` labels errors.
    public static func decodeAEDAT3(_ data: Data, path: String, width: Int = 128, height: Int = 128) throws -> EventStream {
        var events = EventStream(width: width, height: height)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            guard b.count >= 12, Array(b[0..<11]) == Array("#!AER-DAT3.".utf8) else {
                throw DataFileError(path: path, reason: "no AEDAT 3 header (expected '#!AER-DAT3.1')")
            }
            var o = 0
            let end = Array("#!END-HEADER".utf8)
            while true {
                guard o < b.count, b[o] == UInt8(ascii: "#") else {
                    throw DataFileError(path: path, record: nil, offset: o, reason: "the header has no '#!END-HEADER' line")
                }
                guard let eol = b[o...].firstIndex(of: UInt8(ascii: "\n")) else {
                    throw DataFileError(path: path, record: nil, offset: o, reason: "the header line starting here never ends")
                }
                let isEnd = eol - o >= end.count && Array(b[o..<(o + end.count)]) == end
                o = eol + 1
                if isEnd { break }
            }
            var packet = 0
            func int32(_ at: Int) -> Int { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self))) }
            while o < b.count {
                guard b.count - o >= 28 else {
                    throw DataFileError(path: path, record: packet, offset: o, reason: "packet header cut short after \(b.count - o) of 28 bytes; the file is truncated")
                }
                let type = Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self)))
                let (size, tsOffset, overflow) = (int32(o + 4), int32(o + 8), int32(o + 12))
                let (capacity, number, valid) = (int32(o + 16), int32(o + 20), int32(o + 24))
                guard size > 0, capacity >= 0, number >= 0, valid >= 0, number <= capacity, valid <= number else {
                    throw DataFileError(path: path, record: packet, offset: o,
                                        reason: "packet header is inconsistent (type \(type), event size \(size), capacity \(capacity), number \(number), valid \(valid)); the file is corrupt")
                }
                let left = b.count - o - 28
                // capacity × size without overflow: both are below 2^31, compared by division.
                guard capacity <= left / size else {
                    throw DataFileError(path: path, record: packet, offset: o,
                                        reason: "packet of \(capacity) events of \(size) bytes runs past the end of the file (\(left) bytes left); the file is truncated")
                }
                let body = o + 28
                if type == 1 {
                    guard size >= 8, tsOffset == 4 else {
                        throw DataFileError(path: path, record: packet, offset: o,
                                            reason: "polarity packet with \(size)-byte events and the timestamp at byte \(tsOffset) (expected 8 and 4)")
                    }
                    guard overflow >= 0 else {
                        throw DataFileError(path: path, record: packet, offset: o + 12,
                                            reason: "negative timestamp overflow counter \(overflow); it counts the 2^31 µs wrap-arounds from 0")
                    }
                    for i in 0..<number {
                        let e = body + i * size
                        let word = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: e, as: UInt32.self))
                        guard word & 1 != 0 else { continue }
                        let (x, y) = (Int(word >> 17 & 0x7FFF), Int(word >> 2 & 0x7FFF))
                        guard x < width && y < height else {
                            throw DataFileError(path: path, record: packet, offset: e,
                                                reason: "event at (\(x), \(y)) lies outside the \(width)×\(height) sensor")
                        }
                        let t = Int64(overflow) << 31 | Int64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: e + 4, as: UInt32.self)) & 0x7FFF_FFFF)
                        events.append(x: x, y: y, on: word & 2 != 0, time: t)
                    }
                }
                o = body + capacity * size
                packet += 1
            }
        }
        return events
    }
}
