import Foundation
import SNNData
import SNNTensor
import Testing

/// PyTorch's torch.save files: the ZIP container, the unpickler's torch vocabulary, and refusals.
@Suite("torch.save reader")
struct TorchCheckpointTests {
    /// A state dict the reference code saved (scripts/make_interop_fixtures.py).
    static let weights = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SNNTrainingTests/Fixtures/interop/convnp/weights.pth")

    private func temporary(_ bytes: Data, _ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-torch-\(getpid())-\(name)").path
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("the archive lists torch.save's stored entries")
    func archive() throws {
        let zip = try ZipArchive(contentsOf: Self.weights.path)
        #expect(zip.entries.contains { $0.name == "weights/data.pkl" && $0.method == 0 })
        #expect(try zip.data(#require(zip.entry("weights/byteorder"))) == Data("little".utf8))
    }

    @Test("tensors come back with dtype, shape and values; the state dict keeps its order and drops _metadata")
    func stateDict() throws {
        let read = try TorchCheckpoint.stateDict(Self.weights.path)
        #expect(read.tensors.count == 14 && read.notes.isEmpty)
        #expect(read.tensors["layers.0.conv2d_layer.module.0.weight"]?.shape == [16, 3, 3, 3])
        let tracked = try #require(read.tensors["layers.0.conv2d_layer.module.1.num_batches_tracked"])
        #expect(tracked.dtype == .int64 && tracked.shape == [] && tracked.item() == 3)
        #expect(read.tensors["_metadata"] == nil)
        guard case .dict(let d) = try TorchCheckpoint.object(Self.weights.path) else { Issue.record("not a dict"); return }
        #expect(d.attributes.contains { "\($0.0)" == "'_metadata'" })
        guard case .string(let first) = d.items[0].0 else { Issue.record("no string key"); return }
        #expect(first == "layers.0.conv2d_layer.module.0.weight")
    }

    @Test("ZIP64 records (what torch writes past 4 GiB) give the same tensors")
    func zip64() throws {
        let zip64 = Self.weights.deletingLastPathComponent().appendingPathComponent("weights_zip64.pth").path
        let plain = try TorchCheckpoint.stateDict(Self.weights.path).tensors
        let read = try TorchCheckpoint.stateDict(zip64).tensors
        #expect(Set(read.keys) == Set(plain.keys))
        for (k, v) in plain { #expect(read[k]?.toDoubles() == v.toDoubles() && read[k]?.shape == v.shape, "\(k)") }
    }

    @Test("a global outside the vocabulary is refused by name, file and offset; nothing runs")
    func refusesUnknownGlobals() throws {
        var bytes = try Data(contentsOf: Self.weights)
        // Same length, so the stored archive stays valid: _rebuild_tensor_v2 -> _rebuild_xxxxxx_v2.
        let needle = Data("_rebuild_tensor_v2".utf8)
        let range = try #require(bytes.range(of: needle))
        bytes.replaceSubrange(range, with: Data("_rebuild_xxxxxx_v2".utf8))
        Crafted.fixCRC(of: "weights/data.pkl", in: &bytes)
        let path = try temporary(bytes, "evil.pth")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect { try TorchCheckpoint.stateDict(path) } throws: { error in
            let s = "\(error)"
            return s.contains(path) && s.contains("refuses to load 'torch._utils._rebuild_xxxxxx_v2'") && s.contains("byte offset 78")
        }
    }

    @Test("truncated archives, legacy files and other files are errors naming the file", arguments: [
        ("truncated", "no ZIP end-of-central-directory record"),
        ("legacy", "legacy format (torch < 1.6)"),
        ("text", "is not a PyTorch file"),
    ])
    func badFiles(_ c: (String, String)) throws {
        let whole = try Data(contentsOf: Self.weights)
        let bytes: Data
        switch c.0 {
        case "truncated": bytes = whole.prefix(whole.count - 200)
        case "legacy": bytes = Data([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E])
        default: bytes = Data("hello".utf8)
        }
        let path = try temporary(bytes, c.0)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect { try TorchCheckpoint.stateDict(path) } throws: { "\($0)".contains(c.1) && "\($0)".contains(path) }
    }

    @Test("a storage missing from the archive is an error naming the key")
    func missingStorage() throws {
        var bytes = try Data(contentsOf: Self.weights)
        // Rename the central directory entry of storage 0 (same length) so it cannot be found.
        let needle = Data("weights/data/0".utf8)
        var start = bytes.startIndex
        var last: Range<Data.Index>?
        while let r = bytes.range(of: needle, in: start..<bytes.endIndex) { last = r; start = r.upperBound }
        let r = try #require(last)
        bytes.replaceSubrange(r, with: Data("weights/data/X".utf8))
        let path = try temporary(bytes, "nostorage.pth")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect { try TorchCheckpoint.stateDict(path) } throws: {
            "\($0)".contains("key 'layers.0.conv2d_layer.module.0.weight'") && "\($0)".contains("missing")
        }
    }

    /// The float32 tensor `w` of a crafted archive, or the error reading it.
    private func read(_ zip: Crafted.Zip, _ key: String = "w") throws -> [Double]? {
        try TorchCheckpoint.stateDict(contents: zip.data, path: "crafted.pth").tensors[key]?.toDoubles()
    }

    /// Whether reading `zip` (its directory, then every entry) fails naming the file and `reason`.
    private func refused(_ zip: Crafted.Zip, _ reason: String, torch: Bool = false) -> Bool {
        do {
            if torch { _ = try TorchCheckpoint.stateDict(contents: zip.data, path: "crafted.pth") } else {
                let archive = try ZipArchive(zip.data, path: "crafted.pth")
                for e in archive.entries { _ = try archive.data(e) }
            }
            Issue.record("accepted, expected '\(reason)'")
            return false
        } catch {
            let s = "\(error)"
            #expect(s.contains(reason) && s.contains("crafted.pth") && s.contains("byte offset"), "\(s)")
            return s.contains(reason)
        }
    }

    @Test("views of a storage come back right: contiguous, transposed, offset, expanded, size-1 dimensions with any stride")
    func views() throws {
        let s: [Float] = [0, 1, 2, 3, 4, 5]
        #expect(try read(Crafted.torch(storage: s, size: [2, 3], stride: [3, 1])) == [0, 1, 2, 3, 4, 5])
        #expect(try read(Crafted.torch(storage: s, size: [3, 2], stride: [1, 3])) == [0, 3, 1, 4, 2, 5])
        #expect(try read(Crafted.torch(storage: s, offset: 1, size: [2, 2], stride: [2, 1])) == [1, 2, 3, 4])
        #expect(try read(Crafted.torch(storage: [7], size: [4, 3], stride: [0, 0])) == [Double](repeating: 7, count: 12))
        #expect(try read(Crafted.torch(storage: s, size: [2, 1], stride: [1, 1 << 62])) == [0, 1])
        #expect(try read(Crafted.torch(storage: s, size: [0, 1 << 40], stride: [1 << 62, 1 << 62])) == [])
        #expect(try read(Crafted.torch(storage: s, size: [3, 2], stride: [1, 3], zip64: true)) == [0, 3, 1, 4, 2, 5])
        // One storage viewed under several keys is read (and CRC-checked) for each.
        let shared = try TorchCheckpoint.stateDict(contents: Crafted.torch(storage: s, size: [6], stride: [1], keys: 3).data, path: "crafted.pth")
        #expect(shared.tensors.count == 3 && shared.tensors["w2"]?.toDoubles() == [0, 1, 2, 3, 4, 5])
    }

    @Test("the fuzzed .pth (one element viewed as [32768, 16384] with zero strides, 6.3 GB) is refused at once",
          .timeLimit(.minutes(1)))
    func zeroStrideBomb() throws {
        let bomb = Crafted.torch(storage: [1], size: [32768, 16384], stride: [0, 0])
        #expect(refused(bomb, "key 'w': the view (offset 0, size [32768, 16384], stride [0, 0]) repeats the elements of a 1-element storage into 536870912 elements, more than the 16777216 allowed", torch: true))
        for n in [1 << 31, 1 << 32, 1 << 61 - 1] {
            #expect(refused(Crafted.torch(storage: [1], size: [n], stride: [0]), "maximumRepeatedViewElements", torch: true), "\(n)")
            #expect(refused(Crafted.torch(storage: [1, 2], size: [n], stride: [1]), "reaches past the end of a 2-element storage", torch: true), "\(n)")
        }
        // Near 2^63 elements, the bytes no longer fit an Int.
        for n in [1 << 62, Int.max - 1, Int.max] {
            #expect(refused(Crafted.torch(storage: [1], size: [n], stride: [0]), "is too large to address", torch: true), "\(n)")
        }
        // Just under the limit, an expanded view is read.
        #expect(try read(Crafted.torch(storage: [2], size: [1 << 12], stride: [0]))?.count == 1 << 12)
    }

    @Test("views outside their storage, negative ones and ones whose arithmetic overflows are refused", arguments: [
        (0, [2, 3], [3, 1], 5, "reaches past the end of a 5-element storage"),
        (1, [6], [1], 6, "reaches past the end"),
        (-1, [1], [1], 6, "negative sizes, strides and offsets are refused"),
        (0, [2], [-1], 6, "negative sizes"),
        (0, [-2], [1], 6, "negative sizes"),
        (Int.max, [2], [1], 6, "reaches past the end"),
        (Int.max - 5, [1], [1], 6, "reaches past the end"),
        (0, [2, 2], [1 << 62, 1 << 62], 6, "reaches past the end"),
        (0, [3], [Int.max], 6, "reaches past the end"),
        (0, [1 << 32, 1 << 32], [0, 0], 6, "is too large to address"),
        (0, [1 << 61], [0], 6, "is too large to address"),
        (0, [1], [1], 1 << 31, "storage 'archive/data/0' has 24 bytes, 2147483648 float32 elements need more"),
        (0, [1], [1], 1 << 62, "2147483648 float32 elements need more".replacingOccurrences(of: "2147483648", with: "\(1 << 62)")),
        (0, [1], [1], Int.max, "elements need more"),
    ] as [(Int, [Int], [Int], Int, String)])
    func badViews(_ c: (Int, [Int], [Int], Int, String)) {
        let zip = Crafted.torch(storage: [0, 1, 2, 3, 4, 5], numel: c.3, offset: c.0, size: c.1, stride: c.2)
        #expect(refused(zip, "key 'w'", torch: true) && refused(zip, c.4, torch: true))
    }

    @Test("a small file cannot make the reader allocate more than expansionFactor times its size plus expansionAllowance")
    func expansionBudget() throws {
        let storage = [Float](repeating: 1, count: 1 << 18)          // 1 MiB, so a 68 MiB budget
        #expect(refused(Crafted.torch(storage: storage, size: [1 << 18], stride: [1], keys: 80),
                        "key 'w68': its 1048576 bytes would take the tensors past the 71308272 bytes this 1049852-byte file may produce (4 times its size plus 67108864; --max-checkpoint-expansion", torch: true))
        #expect(try TorchCheckpoint.stateDict(contents: Crafted.torch(storage: storage, size: [1 << 18], stride: [1], keys: 40).data,
                                              path: "crafted.pth").tensors.count == 40)
    }

    @Test("entries are checked against their CRC-32, naming the entry")
    func crc() throws {
        #expect(Crafted.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        // Every length around the reader's 8-byte steps.
        let entries = (0..<20).map { n in ("e\(n)", (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ n) }) }
        let archive = try ZipArchive(Crafted.Zip(entries).data, path: "crafted.pth")
        for (name, bytes) in entries { #expect(try archive.data(#require(archive.entry(name))) == Data(bytes)) }
        // A flipped storage byte, and a wrong CRC in the directory.
        var flipped = Crafted.torch(storage: [0, 1, 2, 3, 4, 5], size: [6], stride: [1])
        let last = try ZipArchive(flipped.data, path: "x").entries[2]
        flipped.data[last.headerOffset + 30 + "archive/data/0".utf8.count] ^= 0x40
        #expect(refused(flipped, "entry 'archive/data/0' is corrupt", torch: true))
        var wrong = Crafted.torch(storage: [0], size: [1], stride: [1])
        wrong.patch(wrong.central[1] + 16, 0xDEAD_BEEF, width: 4)
        #expect(refused(wrong, "entry 'archive/byteorder' is corrupt: its bytes have CRC-32 ", torch: true))
        #expect(refused(wrong, "the central directory records deadbeef"))
    }

    /// Sizes and offsets at the 32-bit boundaries and near 2^63 (past it they read as negative).
    static let boundaries: [UInt64] = [1 << 31, 1 << 32, (1 << 63) - 30, (1 << 63) - 1, 1 << 63, UInt64.max]

    @Test("ZIP64 offsets and sizes at 2^31, 2^32 and near 2^63 are errors naming the archive and the entry, never a trap")
    func zip64Boundaries() {
        let name = "archive/data/0"
        for v in Self.boundaries {
            var sizes = Crafted.torch(storage: [0, 1], size: [2], stride: [1], zip64: true)
            let extra = sizes.central[2] + 46 + name.utf8.count + 4
            sizes.patch(extra, v, width: 8)
            sizes.patch(extra + 8, v, width: 8)
            #expect(refused(sizes, "entry '\(name)': \(v) bytes (\(v) uncompressed) at offset"), "\(v)")
            var size = Crafted.torch(storage: [0, 1], size: [2], stride: [1], zip64: true)
            size.patch(extra, v, width: 8)
            #expect(refused(size, "entry '\(name)'"), "\(v)")
            var offset = Crafted.torch(storage: [0, 1], size: [2], stride: [1], zip64: true)
            offset.patch(extra + 16, v, width: 8)
            #expect(refused(offset, "entry '\(name)': its local header offset \(v) is outside"), "\(v)")
            var record = Crafted.torch(storage: [0, 1], size: [2], stride: [1], zip64: true)
            record.patch(record.locator + 8, v, width: 8)
            #expect(refused(record, "the ZIP64 end record offset \(v) is not valid"), "\(v)")
            for field in [32, 40, 48] {
                var directory = Crafted.torch(storage: [0, 1], size: [2], stride: [1], zip64: true)
                directory.patch(directory.zip64Record + field, v, width: 8)
                #expect(refused(directory, "does not fit the"), "field \(field) \(v)")
            }
        }
        // 32-bit fields past the end, and a local header whose name and extra lengths run past it.
        var plain = Crafted.torch(storage: [0, 1], size: [2], stride: [1])
        plain.patch(plain.central[2] + 42, 0xFFFF_FFFE, width: 4)
        #expect(refused(plain, "entry '\(name)': its local header offset 4294967294 is outside"))
        var local = Crafted.torch(storage: [0, 1], size: [2], stride: [1])
        local.patch(local.local[2] + 26, 0xFFFF, width: 2)
        local.patch(local.local[2] + 28, 0xFFFF, width: 2)
        #expect(refused(local, "entry '\(name)' (8 bytes from offset"))
    }
}
