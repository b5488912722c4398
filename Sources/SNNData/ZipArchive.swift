import Foundation

/// A read-only view of a ZIP archive whose entries are stored uncompressed, as `torch.save`
/// writes them (PKWARE APPNOTE 6.3: end of central directory, ZIP64 records, central directory,
/// local headers). Compressed entries are listed but refused when read.
///
/// Every error is a ``DataFileError`` naming the file and the byte offset of the bad record.
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
    }

    public let path: String
    public let entries: [Entry]
    private let bytes: Data

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
    }

    /// Reads an archive file.
    public init(contentsOf path: String) throws {
        try self.init(try EventFiles.contents(path), path: path)
    }

    /// The entry called `name`, if any.
    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// The bytes of a stored entry.
    public func data(_ entry: Entry) throws -> Data {
        let at = entry.headerOffset
        guard at >= 0, at + 30 <= bytes.count, ZipArchive.u32(bytes, at) == 0x0403_4B50 else {
            throw fail(at, "no local header for '\(entry.name)'")
        }
        guard entry.method == 0 else {
            throw fail(at, "'\(entry.name)' is compressed (method \(entry.method)); only stored entries are read, as torch.save writes them")
        }
        let start = at + 30 + ZipArchive.u16(bytes, at + 26) + ZipArchive.u16(bytes, at + 28)
        guard entry.size == entry.compressedSize, entry.size >= 0, start <= bytes.count, entry.size <= bytes.count - start else {
            throw fail(at, "'\(entry.name)' (\(entry.size) bytes from offset \(start)) runs past the end of the \(bytes.count)-byte file")
        }
        return bytes.subdata(in: start..<start + entry.size)
    }

    private func fail(_ at: Int, _ why: String) -> DataFileError { DataFileError(path: path, record: nil, offset: at, reason: why) }

    static func u16(_ d: Data, _ at: Int) -> Int { Int(d[at]) | Int(d[at + 1]) << 8 }
    static func u32(_ d: Data, _ at: Int) -> Int { u16(d, at) | u16(d, at + 2) << 16 }
    static func u64(_ d: Data, _ at: Int) -> Int { u32(d, at) | u32(d, at + 4) << 32 }

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
            guard record >= 0, record + 56 <= d.count, u32(d, record) == 0x0606_4B50 else {
                throw fail(locator, "the ZIP64 end record offset \(record) is not valid")
            }
            (count, directorySize, directoryOffset) = (u64(d, record + 32), u64(d, record + 40), u64(d, record + 48))
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= d.count, directorySize <= d.count - directoryOffset, count >= 0,
              count <= directorySize / 46 + 1 else {
            throw fail(end, "the central directory (\(count) entries, \(directorySize) bytes at offset \(directoryOffset)) does not fit the \(d.count)-byte file")
        }
        var entries: [Entry] = []
        var p = directoryOffset
        for _ in 0..<count {
            guard p + 46 <= d.count, u32(d, p) == 0x0201_4B50 else { throw fail(p, "expected a central directory entry") }
            let (nameLength, extraLength, commentLength) = (u16(d, p + 28), u16(d, p + 30), u16(d, p + 32))
            guard p + 46 + nameLength + extraLength + commentLength <= d.count else { throw fail(p, "central directory entry runs past the end") }
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
                        guard q + 8 <= min(e + 4 + length, extraEnd) else { throw fail(e, "short ZIP64 extra field for '\(name)'") }
                        defer { q += 8 }
                        return u64(d, q)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if offset == 0xFFFF_FFFF { offset = try next() }
                }
                e += 4 + length
            }
            entries.append(Entry(name: name, method: u16(d, p + 10), compressedSize: compressed, size: size, headerOffset: offset))
            p += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }
}
