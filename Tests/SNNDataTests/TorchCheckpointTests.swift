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
}
