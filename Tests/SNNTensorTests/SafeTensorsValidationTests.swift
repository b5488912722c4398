import Foundation
import SNNTensor
import Testing

/// Crafted safetensors files: every length, offset and count in the header comes from the file,
/// so each hostile value must end in a ``SafeTensorsError`` naming the file and the tensor, never
/// a trap, and the tensors must tile the data section exactly as Python's safetensors demands.
@Suite("safetensors validation")
struct SafeTensorsValidationTests {
    /// A file from a header (JSON text, unpadded) and `data` bytes of data section.
    static func file(_ header: String, data: Int = 0, headerLength: UInt64? = nil) -> Data {
        let json = Data(header.utf8)
        var out = Data()
        withUnsafeBytes(of: (headerLength ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(Data((0..<data).map { UInt8(truncatingIfNeeded: $0) }))
        return out
    }

    /// One tensor entry of a header.
    static func entry(_ name: String, _ dtype: String = "F32", shape: String, offsets: String) -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    private func refuses(_ data: Data, _ words: [String], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try SafeTensors.decode(data, path: "crafted.safetensors")
            Issue.record("\(label): expected an error", sourceLocation: sourceLocation)
        } catch {
            let text = "\(error)"
            #expect(error is SafeTensorsError && text.hasPrefix("crafted.safetensors: ") && words.allSatisfy(text.contains),
                    "\(label): \(text)", sourceLocation: sourceLocation)
        }
    }

    @Test("data_offsets at 2^31, 2^32 and near Int64.max are outside the data section, not an overflow")
    func hugeOffsets() {
        let max = Int64.max
        for (start, end) in [(Int64(1) << 31, (Int64(1) << 31) + 4), (Int64(1) << 32, (Int64(1) << 32) + 4), (max - 4, max)] {
            refuses(Self.file("{" + Self.entry("w", shape: "[1]", offsets: "[\(start),\(end)]") + "}", data: 4),
                    ["tensor 'w'", "outside the 4-byte data section"], "offsets \(start)-\(end)")
        }
        // [Int64.max - 3, Int64.max + 1]: the end does not fit in a signed 64-bit integer.
        refuses(Self.file("{" + Self.entry("w", shape: "[1]", offsets: "[9223372036854775804,9223372036854775808]") + "}", data: 4),
                ["tensor 'w'", "data_offsets", "integers"], "end at 2^63")
        refuses(Self.file("{" + Self.entry("w", shape: "[1]", offsets: "[0,18446744073709551616]") + "}", data: 4),
                ["tensor 'w'", "data_offsets"], "end at 2^64")
        // A tensor of 2^31 and 2^32 bytes in a small file.
        for bytes in [Int64(1) << 31, Int64(1) << 32] {
            refuses(Self.file("{" + Self.entry("b", "U8", shape: "[\(bytes)]", offsets: "[0,\(bytes)]") + "}", data: 8),
                    ["tensor 'b'", "outside"], "\(bytes)-byte tensor")
        }
    }

    @Test("shapes whose element or byte count overflows 64 bits are refused")
    func overflowingShapes() {
        let shapes = ["[4294967296,4294967296]",        // 2^64 elements
                      "[3037000500,3037000500]",        // just past 2^63 elements
                      "[4611686018427387904,2]",        // 2^63 elements
                      "[2305843009213693952]",          // 2^61 F32 elements: 2^63 bytes
                      "[9223372036854775807]",          // Int64.max elements
                      "[0,4611686018427387904,4]",      // no elements, but strides past 2^63
                      "[4611686018427387904,4,0]"]      // Python's in-order product overflows before the 0
        for shape in shapes {
            refuses(Self.file("{" + Self.entry("w", shape: shape, offsets: "[0,4]") + "}", data: 4),
                    ["tensor 'w'", "overflows"], "shape \(shape)")
        }
        // Large but representable: a size mismatch, not an overflow.
        refuses(Self.file("{" + Self.entry("w", shape: "[1073741824,2]", offsets: "[0,4]") + "}", data: 4),
                ["tensor 'w'", "8589934592 bytes", "spanning 4 bytes"], "2^31 elements")
    }

    @Test("non-integer, negative, boolean and malformed numbers in the header are refused")
    func malformedNumbers() {
        let cases: [(String, String, String)] = [
            ("[1]", "[0,4.5]", "data_offsets"), ("[1]", "[-4,0]", "data_offsets"), ("[1]", "[0,4,8]", "data_offsets"),
            ("[1]", "[\"0\",\"4\"]", "data_offsets"), ("[1]", "[true,4]", "data_offsets"), ("[1]", "[0]", "data_offsets"),
            ("[-1]", "[0,4]", "shape"), ("[1.5]", "[0,4]", "shape"), ("[true]", "[0,4]", "shape"), ("[null]", "[0,4]", "shape"),
            ("[0]", "[4,0]", "end before they begin"),
        ]
        for (shape, offsets, words) in cases {
            refuses(Self.file("{" + Self.entry("w", shape: shape, offsets: offsets) + "}", data: 4),
                    ["tensor 'w'", words], "shape \(shape) offsets \(offsets)")
        }
        refuses(Self.file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", data: 4), ["tensor 'w'", "no valid"], "no offsets")
        refuses(Self.file("{\"w\":[1,2]}", data: 4), ["tensor 'w'", "no valid"], "not an object")
        refuses(Self.file("{" + Self.entry("w", "BOOL", shape: "[4]", offsets: "[0,4]") + "}", data: 4), ["tensor 'w'", "BOOL"], "dtype")
        refuses(Self.file("{\"__metadata__\":{\"a\":1}}"), ["__metadata__"], "metadata")
        refuses(Self.file("[]"), ["not a JSON object"], "array")
    }

    @Test("header lengths at 2^31, 2^32, 2^63 and 2^64 - 1 exceed the file size")
    func hugeHeaderLengths() {
        for length in [UInt64(1) << 31, UInt64(1) << 32, UInt64(1) << 63, UInt64.max, 3] {
            refuses(Self.file("{}", headerLength: length), ["header length \(length) at offset 0 exceeds the file size"], "header \(length)")
        }
    }

    @Test("the tensors must tile the data section: overlaps, gaps and trailing bytes are refused")
    func exactCover() throws {
        let a = Self.entry("a", shape: "[2]", offsets: "[0,8]")
        refuses(Self.file("{" + a + "," + Self.entry("b", shape: "[2]", offsets: "[4,12]") + "}", data: 12),
                ["tensor 'b'", "overlaps tensor 'a'", "file offset"], "overlap")
        refuses(Self.file("{" + a + "," + Self.entry("b", shape: "[2]", offsets: "[0,8]") + "}", data: 8),
                ["overlaps"], "the same bytes twice")
        refuses(Self.file("{" + Self.entry("a", shape: "[1]", offsets: "[0,4]") + "," + Self.entry("b", shape: "[1]", offsets: "[8,12]") + "}", data: 12),
                ["bytes 4..<8", "belong to no tensor", "'b'"], "gap")
        refuses(Self.file("{" + Self.entry("b", shape: "[1]", offsets: "[4,8]") + "}", data: 8), ["bytes 0..<4", "no tensor"], "gap at the start")
        refuses(Self.file("{" + a + "}", data: 12), ["12 bytes", "cover only 8"], "trailing bytes")
        refuses(Self.file("{}", data: 1), ["1 bytes", "cover only 0"], "no tensors, one byte")
        // Sorted by offset, not by name; empty tensors take no bytes anywhere in the order.
        let ok = Self.file("{" + Self.entry("z", shape: "[2]", offsets: "[0,8]") + "," + Self.entry("e", shape: "[0,3]", offsets: "[8,8]") + ","
                           + Self.entry("a", "U8", shape: "[2,2]", offsets: "[8,12]") + "}", data: 12)
        let (tensors, _) = try SafeTensors.decode(ok, path: "ok.safetensors")
        #expect(tensors["a"]?.toDoubles() == [8, 9, 10, 11] && tensors["e"]?.shape == [0, 3] && tensors["z"]?.shape == [2])
        // Blanks around the JSON are padding (Python's safetensors 0.8 reads them too).
        #expect(try SafeTensors.decode(Self.file(" {} ")).tensors.isEmpty)
        // A Data slice that does not start at index 0 reads the same.
        let sliced = (Data([9, 9, 9]) + ok).dropFirst(3)
        #expect(try SafeTensors.decode(sliced).tensors["a"]?.toDoubles() == [8, 9, 10, 11])
    }

    @Test("the writer refuses what the reader refuses, and what it writes reads back")
    func writerMatchesReader() throws {
        let w = Tensor([1, 2], shape: [2], device: .reference)
        #expect { try SafeTensors.encode(["__metadata__": w], path: "out.safetensors") } throws: {
            "\($0)".hasPrefix("out.safetensors: ") && "\($0)".contains("__metadata__")
        }
        let data = try SafeTensors.encode(["w": w, "empty": Tensor.empty([0, 4], device: .reference), "s": Tensor.scalar(3, device: .reference)],
                                          metadata: ["format": "pt"])
        let (tensors, metadata) = try SafeTensors.decode(data)
        #expect(tensors["w"]?.toDoubles() == [1, 2] && tensors["empty"]?.shape == [0, 4] && tensors["s"]?.item() == 3 && metadata == ["format": "pt"])
    }
}

/// `SafeTensors.metadata(ofFile:)` reads only the header: it must refuse what `decode` refuses
/// without reading (or allocating) what a header length claims.
@Suite("safetensors header-only reads")
struct SafeTensorsMetadataTests {
    func file(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-meta-\(getpid())-\(UUID().uuidString).safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func header(_ json: String, length: UInt64? = nil, data: Int = 0) -> [UInt8] {
        let body = Array(json.utf8)
        return withUnsafeBytes(of: (length ?? UInt64(body.count)).littleEndian, Array.init) + body + [UInt8](repeating: 0, count: data)
    }

    @Test("a valid file gives its metadata; truncated, overlong and lying headers are clear errors", arguments: [
        ("valid", 0), ("short", 1), ("past end", 2), ("near 2^63", 3), ("over limit", 4), ("data missing", 5),
    ])
    func cases(_ c: (String, Int)) throws {
        let tensor = #"{"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let bytes: [UInt8]
        switch c.1 {
        case 0: bytes = header(tensor, data: 8)
        case 1: bytes = [1, 2, 3]
        case 2: bytes = header(tensor, length: 4096, data: 8)
        case 3: bytes = header(tensor, length: UInt64(Int64.max) - 3, data: 8)
        case 4: bytes = withUnsafeBytes(of: UInt64(200_000_000).littleEndian, Array.init) + [UInt8](repeating: 0x20, count: 64)
        default: bytes = header(tensor, data: 4)
        }
        let path = try file(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        if c.1 == 0 {
            #expect(try SafeTensors.metadata(ofFile: path) == ["k": "v"])
        } else {
            #expect(throws: SafeTensorsError.self, "\(c.0)") { try SafeTensors.metadata(ofFile: path) }
            do { _ = try SafeTensors.metadata(ofFile: path) } catch { #expect("\(error)".contains(path), "\(error)") }
        }
    }
}
