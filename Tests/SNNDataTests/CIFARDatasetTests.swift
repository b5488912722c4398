import Foundation
import SNNData
import SNNTensor
import Testing

/// CIFAR loading from the distributed folder layouts and the reference's transforms.
@Suite("CIFAR data set")
struct CIFARDatasetTests {
    /// A `cifar-10-batches-bin` folder with `perFile` records in each of the six files.
    static func makeFolder(perFile: Int) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("snn-cifar-dir-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let dir = root.appendingPathComponent("cifar-10-batches-bin")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (f, name) in ((1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin"]).enumerated() {
            var bytes: [UInt8] = []
            for r in 0..<perFile { bytes += [UInt8((f + r) % 10)] + (0..<3072).map { UInt8(($0 * 7 + r + f) % 256) } }
            try Data(bytes).write(to: dir.appendingPathComponent(name))
        }
        return root
    }

    @Test("loads train and test splits from the binary layout")
    func load() throws {
        let root = try CIFARDatasetTests.makeFolder(perFile: 3)
        defer { try? FileManager.default.removeItem(at: root) }
        let train = try CIFARDataset.load(directory: root.path, variant: .cifar10, train: true)
        let test = try CIFARDataset.load(directory: root.path, variant: .cifar10, train: false)
        #expect(train.labels.count == 15 && test.labels.count == 3 && train.pixels.count == 15 * 3072)
        #expect { try CIFARDataset.load(directory: root.path, variant: .cifar100, train: true) } throws: { "\($0)".contains("cifar-100-binary") }
    }

    @Test("test batches are normalised pixels; training batches are deterministic per (seed, epoch)")
    func transforms() throws {
        let pixels = (0..<(2 * 3072)).map { UInt8($0 % 256) }
        let test = CIFARDataset(variant: .cifar10, pixels: pixels, labels: [1, 2], augment: false, cutout: false, seed: 0)
        let x = test.batch([0, 1], epoch: 0).inputs.toFloats()
        // Channel 1 (G), y = 3, x = 5 of image 1: pixel (3072 + 1024 + 3·32 + 5) % 256 = 101.
        let expected: Float = (Float(101) / 255 - 0.4822) / 0.1994
        let got: Float = x[3072 + 1024 + 3 * 32 + 5]
        #expect(abs(got - expected) < 1e-6)
        let train = CIFARDataset(variant: .cifar10, pixels: pixels, labels: [1, 2], augment: true, cutout: true, seed: 9)
        let a = train.batch([0, 1], epoch: 3).inputs.toFloats(), b = train.batch([1, 0], epoch: 3).inputs.toFloats()
        #expect(Array(a[0..<3072]) == Array(b[3072..<6144]), "a sample's augmentation depends on (seed, epoch, index) only")
        #expect(train.batch([0], epoch: 4).inputs.toFloats() != Array(a[0..<3072]), "a new epoch draws new crops")
        // The cutout hole and the crop's zero padding both read as 0 before normalisation.
        let zero: Float = -0.4914 / 0.2023
        let zeros = a[0..<1024].filter { (v: Float) -> Bool in abs(v - zero) < 1e-6 }.count
        #expect(zeros >= 64)
    }
}
