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
    /// Encodes named tensors (and optional string metadata) as safetensors bytes.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        let names = tensors.keys.sorted()
        var header: [String: Any] = [:]
        var offset = 0
        for name in names {
            let t = tensors[name]!  // the key comes from the dictionary itself
            let bytes = t.count * t.dtype.size
            header[name] = ["dtype": t.dtype.safetensorsName, "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
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
        let data = try encode(tensors, metadata: metadata)
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

    /// Decodes safetensors bytes; `path` only labels errors.
    public static func decode(_ data: Data, path: String = "<memory>", device: Device = .cpu) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }
        guard data.count >= 8 else { throw fail("file of \(data.count) bytes is too short for the 8-byte header length at offset 0") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8), headerLength <= 100_000_000 else {
            throw fail("header length \(headerLength) at offset 0 exceeds the file size \(data.count)")
        }
        let dataStart = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: 8..<dataStart)
        guard let header = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw fail("the header at offset 8 is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw fail("__metadata__ is not a string-to-string map") }
                metadata = m
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor '\(name)' has no valid dtype, shape and data_offsets")
            }
            guard let dtype = DType(safetensorsName: dtypeName) else {
                throw fail("tensor '\(name)' has dtype \(dtypeName), which SwiftSNN does not read (F32, F64, F16, BF16, I32, I64, U8)")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor '\(name)' has a negative dimension in \(shape)") }
            let bytes = ShapeUtil.count(shape) * dtype.size
            guard offsets[0] >= 0, offsets[1] - offsets[0] == bytes, dataStart + offsets[1] <= data.count else {
                throw fail("tensor '\(name)' (\(dtypeName) \(shape), \(bytes) bytes) has data_offsets \(offsets) outside the \(data.count - dataStart)-byte data section at offset \(dataStart)")
            }
            let t = Tensor.empty(shape, dtype: dtype, device: device)
            data.withUnsafeBytes { raw in
                let from = dataStart + offsets[0]
                device.memoryBackend.upload(UnsafeRawBufferPointer(rebasing: raw[from..<(from + bytes)]), into: t)
            }
            tensors[name] = t
        }
        return (tensors, metadata)
    }
}

/// Atomic file replacement: write a temporary file beside the target, then rename over it, so a
/// reader never sees a half-written file and a crash never destroys the previous version.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else {
                throw SafeTensorsError(path: path, reason: "cannot rename the temporary file into place (errno \(errno))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }
}
