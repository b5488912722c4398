import Foundation
import SNNCPU
import SNNData
import SNNTensor
import Testing

/// CIFAR10-DVS and N-Caltech101 folders: splits, orientation, caching, augmentation, bad files.
@Suite("event folder data sets")
struct EventFolderDatasetTests {
    init() { CPUBackend.register() }  // batches are made time-major by a copy
    static let shared = TestFiles.shared
    private func temporaryRoot(_ name: String) throws -> URL { try TestFiles.temporaryRoot(name) }

    /// An AEDAT 2.0 file of `events` (raw x, raw y, bit 0) records.
    private func aedat(_ events: [(Int, Int, Int)]) -> Data {
        var d = Data("#!AER-DAT2.0\r\n# test\r\n".utf8)
        for (i, e) in events.enumerated() {
            let address = UInt32(e.2 | e.0 << 1 | e.1 << 8)
            withUnsafeBytes(of: address.bigEndian) { d.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(i * 10).bigEndian) { d.append(contentsOf: $0) }
        }
        return d
    }

    @Test("CIFAR10-DVS: split by file index, SpikingJelly orientation, max-normalised frames, cached")
    func cifar10DVS() throws {
        let root = try temporaryRoot("dvs")
        defer { try? FileManager.default.removeItem(at: root) }
        for c in ["airplane", "automobile"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(c), withIntermediateDirectories: true)
            for i in [0, 1, 2, 10, 11, 12, 13, 14, 15, 16] {
                // Raw (x 2, y 5, bit 0 set = OFF in SpikingJelly's polarity), 40 events.
                try aedat([(Int, Int, Int)](repeating: (2, 5, 1), count: 40))
                    .write(to: root.appendingPathComponent("\(c)/cifar10_\(c)_\(i).aedat"))
            }
        }
        let train = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: 4, augment: false, seed: 1)
        let test = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: false, timesteps: 4, augment: false, seed: 1)
        #expect(train.count == 18 && test.count == 2 && train.classNames == ["airplane", "automobile"])
        #expect(train.frames.shape == [18, 4, 2, 48, 48])
        // Every frame holds 10 events at raw (2, 5) → x = 127 - 5, y = 127 - 2, OFF plane; the
        // max-normalised pixel is 1 before the 128 → 48 resize spreads it.
        let f = train.frames.toFloats()
        let offPlane = Array(f[0..<2304]), onPlane = Array(f[2304..<4608])
        #expect(onPlane.allSatisfy { $0 == 0 } && (offPlane.max() ?? 0) > 0)
        let brightest = offPlane.indices.max { offPlane[$0] < offPlane[$1] } ?? 0
        #expect(abs(brightest % 48 - 122 * 48 / 128) <= 1 && abs(brightest / 48 - 125 * 48 / 128) <= 1)
        let cache = root.appendingPathComponent(".snn-frames/" + EventFolderDataset.cacheFolder(kind: .cifar10DVS, timesteps: 4, size: 48))
        #expect(FileManager.default.fileExists(atPath: cache.appendingPathComponent("airplane/cifar10_airplane_0.aedat.f32").path))
        // A second load reads the cache and gives the same frames.
        let again = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: 4, augment: false, seed: 1)
        #expect(again.frames.toFloats() == f)
        // Augmented batches: time-major, deterministic per (seed, epoch, sample), and a permutation of the pixels.
        let aug = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: 4, augment: true, seed: 3)
        let b = aug.batch([0, 1], epoch: 2)
        #expect(b.inputs.shape == [4, 2, 2, 48, 48] && b.labels.toDoubles() == [0, 0])
        #expect(b.inputs.toFloats() == aug.batch([0, 1], epoch: 2).inputs.toFloats())
        let sample = b.inputs.transposed(0, 1).contiguous().toFloats()
        #expect(Array(sample[0..<18432]).sorted() == Array(f[0..<18432]).sorted())
    }

    @Test("N-Caltech101 folders: the first ⌈0.9·n⌉ files of each class train; corrupt files stop or are skipped")
    func ncaltech() throws {
        let root = try temporaryRoot("ncal")
        defer { try? FileManager.default.removeItem(at: root) }
        let source = "\(EventFolderDatasetTests.shared)/nmnist/slayerpytorch-NMNISTsmall"
        for c in ["BACKGROUND_Google", "Faces_easy", "accordion"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(c), withIntermediateDirectories: true)
            for i in 1...3 {
                try FileManager.default.copyItem(atPath: "\(source)/\(i).bs2", toPath: root.appendingPathComponent("\(c)/image_000\(i).bin").path)
            }
        }
        let train = try EventFolderDataset(kind: .ncaltech101, root: root.path, train: true, timesteps: 5, augment: false, seed: 0)
        let test = try EventFolderDataset(kind: .ncaltech101, root: root.path, train: false, timesteps: 5, augment: false, seed: 0)
        #expect(train.count == 9 && test.count == 0)  // ⌈0.9·3⌉ = 3
        #expect(train.classNames == ["BACKGROUND_Google", "Faces_easy", "accordion"])
        // The antialiased filter averages: the total scales with the area, 48·48 / (240·180).
        let total = Double(train.frames.sliced(axis: 0, 0..<1).toFloats().reduce(0, +))
        let events = try EventFiles.readATIS("\(source)/1.bs2", width: 240, height: 180).count
        let expected = Double(events) * 2304 / 43200
        #expect(abs(total - expected) / expected < 0.02, "\(total) vs \(expected)")
        try Data([1, 2, 3]).write(to: root.appendingPathComponent("accordion/image_0009.bin"))
        #expect { try EventFolderDataset(kind: .ncaltech101, root: root.path, train: true, timesteps: 5, augment: false, seed: 0) } throws: {
            "\($0)".contains("image_0009.bin") && "\($0)".contains("--skip-corrupt")
        }
        let skipping = try EventFolderDataset(kind: .ncaltech101, root: root.path, train: true, timesteps: 5, augment: false, seed: 0, skipCorrupt: true)
        #expect(skipping.skipped.count == 1 && skipping.count == 9)
    }
}
