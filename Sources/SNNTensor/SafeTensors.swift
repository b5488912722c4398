import Foundation

/// An error reading or writing a safetensors file; the message names the file and what is wrong.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header
/// length, a JSON header `{name: {dtype, shape, data_offsets}, "__metadata__": {...}}`, then the
/// raw little-endian tensor bytes. Files we write load in Python's `safetensors.numpy` and
/// PyTorch; files they write load here.
public enum SafeTensors {
    /// The largest JSON header accepted, in bytes: Python's safetensors refuses longer headers
    /// (`MAX_HEADER_SIZE`), so neither reads nor writes one.
    public static let maxHeaderLength = 100_000_000

    /// One tensor as the header describes it; `start..<end` is relative to the data section.
    struct Entry {
        let name: String
        let dtype: DType
        let shape: [Int]
        let start: Int
        let end: Int
    }

    /// Encodes named tensors (and optional string metadata) as safetensors bytes. Refuses what
    /// ``decode(_:path:device:)`` (and Python's safetensors) would refuse: a tensor named
    /// `__metadata__`, a header over ``maxHeaderLength``; the finished header is checked by the
    /// reader's own validation. `path` only labels errors.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:], path: String = "<memory>") throws -> Data {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }
        guard tensors["__metadata__"] == nil else {
            throw fail("a tensor may not be named '__metadata__': the format reserves that key for the metadata map")
        }
        let names = tensors.keys.sorted()
        var header: [String: Any] = [:]
        var offset = 0
        for name in names {
            let t = tensors[name]!  // the key comes from the dictionary itself
            let (bytes, o1) = t.count.multipliedReportingOverflow(by: t.dtype.size)
            let (end, o2) = offset.addingReportingOverflow(bytes)
            guard !o1, !o2 else { throw fail("tensor '\(name)' ends past byte 2^63 of the data section") }
            header[name] = ["dtype": t.dtype.safetensorsName, "shape": t.shape, "data_offsets": [offset, end]]
            offset = end
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        guard json.count <= maxHeaderLength else {
            throw fail("the header would take \(json.count) bytes; safetensors reads at most \(maxHeaderLength)")
        }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        // The reader's checks on what we are about to write: a file we write must load here and
        // in Python (exact cover of the data section, sizes matching shapes, no overflow).
        _ = try out.withUnsafeBytes { try entries(in: $0, dataLength: offset, path: path) }
        for name in names {
            let t = tensors[name]!.contiguousData()
            let start = out.count
            out.append(Data(count: t.count * t.dtype.size))
            out.withUnsafeMutableBytes { raw in
                t.device.memoryBackend.download(t, into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
            }
        }
        return out
    }

    /// Writes named tensors to `path` atomically (temporary file, then rename).
    public static func save(_ tensors: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
        let data = try encode(tensors, metadata: metadata, path: path)
        try AtomicFile.write(data, to: path)
    }

    /// Reads every tensor of a safetensors file onto `device`.
    public static func load(_ path: String, device: Device = .cpu) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw SafeTensorsError(path: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try decode(data, path: path, device: device).tensors
    }

    /// The metadata of a safetensors file, reading only its header (the header is checked
    /// against the file's size as ``decode(_:path:device:)`` checks it).
    public static func metadata(ofFile path: String) throws -> [String: String] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw SafeTensorsError(path: path, reason: "cannot open it: \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        do {
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: 0)
            let prefix = try handle.read(upToCount: 8) ?? Data()
            guard prefix.count == 8 else {
                throw SafeTensorsError(path: path, reason: "file of \(size) bytes is too short for the 8-byte header length at offset 0")
            }
            let length = prefix.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            // Past either bound, the whole-file reader gives the message; read no further.
            guard length <= size - 8, length <= UInt64(maxHeaderLength) else {
                return try decode(try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped), path: path).metadata
            }
            let header = prefix + (try handle.read(upToCount: Int(length)) ?? Data())
            return try header.withUnsafeBytes { try entries(in: $0, dataLength: Int(size - 8 - length), path: path).metadata }
        } catch let error as SafeTensorsError {
            throw error
        } catch {
            throw SafeTensorsError(path: path, reason: "cannot read it: \(FileSystemError.reason(error))")
        }
    }

    /// Decodes safetensors bytes; `path` only labels errors.
    ///
    /// Every length, offset and count comes from the file, so each is checked with overflow-
    /// reporting arithmetic against the bytes actually present before anything is allocated.
    /// Like Python's safetensors, the tensors' byte ranges must cover the data section exactly
    /// (sorted, no overlap, no gap, nothing after the last tensor), so any file accepted here
    /// loads there too.
    public static func decode(_ data: Data, path: String = "<memory>", device: Device = .cpu) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let (list, metadata, dataStart) = try entries(in: raw, dataLength: nil, path: path)
            var tensors: [String: Tensor] = [:]
            for e in list {
                let t: Tensor
                do { t = try Tensor.allocate(e.shape, dtype: e.dtype, device: device) } catch {
                    throw SafeTensorsError(path: path, reason: "tensor '\(e.name)' (\(e.dtype.safetensorsName) \(ShapeUtil.describe(e.shape))): \(error)")
                }
                device.memoryBackend.upload(UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.start)..<(dataStart + e.end)]), into: t)
                tensors[e.name] = t
            }
            return (tensors, metadata)
        }
    }

    /// Parses and checks the header of `raw`: the tensors in data order, the metadata and where
    /// the data section starts. `dataLength` is the data section's size when `raw` holds only
    /// the header (the writer's check); otherwise it is what follows the header.
    static func entries(in raw: UnsafeRawBufferPointer, dataLength: Int?, path: String) throws -> (entries: [Entry], metadata: [String: String], dataStart: Int) {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }
        guard raw.count >= 8 else { throw fail("file of \(raw.count) bytes is too short for the 8-byte header length at offset 0") }
        let headerLength = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard headerLength <= UInt64(raw.count - 8) else {
            throw fail("header length \(headerLength) at offset 0 exceeds the file size \(raw.count)")
        }
        guard headerLength <= UInt64(maxHeaderLength) else {
            throw fail("header length \(headerLength) at offset 0 exceeds the \(maxHeaderLength)-byte limit of the safetensors format")
        }
        let dataStart = 8 + Int(headerLength)
        let dataLength = dataLength ?? raw.count - dataStart
        let headerBytes = UnsafeRawBufferPointer(rebasing: raw[8..<dataStart])
        guard let header = try? JSONDecoder().decode([String: JSONValue].self, from: Data(headerBytes)) else {
            throw fail("the header at offset 8 is not a JSON object")
        }
        var list: [Entry] = []
        var metadata: [String: String] = [:]
        for name in header.keys.sorted() {
            let value = header[name]!  // the key comes from the dictionary itself
            if name == "__metadata__" {
                guard case .object(let m) = value else { throw fail("__metadata__ is not a string-to-string map") }
                for (key, v) in m {
                    guard case .string(let s) = v else { throw fail("__metadata__ is not a string-to-string map (key '\(key)')") }
                    metadata[key] = s
                }
                continue
            }
            guard case .object(let entry) = value, case .string(let dtypeName)? = entry["dtype"],
                  case .array(let shapeValues)? = entry["shape"], case .array(let offsetValues)? = entry["data_offsets"] else {
                throw fail("tensor '\(name)' has no valid dtype, shape and data_offsets")
            }
            guard let dtype = DType(safetensorsName: dtypeName) else {
                throw fail("tensor '\(name)' has dtype \(dtypeName), which SwiftSNN does not read (F32, F64, F16, BF16, I32, I64, U8)")
            }
            let shape = shapeValues.map(\.nonNegativeInteger)
            guard !shape.contains(nil) else {
                throw fail("tensor '\(name)' has shape \(JSONValue.array(shapeValues)); dimensions must be integers in 0...\(Int.max)")
            }
            let offsets = offsetValues.map(\.nonNegativeInteger)
            guard offsets.count == 2, let start = offsets[0], let end = offsets[1] else {
                throw fail("tensor '\(name)' has data_offsets \(JSONValue.array(offsetValues)); they must be two integers in 0...\(Int.max)")
            }
            let dims = shape.map { $0! }
            // Python multiplies the dimensions in order with overflow checks; the strides of a
            // tensor multiply the non-zero ones, so both must stay below 2^63 bytes.
            var elements = 1, overflow = false
            for d in dims {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                (elements, overflow) = (p, overflow || o)
            }
            var span = dtype.size
            for d in dims where d > 0 {
                let (p, o) = span.multipliedReportingOverflow(by: d)
                (span, overflow) = (p, overflow || o)
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, !o else {
                throw fail("tensor '\(name)' has shape \(ShapeUtil.describe(dims)), whose \(dtypeName) byte size overflows 64-bit arithmetic")
            }
            guard start <= end else {
                throw fail("tensor '\(name)' has data_offsets [\(start), \(end)] that end before they begin")
            }
            guard end - start == bytes else {
                throw fail("tensor '\(name)' (\(dtypeName) \(ShapeUtil.describe(dims)), \(bytes) bytes) has data_offsets [\(start), \(end)] spanning \(end - start) bytes")
            }
            guard end <= dataLength else {
                throw fail("tensor '\(name)' (\(dtypeName) \(ShapeUtil.describe(dims)), \(bytes) bytes) has data_offsets [\(start), \(end)] outside the \(dataLength)-byte data section at offset \(dataStart)")
            }
            list.append(Entry(name: name, dtype: dtype, shape: dims, start: start, end: end))
        }
        // The byte ranges, in order, must tile the data section: Python's safetensors refuses
        // overlaps (one write would change two tensors) and gaps (bytes no tensor accounts for).
        list.sort { ($0.start, $0.end, $0.name) < ($1.start, $1.end, $1.name) }
        var covered = 0
        var previous: Entry? = nil
        for e in list {
            if e.start < covered, let p = previous {
                throw fail("tensor '\(e.name)' (data_offsets [\(e.start), \(e.end)]) overlaps tensor '\(p.name)' ([\(p.start), \(p.end)]) at file offset \(dataStart + e.start)")
            }
            if e.start > covered {
                throw fail("bytes \(covered)..<\(e.start) of the data section (file offset \(dataStart + covered)) belong to no tensor; the next is '\(e.name)'")
            }
            covered = e.end
            previous = e
        }
        guard covered == dataLength else {
            throw fail("the data section at offset \(dataStart) has \(dataLength) bytes but the tensors cover only \(covered); bytes at file offset \(dataStart + covered) belong to no tensor")
        }
        return (list, metadata, dataStart)
    }
}

/// A JSON value, decoded with the integer/float distinction kept (`1` versus `1.5` or `true`),
/// so header numbers are exact integers or refused.
enum JSONValue: Decodable, CustomStringConvertible {
    case null, bool(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// The value when it is an integer in 0...Int.max.
    var nonNegativeInteger: Int? {
        if case .integer(let i) = self, i >= 0 { return i }
        return nil
    }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .integer(let i): return "\(i)"
        case .number(let d): return "\(d)"
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object(let o): return "{" + o.keys.sorted().map { "\"\($0)\": \(o[$0]!)" }.joined(separator: ", ") + "}"
        }
    }
}

/// Atomic file replacement: write a temporary file beside the target, flush it to the disk, then
/// rename it over the target and flush the folder, so a reader never sees a half-written file
/// and neither a crash nor a power cut destroys the previous version.
///
/// `durable: false` skips the two flushes, for caches that can be rebuilt (a cut leaves the old
/// file or none, never a torn one, but the new one may be lost).
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, durable: Bool = true) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent()
        try FileSystem.makeDirectory(folder.path)
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil),
                  let handle = FileHandle(forWritingAtPath: temporary.path) else {
                throw SafeTensorsError(path: path, reason: "cannot create a temporary file in \(folder.path): \(String(cString: strerror(errno)))")
            }
            do {
                try handle.write(contentsOf: data)
                if durable { try handle.synchronize() }
                try handle.close()
            } catch {
                try? handle.close()
                throw SafeTensorsError(path: path, reason: "cannot write it: \(FileSystemError.reason(error))")
            }
            guard rename(temporary.path, url.path) == 0 else {
                throw SafeTensorsError(path: path, reason: "cannot rename the temporary file into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        // The rename is durable once the folder's entry is on the disk.
        guard durable else { return }
        let directory = open(folder.path, O_RDONLY)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }
}
