import Foundation
import SNNData
import Testing

/// CIFAR binary batches built byte by byte from the published format, then read back.
@Suite("CIFAR binary")
struct CIFARBinaryTests {
    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cifar-\(getpid())-\(name)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A record: label byte(s), then the R, G and B planes; pixel (c, y, x) = (c·7 + y·3 + x + seed) mod 256.
    private func record(_ labels: [UInt8], seed: Int) -> [UInt8] {
        labels + (0..<3072).map { j in UInt8((j / 1024 * 7 + (j % 1024) / 32 * 3 + j % 32 + seed) % 256) }
    }

    @Test("CIFAR-10 records give labels and channel-major pixels")
    func cifar10() throws {
        let path = try write(record([3], seed: 0) + record([9], seed: 5), "10.bin")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let b = try CIFARBinary.read(path, variant: .cifar10)
        #expect(b.count == 2 && b.labels == [3, 9] && b.coarseLabels.isEmpty)
        // Image 1, green plane (c = 1), y = 2, x = 4: 7 + 6 + 4 + 5.
        #expect(b.pixels[3072 + 1024 + 2 * 32 + 4] == 22)
    }

    @Test("CIFAR-100 records give coarse and fine labels")
    func cifar100() throws {
        let path = try write(record([19, 99], seed: 1) + record([0, 42], seed: 2), "100.bin")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let b = try CIFARBinary.read(path, variant: .cifar100)
        #expect(b.labels == [99, 42] && b.coarseLabels == [19, 0])
    }

    @Test("truncated files and impossible labels name the record and offset")
    func corrupt() throws {
        let cut = try write(Array((record([1], seed: 0) + record([2], seed: 0)).dropLast(10)), "cut.bin")
        let label = try write(record([1], seed: 0) + record([12], seed: 0), "label.bin")
        defer { for p in [cut, label] { try? FileManager.default.removeItem(atPath: p) } }
        #expect { try CIFARBinary.read(cut, variant: .cifar10) } throws: { "\($0)".contains("record 1, byte offset 3073") }
        #expect { try CIFARBinary.read(label, variant: .cifar10) } throws: { "\($0)".contains("label 12") && "\($0)".contains("record 1, byte offset 3073") }
        // A CIFAR-10 file read as CIFAR-100 does not divide into records.
        #expect { try CIFARBinary.read(label, variant: .cifar100) } throws: { "\($0)".contains("not a whole number") }
    }
}
