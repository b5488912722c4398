import Foundation
import SNNData
import Testing

/// Crafted AEDAT 3.1 packets and ATIS records, built byte by byte here, against libcaer's packet
/// header layout and the formats' time rules; and every real N-MNIST sample in ../shared/data.
@Suite("event files: crafted packets and records")
struct EventFilesHardeningTests {
    /// An AEDAT 3.1 file being built: a header, then packets appended with every header field given.
    struct AEDAT3 {
        var data = Data("#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".utf8)

        mutating func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }

        /// libcaer's 28-byte header: type, source, size, timestamp offset, overflow, capacity, number, valid.
        mutating func header(type: Int16 = 1, size: Int32 = 8, tsOffset: Int32 = 4, overflow: Int32 = 0,
                             capacity: Int32, number: Int32, valid: Int32) {
            put(type); put(Int16(1)); put(size); put(tsOffset); put(overflow); put(capacity); put(number); put(valid)
        }

        /// One polarity event slot.
        mutating func event(_ x: Int, _ y: Int, on: Bool = true, t: UInt32, valid: Bool = true) {
            put(UInt32(x) << 17 | UInt32(y) << 2 | (on ? 2 : 0) | (valid ? 1 : 0))
            put(t)
        }
    }

    private func refuses(_ file: AEDAT3, record: Int, offset: Int? = nil, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try EventFiles.decodeAEDAT3(file.data, path: "crafted.aedat")
            Issue.record("expected an error", sourceLocation: sourceLocation)
        } catch let e as DataFileError {
            #expect(e.path == "crafted.aedat" && e.record == record && (offset == nil || e.offset == offset) && words.allSatisfy(e.reason.contains),
                    "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("not a DataFileError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("AEDAT 3.1: number 3, valid 2 yields the valid events of all three slots")
    func numberAndValid() throws {
        var f = AEDAT3()
        f.header(capacity: 3, number: 3, valid: 2)
        f.event(1, 2, t: 10)
        f.event(3, 4, t: 11, valid: false)
        f.event(5, 6, on: false, t: 12)
        let s = try EventFiles.decodeAEDAT3(f.data, path: "v.aedat")
        #expect(s.x == [1, 5] && s.y == [2, 6] && s.polarity == [1, 0] && s.timestamp == [10, 12])
    }

    @Test("AEDAT 3.1: a packet whose capacity exceeds its number reads number events and skips the rest")
    func capacityBeyondNumber() throws {
        var f = AEDAT3()
        f.header(capacity: 5, number: 2, valid: 2)
        f.event(1, 1, t: 1)
        f.event(2, 2, t: 2)
        f.event(99, 99, t: 3)  // allocated slots past `number`: not events, even marked valid
        f.event(98, 98, t: 4)
        f.event(97, 97, t: 5)
        f.header(type: 2, size: 12, capacity: 3, number: 1, valid: 1)  // another type, also with spare capacity
        f.data.append(Data(repeating: 0xEE, count: 36))
        f.header(capacity: 1, number: 1, valid: 1)
        f.event(7, 8, t: 9)
        let s = try EventFiles.decodeAEDAT3(f.data, path: "c.aedat")
        #expect(s.x == [1, 2, 7] && s.y == [1, 2, 8] && s.timestamp == [1, 2, 9])
        // An empty packet (capacity 0) is fine too.
        var empty = AEDAT3()
        empty.header(capacity: 0, number: 0, valid: 0)
        #expect(try EventFiles.decodeAEDAT3(empty.data, path: "e.aedat").count == 0)
    }

    @Test("AEDAT 3.1: overflow counters 1, 2 and 2^31 - 1 extend timestamps past 2^31, 2^32 and to near 2^62")
    func overflowCounters() throws {
        var f = AEDAT3()
        for overflow in [Int32(0), 1, 2, Int32.max] {
            f.header(overflow: overflow, capacity: 1, number: 1, valid: 1)
            f.event(1, 1, t: 0x7FFF_FFFF)
        }
        let s = try EventFiles.decodeAEDAT3(f.data, path: "o.aedat")
        let low = Int64(0x7FFF_FFFF)
        #expect(s.timestamp == [low, (1 << 31) + low, (1 << 32) + low, Int64(Int32.max) << 31 + low])
        #expect(s.timestamp.last! == (1 << 62) - 1)
    }

    @Test("AEDAT 3.1: negative overflow counters and inconsistent headers are errors naming the packet")
    func badHeaders() throws {
        let start = AEDAT3().data.count
        var f = AEDAT3()
        f.header(capacity: 1, number: 1, valid: 1)
        f.event(1, 1, t: 5)
        f.header(overflow: -1, capacity: 1, number: 1, valid: 1)
        f.event(1, 1, t: 6)
        refuses(f, record: 1, offset: start + 36 + 12, ["negative timestamp overflow counter -1"])
        for (capacity, number, valid) in [(Int32(2), Int32(3), Int32(1)), (3, 2, 3), (-1, 0, 0), (2, -1, 0), (2, 1, -1), (Int32.min, 0, 0)] {
            var g = AEDAT3()
            g.header(capacity: capacity, number: number, valid: valid)
            g.data.append(Data(count: 24))
            refuses(g, record: 0, offset: start, ["inconsistent", "capacity \(capacity), number \(number), valid \(valid)"])
        }
        for size in [Int32(0), -8, Int32.min] {
            var g = AEDAT3()
            g.header(size: size, capacity: 1, number: 1, valid: 1)
            g.data.append(Data(count: 8))
            refuses(g, record: 0, ["inconsistent", "event size \(size)"])
        }
        // Capacities and sizes whose product passes 2^31, 2^32 or 2^62 bytes: truncated, no overflow.
        for (size, capacity) in [(Int32(8), Int32(1 << 28)), (Int32(8), Int32.max), (Int32.max, Int32.max), (Int32(1 << 16), Int32(1 << 16))] {
            var g = AEDAT3()
            g.header(size: size, capacity: capacity, number: 1, valid: 1)
            g.event(1, 1, t: 1)
            refuses(g, record: 0, offset: start, ["runs past the end", "truncated"])
        }
        var g = AEDAT3()
        g.header(tsOffset: 0, capacity: 1, number: 1, valid: 1)
        g.event(1, 1, t: 1)
        refuses(g, record: 0, ["timestamp at byte 0"])
        var h = AEDAT3()
        h.header(capacity: 1, number: 1, valid: 1)
        h.event(200, 1, t: 1)
        refuses(h, record: 0, offset: start + 28, ["(200, 1) lies outside the 128×128 sensor"])
    }

    @Test("AEDAT 3.1: every truncation ends in events or an error, never a crash")
    func truncations() {
        var f = AEDAT3()
        f.header(capacity: 3, number: 2, valid: 2)
        for i in 0..<3 { f.event(i, i, t: UInt32(i)) }
        f.header(type: 0, capacity: 1, number: 1, valid: 1)
        f.event(0, 0, t: 0)
        let headerLength = AEDAT3().data.count
        for n in 0..<f.data.count {
            do {
                let s = try EventFiles.decodeAEDAT3(f.data.prefix(n), path: "cut.aedat")
                #expect([headerLength, headerLength + 28 + 24, f.data.count].contains(n), "only whole packets read: \(n) bytes gave \(s.count) events")
                #expect(s.count == (n > headerLength ? 2 : 0))
            } catch let e as DataFileError {
                #expect(e.path == "cut.aedat")
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    /// One ATIS 40-bit record.
    static func atis(_ x: UInt8, _ y: UInt8, on: Bool = true, t: Int) -> [UInt8] {
        [x, y, UInt8(t >> 16 & 0x7F) | (on ? 0x80 : 0), UInt8(t >> 8 & 0xFF), UInt8(t & 0xFF)]
    }

    @Test("ATIS: a timestamp that runs backwards is an error naming the record and offset; equal ones and overflow records are fine")
    func atisTime() throws {
        let back = Data(Self.atis(1, 2, t: 100) + Self.atis(3, 4, t: 100) + Self.atis(5, 6, t: 99))
        #expect { try EventFiles.decodeATIS(back, path: "back.bin", width: 34, height: 34) } throws: {
            let e = $0 as! DataFileError
            return e.path == "back.bin" && e.record == 2 && e.offset == 10 && e.reason.contains("99 µs is earlier than the previous event's 100 µs")
        }
        // After an overflow record (y = 240) later timestamps gain 2^13 µs: 8000 then 100 + 8192 runs forward.
        let wrapped = Data(Self.atis(1, 2, t: 8000) + Self.atis(0, 240, t: 0) + Self.atis(3, 4, t: 100) + Self.atis(5, 6, t: (1 << 23) - 1))
        let e = try EventFiles.decodeATIS(wrapped, path: "w.bin", width: 34, height: 34)
        #expect(e.timestamp == [8000, 8292, (1 << 23) - 1 + 8192])
        // ... but not when the raw timestamp falls further than the overflow adds.
        let tooFar = Data(Self.atis(1, 2, t: 9000) + Self.atis(0, 240, t: 0) + Self.atis(3, 4, t: 100))
        #expect { try EventFiles.decodeATIS(tooFar, path: "f.bin", width: 34, height: 34) } throws: {
            ($0 as! DataFileError).record == 2 && ($0 as! DataFileError).offset == 10
        }
        #expect(try EventFiles.decodeATIS(Data(), path: "empty.bin", width: 34, height: 34).count == 0)
    }

    @Test("ATIS: every real N-MNIST sample in shared/data loads, in time order")
    func realNMNIST() throws {
        let fm = FileManager.default
        var files: [String] = []
        for dir in ["nmnist/slayerpytorch-NMNISTsmall", "nmnist/tonic"] {
            let path = "\(TestFiles.shared)/\(dir)"
            files += try fm.contentsOfDirectory(atPath: path).filter { !$0.hasSuffix(".txt") }.map { "\(path)/\($0)" }
        }
        #expect(files.count == 481)
        for file in files {
            let e = try EventFiles.readATIS(file, width: 34, height: 34)
            #expect(e.count > 0 && zip(e.timestamp, e.timestamp.dropFirst()).allSatisfy { $0 <= $1 }, "\(file)")
        }
    }
}
