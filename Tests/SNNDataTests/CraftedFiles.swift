import Foundation

/// Hostile files built byte by byte inside the tests: pickles, stored ZIP archives and
/// `torch.save` archives, with a CRC-32 written independently of the reader's.
enum Crafted {
    /// The ZIP CRC-32 of `bytes`, bit by bit (slow and obviously right).
    static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    /// Little-endian bytes of the low `width` bytes of `v`.
    static func le(_ v: UInt64, _ width: Int) -> [UInt8] { (0..<width).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    /// A pickle written opcode by opcode.
    struct Pickle {
        var bytes: [UInt8] = [0x80, 0x02]
        mutating func op(_ b: UInt8...) { bytes += b }
        /// LONG1 with 8 bytes: any Int.
        mutating func int(_ v: Int) { bytes += [0x8A, 8] + Crafted.le(UInt64(bitPattern: Int64(v)), 8) }
        mutating func string(_ s: String) { bytes += [0x58] + Crafted.le(UInt64(s.utf8.count), 4) + Array(s.utf8) }
        mutating func binBytes(_ b: [UInt8]) { bytes += [0x42] + Crafted.le(UInt64(b.count), 4) + b }
        mutating func global(_ module: String, _ name: String) { bytes += [0x63] + Array("\(module)\n\(name)\n".utf8) }
        mutating func mark() { op(0x28) }
        mutating func tuple() { op(0x74) }
        mutating func ints(_ v: [Int]) { mark(); for x in v { int(x) }; tuple() }
        mutating func stop() { op(0x2E) }
        var data: Data { Data(bytes) }
    }

    /// A stored ZIP archive of `entries` and where its records lie.
    struct Zip {
        var data: Data
        /// Offset of each entry's central directory record.
        var central: [Int] = []
        /// Offset of each entry's local header.
        var local: [Int] = []
        var zip64Record = -1, locator = -1, end = -1

        /// With `zip64`, every central directory entry keeps its size, compressed size and
        /// offset in a ZIP64 extra field, and the end record points to a ZIP64 end record.
        init(_ entries: [(String, [UInt8])], zip64: Bool = false) {
            var out: [UInt8] = []
            for (name, bytes) in entries {
                local.append(out.count)
                out += Crafted.le(0x0403_4B50, 4) + Crafted.le(20, 2) + Crafted.le(0, 2) + Crafted.le(0, 2) + Crafted.le(0, 4)
                out += Crafted.le(UInt64(Crafted.crc32(bytes)), 4) + Crafted.le(UInt64(bytes.count), 4) + Crafted.le(UInt64(bytes.count), 4)
                out += Crafted.le(UInt64(name.utf8.count), 2) + Crafted.le(0, 2) + Array(name.utf8) + bytes
            }
            let directory = out.count
            for ((name, bytes), offset) in zip(entries, local) {
                central.append(out.count)
                let small: (UInt64) -> UInt64 = { zip64 ? 0xFFFF_FFFF : $0 }
                let extra = zip64 ? Crafted.le(1, 2) + Crafted.le(24, 2) + Crafted.le(UInt64(bytes.count), 8) + Crafted.le(UInt64(bytes.count), 8)
                    + Crafted.le(UInt64(offset), 8) : []
                out += Crafted.le(0x0201_4B50, 4) + Crafted.le(45, 2) + Crafted.le(45, 2) + Crafted.le(0, 2) + Crafted.le(0, 2) + Crafted.le(0, 4)
                out += Crafted.le(UInt64(Crafted.crc32(bytes)), 4) + Crafted.le(small(UInt64(bytes.count)), 4) + Crafted.le(small(UInt64(bytes.count)), 4)
                out += Crafted.le(UInt64(name.utf8.count), 2) + Crafted.le(UInt64(extra.count), 2) + Crafted.le(0, 2) + Crafted.le(0, 2)
                out += Crafted.le(0, 2) + Crafted.le(0, 4) + Crafted.le(small(UInt64(offset)), 4) + Array(name.utf8) + extra
            }
            let size = out.count - directory
            if zip64 {
                zip64Record = out.count
                out += Crafted.le(0x0606_4B50, 4) + Crafted.le(44, 8) + Crafted.le(45, 2) + Crafted.le(45, 2) + Crafted.le(0, 4) + Crafted.le(0, 4)
                out += Crafted.le(UInt64(entries.count), 8) + Crafted.le(UInt64(entries.count), 8) + Crafted.le(UInt64(size), 8) + Crafted.le(UInt64(directory), 8)
                locator = out.count
                out += Crafted.le(0x0706_4B50, 4) + Crafted.le(0, 4) + Crafted.le(UInt64(zip64Record), 8) + Crafted.le(1, 4)
            }
            end = out.count
            out += Crafted.le(0x0605_4B50, 4) + Crafted.le(0, 2) + Crafted.le(0, 2)
            out += Crafted.le(zip64 ? 0xFFFF : UInt64(entries.count), 2) + Crafted.le(zip64 ? 0xFFFF : UInt64(entries.count), 2)
            out += Crafted.le(zip64 ? 0xFFFF_FFFF : UInt64(size), 4) + Crafted.le(zip64 ? 0xFFFF_FFFF : UInt64(directory), 4) + Crafted.le(0, 2)
            data = Data(out)
        }

        /// Overwrites `width` bytes at `at` with `value`, little-endian.
        mutating func patch(_ at: Int, _ value: UInt64, width: Int) {
            data.replaceSubrange(at..<at + width, with: Crafted.le(value, width))
        }
    }

    /// A one-tensor `torch.save` archive: `{'w': tensor}` viewing storage `0` of `numel` float32
    /// elements (whose bytes are `storage`) with `offset`, `size` and `stride`; `keys` more keys
    /// name the same tensor.
    static func torch(storage: [Float], numel: Int? = nil, offset: Int = 0, size: [Int], stride: [Int], keys: Int = 1, zip64: Bool = false) -> Zip {
        var p = Pickle()
        p.op(0x7D)                                                    // EMPTY_DICT
        p.mark()
        for k in 0..<keys {
            p.string(k == 0 ? "w" : "w\(k)")
            if k > 0 { p.op(0x68, 0); continue }                      // BINGET 0: the same tensor again
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.mark()
            p.mark(); p.string("storage"); p.global("torch", "FloatStorage"); p.string("0"); p.string("cpu"); p.int(numel ?? storage.count); p.tuple()
            p.op(0x51)                                                // BINPERSID
            p.int(offset); p.ints(size); p.ints(stride); p.op(0x89); p.op(0x4E)
            p.tuple()
            p.op(0x52, 0x71, 0)                                       // REDUCE, BINPUT 0
        }
        p.op(0x75)                                                    // SETITEMS
        p.stop()
        let raw = storage.flatMap { Crafted.le(UInt64($0.bitPattern), 4) }
        return Zip([("archive/data.pkl", p.bytes), ("archive/byteorder", Array("little".utf8)), ("archive/data/0", raw)], zip64: zip64)
    }

    /// Recomputes the CRC-32 of entry `name` in a stored archive after its bytes were edited.
    static func fixCRC(of name: String, in bytes: inout Data) {
        let d = [UInt8](bytes)
        var p = 0
        while p + 46 <= d.count {
            let n = Int(d[p + 28]) | Int(d[p + 29]) << 8
            if d[p..<p + 4] == [0x50, 0x4B, 0x01, 0x02], p + 46 + n <= d.count, Array(d[p + 46..<p + 46 + n]) == Array(name.utf8) {
                let size = Int(d[p + 20]) | Int(d[p + 21]) << 8 | Int(d[p + 22]) << 16 | Int(d[p + 23]) << 24
                let local = Int(d[p + 42]) | Int(d[p + 43]) << 8 | Int(d[p + 44]) << 16 | Int(d[p + 45]) << 24
                let start = local + 30 + (Int(d[local + 26]) | Int(d[local + 27]) << 8) + (Int(d[local + 28]) | Int(d[local + 29]) << 8)
                bytes.replaceSubrange(p + 16..<p + 20, with: le(UInt64(crc32(d[start..<start + size])), 4))
                return
            }
            p += 1
        }
    }
}
