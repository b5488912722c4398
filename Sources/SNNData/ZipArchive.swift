import Foundation

/// A read-only view of a ZIP archive whose entries are stored uncompressed, as `torch.save`
/// writes them (PKWARE APPNOTE 6.3: end of central directory, ZIP64 records, central directory,
/// local headers). Compressed entries are listed but refused when read.
///
/// Every error is a ``DataFileError`` naming the file, the entry where there is one, and the
/// byte offset of the bad record. Offsets and sizes come from the file (ZIP64 ones are 64-bit, so
/// anything up to 2^64 - 1, read as negative past 2^63 - 1): each is compared with the bytes
/// the file has before it is added to anything, so none can overflow (found by fuzzing).
public struct ZipArchive {
    /// One entry of the central directory.
    public struct Entry {
        public let name: String
        /// 0: stored; 8: deflated (refused by ``data(_:)``).
        public let method: Int
        public let compressedSize: Int
        public let size: Int
        /// Offset of the entry's local header.
        public let headerOffset: Int
        /// The CRC-32 of the entry's bytes the central directory records; checked when they are read.
        public let crc32: UInt32
    }

    public let path: String
    public let entries: [Entry]
    private let bytes: Data
    /// The index in ``entries`` of each name's first entry.
    private let index: [String: Int]

    /// Whether `data` starts like a ZIP archive (a local header or an empty archive's end record).
    public static func isZip(_ data: Data) -> Bool {
        data.count >= 4 && data.prefix(4).elementsEqual([0x50, 0x4B, 0x03, 0x04] as [UInt8])
            || data.count >= 4 && data.prefix(4).elementsEqual([0x50, 0x4B, 0x05, 0x06] as [UInt8])
    }

    /// Parses the central directory of `data`; `path` labels errors.
    public init(_ data: Data, path: String) throws {
        // Data slices keep their parent's indices; work on a zero-based copy of the view.
        bytes = data.startIndex == 0 ? data : Data(data)
        self.path = path
        entries = try ZipArchive.readDirectory(bytes, path: path)
        index = Dictionary(entries.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Reads an archive file.
    public init(contentsOf path: String) throws {
        try self.init(try EventFiles.contents(path), path: path)
    }

    /// The size of the archive in bytes.
    public var byteCount: Int { bytes.count }

    /// The entry called `name`, if any.
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The bytes of a stored entry, checked against its CRC-32.
    public func data(_ entry: Entry) throws -> Data {
        let range = try contents(entry)
        try check(entry, range)
        return bytes.subdata(in: range)
    }

    /// Calls `body` with the bytes of a stored entry in place (no copy), checked against its
    /// CRC-32 unless `verified` (a caller that reads an entry many times checks it once).
    func withData<R>(_ entry: Entry, verified: Bool = false, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let range = try contents(entry)
        if !verified { try check(entry, range) }
        return try bytes.withUnsafeBytes { raw in try body(UnsafeRawBufferPointer(rebasing: raw[range])) }
    }

    /// Where the bytes of a stored entry lie in the file.
    private func contents(_ entry: Entry) throws -> Range<Int> {
        let at = entry.headerOffset
        guard at >= 0, at <= bytes.count - 30, ZipArchive.u32(bytes, at) == 0x0403_4B50 else {
            throw fail(at, "no local header for entry '\(entry.name)'")
        }
        guard entry.method == 0 else {
            throw fail(at, "entry '\(entry.name)' is compressed (method \(entry.method)); only stored entries are read, as torch.save writes them")
        }
        // At most 30 + 2 × 65535 past a header that starts at least 30 bytes before the end: no overflow.
        let start = at + 30 + ZipArchive.u16(bytes, at + 26) + ZipArchive.u16(bytes, at + 28)
        guard entry.size == entry.compressedSize, entry.size >= 0, start <= bytes.count, entry.size <= bytes.count - start else {
            throw fail(at, "entry '\(entry.name)' (\(UInt64(bitPattern: Int64(entry.size))) bytes from offset \(start)) runs past the end of the \(bytes.count)-byte file")
        }
        return start..<start + entry.size
    }

    private func check(_ entry: Entry, _ range: Range<Int>) throws {
        let crc = bytes.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) }
        guard crc == entry.crc32 else {
            throw fail(entry.headerOffset, String(format: "entry '\(entry.name)' is corrupt: its bytes have CRC-32 %08x, the central directory records %08x", crc, entry.crc32))
        }
    }

    private func fail(_ at: Int, _ why: String) -> DataFileError { DataFileError(path: path, record: nil, offset: at, reason: why) }

    static func u16(_ d: Data, _ at: Int) -> Int { Int(d[at]) | Int(d[at + 1]) << 8 }
    static func u32(_ d: Data, _ at: Int) -> Int { u16(d, at) | u16(d, at + 2) << 16 }
    /// A 64-bit field; values past 2^63 - 1 come back negative, which every check refuses.
    static func u64(_ d: Data, _ at: Int) -> Int { u32(d, at) | u32(d, at + 4) << 32 }

    /// A 64-bit field as the file spells it, for messages.
    private static func unsigned(_ v: Int) -> UInt64 { UInt64(bitPattern: Int64(v)) }

    private static func readDirectory(_ d: Data, path: String) throws -> [Entry] {
        func fail(_ at: Int, _ why: String) -> DataFileError { DataFileError(path: path, record: nil, offset: at, reason: why) }
        // The end record sits in the last 22 + 65535 (comment) bytes.
        guard d.count >= 22 else { throw fail(0, "a ZIP archive needs at least 22 bytes, the file has \(d.count)") }
        var end = -1
        var at = d.count - 22
        while at >= max(0, d.count - 22 - 65535) {
            if u32(d, at) == 0x0605_4B50 { end = at; break }
            at -= 1
        }
        guard end >= 0 else { throw fail(d.count, "no ZIP end-of-central-directory record") }
        var count = u16(d, end + 10), directorySize = u32(d, end + 12), directoryOffset = u32(d, end + 16)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the end record points at the ZIP64 end record.
            let locator = end - 20
            guard locator >= 0, u32(d, locator) == 0x0706_4B50 else { throw fail(end, "ZIP64 sizes without a ZIP64 locator") }
            let record = u64(d, locator + 8)
            guard record >= 0, record <= d.count - 56, u32(d, record) == 0x0606_4B50 else {
                throw fail(locator, "the ZIP64 end record offset \(unsigned(record)) is not valid in the \(d.count)-byte file")
            }
            (count, directorySize, directoryOffset) = (u64(d, record + 32), u64(d, record + 40), u64(d, record + 48))
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= d.count, directorySize <= d.count - directoryOffset, count >= 0,
              count <= directorySize / 46 + 1 else {
            throw fail(end, "the central directory (\(unsigned(count)) entries, \(unsigned(directorySize)) bytes at offset \(unsigned(directoryOffset))) does not fit the \(d.count)-byte file")
        }
        var entries: [Entry] = []
        var p = directoryOffset
        for _ in 0..<count {
            guard p <= d.count - 46, u32(d, p) == 0x0201_4B50 else { throw fail(p, "expected a central directory entry") }
            let (nameLength, extraLength, commentLength) = (u16(d, p + 28), u16(d, p + 30), u16(d, p + 32))
            guard nameLength + extraLength + commentLength <= d.count - p - 46 else { throw fail(p, "central directory entry runs past the end") }
            let name = String(decoding: d[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            var size = u32(d, p + 24), compressed = u32(d, p + 20), offset = u32(d, p + 42)
            // ZIP64 extra field (id 1): the 0xFFFFFFFF fields, in this order, as 64-bit values.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let (id, length) = (u16(d, e), u16(d, e + 2))
                if id == 1 {
                    var q = e + 4
                    func next() throws -> Int {
                        guard q + 8 <= min(e + 4 + length, extraEnd) else { throw fail(e, "short ZIP64 extra field for entry '\(name)'") }
                        defer { q += 8 }
                        return u64(d, q)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if offset == 0xFFFF_FFFF { offset = try next() }
                }
                e += 4 + length
            }
            // The entry's local header and bytes must lie in the file (compared, never added).
            guard offset >= 0, offset <= d.count - 30 else {
                throw fail(p, "entry '\(name)': its local header offset \(unsigned(offset)) is outside the \(d.count)-byte file")
            }
            guard size >= 0, compressed >= 0, compressed <= d.count - 30 - offset else {
                throw fail(p, "entry '\(name)': \(unsigned(compressed)) bytes (\(unsigned(size)) uncompressed) at offset \(offset) run past the end of the \(d.count)-byte file")
            }
            entries.append(Entry(name: name, method: u16(d, p + 10), compressedSize: compressed, size: size, headerOffset: offset,
                                 crc32: UInt32(u32(d, p + 16))))
            p += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }
}

/// CRC-32 (ISO-HDLC, polynomial 0xEDB88320), the checksum ZIP records for each entry; eight
/// bytes a step (slicing-by-8), so checking a checkpoint costs little next to reading it.
enum CRC32 {
    /// Eight 256-entry tables: `table[k * 256 + b]` is the CRC of byte `b` followed by `k` zero bytes.
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 { t[k * 256 + b] = (t[(k - 1) * 256 + b] >> 8) ^ t[Int(t[(k - 1) * 256 + b] & 0xFF)] }
        }
        return t
    }()

    /// The CRC-32 of `bytes`, continuing from `crc` (the CRC of what came before).
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        var i = 0
        let n = bytes.count
        table.withUnsafeBufferPointer { t in
            while i + 8 <= n {
                let lo = c ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                let hi = UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)] ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)] ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }

    /// The CRC-32 of `bytes`.
    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}
