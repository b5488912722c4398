import Foundation

/// The binary versions of CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`: records of one
/// label byte and 3072 pixel bytes) and CIFAR-100 (`train.bin`, `test.bin`: a coarse label byte,
/// a fine label byte, 3072 pixel bytes). Pixels are 32×32, channel-major (R, G, B planes).
public enum CIFARBinary {
    public enum Variant: String, Sendable {
        case cifar10, cifar100

        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var recordSize: Int { labelBytes + 3072 }
        /// Classes of the label the data set trains on (CIFAR-100: the fine label).
        public var classes: Int { self == .cifar10 ? 10 : 100 }
    }

    /// Images and labels of one file.
    public struct Batch: Sendable {
        /// `count × 3072` bytes, each image `[3, 32, 32]`.
        public var pixels: [UInt8]
        /// Class per image (CIFAR-100: fine labels).
        public var labels: [Int]
        /// CIFAR-100's 20 superclasses; empty for CIFAR-10.
        public var coarseLabels: [Int]
        public var count: Int { labels.count }
    }

    /// Reads one batch file.
    ///
    /// - Throws: ``DataFileError`` naming the file, the record and
    ///   the byte offset of a truncated record or an out-of-range label.
    public static func read(_ path: String, variant: Variant) throws -> Batch {
        let data = try EventFiles.contents(path)
        let size = variant.recordSize
        guard data.count % size == 0, data.count > 0 else {
            throw DataFileError(path: path, record: data.count / size, offset: data.count - data.count % size,
                                 reason: "\(data.count) bytes is not a whole number of \(size)-byte \(variant.rawValue) records; the file is truncated or of the other CIFAR variant")
        }
        let n = data.count / size
        var batch = Batch(pixels: [UInt8](repeating: 0, count: n * 3072), labels: [], coarseLabels: [])
        batch.labels.reserveCapacity(n)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            try batch.pixels.withUnsafeMutableBufferPointer { pixels in
                for i in 0..<n {
                    let o = i * size
                    let fine = Int(b[o + variant.labelBytes - 1])
                    guard fine < variant.classes else {
                        throw DataFileError(path: path, record: i, offset: o + variant.labelBytes - 1,
                                             reason: "label \(fine) is outside 0..<\(variant.classes)")
                    }
                    if variant == .cifar100 {
                        guard b[o] < 20 else {
                            throw DataFileError(path: path, record: i, offset: o, reason: "coarse label \(b[o]) is outside 0..<20")
                        }
                        batch.coarseLabels.append(Int(b[o]))
                    }
                    batch.labels.append(fine)
                    for j in 0..<3072 { pixels[i * 3072 + j] = b[o + variant.labelBytes + j] }
                }
            }
        }
        return batch
    }
}
