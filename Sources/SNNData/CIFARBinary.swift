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
        try decode(try EventFiles.contents(path), path: path, variant: variant)
    }

    /// ``read(_:variant:)`` on bytes in memory; `path` labels errors.
    public static func decode(_ data: Data, path: String, variant: Variant) throws -> Batch {
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

/// The Python versions of CIFAR (`cifar-10-batches-py/data_batch_1`, `cifar-100-python/train`):
/// pickled dicts with `data` (a `uint8` array `[N, 3072]`) and `labels` (CIFAR-10) or
/// `fine_labels`/`coarse_labels` (CIFAR-100), read with ``SafeUnpickler``.
public enum CIFARPython {
    public static func read(_ path: String, variant: CIFARBinary.Variant) throws -> CIFARBinary.Batch {
        try decode(try EventFiles.contents(path), path: path, variant: variant)
    }

    /// ``read(_:variant:)`` on bytes in memory; `path` labels errors.
    public static func decode(_ data: Data, path: String, variant: CIFARBinary.Variant) throws -> CIFARBinary.Batch {
        let root = try SafeUnpickler(data, path: path).value()
        func fail(_ why: String) -> DataFileError { DataFileError(path: path, reason: why) }
        guard case .array(let data)? = root["data"], ["u1", "<u1", ">u1", "=u1", "|u1"].contains(data.dtype), data.shape.count == 2, data.shape[1] == 3072 else {
            throw fail("no 'data' uint8 array of shape [N, 3072] in the pickled dict")
        }
        // What the data set indexes by: 3072 bytes per image (the unpickler checked the bytes
        // against the shape; checked again here, where a mismatch would shift every image).
        guard data.shape[0].multipliedReportingOverflow(by: 3072) == (data.data.count, false) else {
            throw fail("'data' holds \(data.data.count) bytes for \(data.shape[0]) images of 3072")
        }
        func labels(_ key: String, classes: Int) throws -> [Int] {
            let values: [Int]
            switch root[key] {
            case .list(let l)?: values = try l.items.map { v -> Int in
                    guard case .int(let n) = v else { throw fail("'\(key)' holds \(v), not an integer") }
                    return n
                }
            case .array(let a)?: values = try a.integers() ?? { throw fail("'\(key)' is not an integer array") }()
            default: throw fail("no '\(key)' list in the pickled dict")
            }
            guard values.count == data.shape[0] else { throw fail("'\(key)' has \(values.count) labels for \(data.shape[0]) images") }
            if let (i, bad) = values.enumerated().first(where: { $0.element < 0 || $0.element >= classes }) {
                throw DataFileError(path: path, record: i, reason: "'\(key)' label \(bad) is outside 0..<\(classes)")
            }
            return values
        }
        if variant == .cifar10 {
            return CIFARBinary.Batch(pixels: data.data, labels: try labels("labels", classes: 10), coarseLabels: [])
        }
        return CIFARBinary.Batch(pixels: data.data, labels: try labels("fine_labels", classes: 100),
                                 coarseLabels: try labels("coarse_labels", classes: 20))
    }
}
