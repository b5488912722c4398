import Foundation
import SNNTensor

/// CIFAR-10 or CIFAR-100 in memory, with the reference's transforms (TRT-SPEC.md §8).
///
/// Training: random 32×32 crop of the image zero-padded by 4, horizontal flip with p = 0.5,
/// to [0, 1], cutout (one 16×16 hole centred at a uniform pixel, clipped at the borders) when
/// `cutout`, then per-channel normalisation. Test: to [0, 1] and normalisation. Every random
/// draw comes from `(seed, epoch, sample)`, so a batch is the same whatever the thread count.
public struct CIFARDataset: LabelledDataset {
    public let variant: CIFARBinary.Variant
    public let pixels: [UInt8]
    public let labels: [Int]
    public let augment: Bool
    public let cutout: Bool
    public let seed: UInt64

    public var count: Int { labels.count }
    public var classes: Int { variant.classes }

    /// Per-channel mean and standard deviation of the reference's normalisation.
    public var normalization: (mean: [Float], std: [Float]) {
        variant == .cifar10 ? ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])
                            : ([0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761])
    }

    public init(variant: CIFARBinary.Variant, pixels: [UInt8], labels: [Int], augment: Bool, cutout: Bool, seed: UInt64) {
        (self.variant, self.pixels, self.labels, self.augment, self.cutout, self.seed) = (variant, pixels, labels, augment, cutout, seed)
    }

    /// Loads the training or test split from `directory`, which holds (or is) one of the layouts
    /// the data sets are distributed in: `cifar-10-batches-bin` (`data_batch_1..5.bin`,
    /// `test_batch.bin`), `cifar-10-batches-py` (`data_batch_1..5`, `test_batch`),
    /// `cifar-100-binary` (`train.bin`, `test.bin`) or `cifar-100-python` (`train`, `test`).
    public static func load(directory: String, variant: CIFARBinary.Variant, train: Bool) throws -> (pixels: [UInt8], labels: [Int]) {
        let fm = FileManager.default
        let layouts = CIFARDataset.layouts(variant: variant, train: train)
        let expected = layouts.map { "\($0.folder)/{\($0.files.joined(separator: ","))}" }.joined(separator: " or ")
        do { try DataLayoutError.requireFolder(directory, expected: expected) } catch let error as DataLayoutError {
            throw DataLayoutError(path: error.path, problem: "\(error.problem), so no \(variant.rawValue) \(train ? "training" : "test") files",
                                  expected: expected)
        }
        var partial: [String] = []
        for layout in layouts {
            for base in ["\(directory)/\(layout.folder)", directory] {
                let paths = layout.files.map { "\(base)/\($0)" }
                let missing = paths.filter { !fm.fileExists(atPath: $0) }
                guard missing.isEmpty else {
                    if missing.count < paths.count && partial.isEmpty { partial = missing }
                    continue
                }
                var pixels: [UInt8] = [], labels: [Int] = []
                for path in paths {
                    let batch = layout.python ? try CIFARPython.read(path, variant: variant) : try CIFARBinary.read(path, variant: variant)
                    pixels += batch.pixels
                    labels += batch.labels
                }
                return (pixels, labels)
            }
        }
        // Some files of a layout are there: name the first one missing.
        if let first = partial.first { throw DataLayoutError(path: first, problem: "no such file", expected: expected) }
        throw DataLayoutError(path: directory, problem: "holds no \(variant.rawValue) \(train ? "training" : "test") files", expected: expected)
    }

    /// The layouts the data set is distributed in: a folder name and the split's files in it.
    static func layouts(variant: CIFARBinary.Variant, train: Bool) -> [(folder: String, files: [String], python: Bool)] {
        variant == .cifar10
            ? [("cifar-10-batches-bin", train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"], false),
               ("cifar-10-batches-py", train ? (1...5).map { "data_batch_\($0)" } : ["test_batch"], true)]
            : [("cifar-100-binary", [train ? "train.bin" : "test.bin"], false),
               ("cifar-100-python", [train ? "train" : "test"], true)]
    }

    public func batch(_ indices: ArraySlice<Int>, epoch: Int) -> Batch {
        let out = Tensor.empty([indices.count, 3, 32, 32], device: .cpu)
        let p = out.pointer(as: Float.self)
        let (mean, std) = normalization
        for (j, i) in indices.enumerated() {
            let image = p + j * 3072
            let src = i * 3072
            var (dx, dy, flip, hole) = (4, 4, false, (y: -100, x: -100))
            if augment {
                let g = RandomGenerator(seed: seed).derived(UInt64(epoch) &* 1_000_003 &+ UInt64(i))
                let u = g.uniform(5)
                (dx, dy, flip) = (Int(u[0] * 9), Int(u[1] * 9), u[2] < 0.5)
                if cutout { hole = (Int(u[3] * 32), Int(u[4] * 32)) }
            }
            for c in 0..<3 {
                for y in 0..<32 {
                    for x in 0..<32 {
                        // Output (y, x) reads padded input (y + dy, x' + dx), i.e. original (y + dy - 4, ...).
                        let xs = flip ? 31 - x : x
                        let (sy, sx) = (y + dy - 4, xs + dx - 4)
                        var v: Float = sy >= 0 && sy < 32 && sx >= 0 && sx < 32 ? Float(pixels[src + c * 1024 + sy * 32 + sx]) / 255 : 0
                        if abs(y - hole.y) <= 8 && y - hole.y < 8 && abs(x - hole.x) <= 8 && x - hole.x < 8 { v = 0 }
                        image[c * 1024 + y * 32 + x] = (v - mean[c]) / std[c]
                    }
                }
            }
        }
        return Batch(inputs: out, labels: Tensor(labels: indices.map { labels[$0] }))
    }
}
