import Foundation
import SNNTensor

/// ImageNet-100 (or any ImageNet-style subset): JPEG files in class folders under `train/` and
/// `val/`, decoded with libjpeg-turbo when a batch is assembled, with the reference's transforms
/// (TRT-SPEC.md §8), which are torchvision's:
///
/// - training: random resized crop to 224 (area 8-100 % of the image, aspect ratio 3/4-4/3, ten
///   tries, then the centre crop torchvision falls back to), horizontal flip with p = 0.5;
/// - test: shorter side resized to 256, centre crop 224;
/// - both: to [0, 1], normalised with ImageNet's mean and standard deviation.
///
/// Resizing is PIL's bilinear filter on 8-bit pixels (``Resize/bilinearRGB(_:crop:outWidth:outHeight:)``).
/// Random draws come from (seed, epoch, sample), so batches do not depend on the thread count.
/// Images of one batch are decoded in parallel; `--workers` threads prefetch whole batches.
public struct ImageFolderDataset: LabelledDataset {
    /// Which class folders make the data set.
    public enum Classes: Sendable, Equatable {
        /// The 100 synsets of the reference's list (``ImageNet100/synsets``).
        case imagenet100
        /// Every folder, as torchvision's `ImageFolder` takes them.
        case all
        /// The folders named (e.g. read from a file of one synset per line).
        case named([String])
    }

    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]
    /// File extensions torchvision's `ImageFolder` would take that this reader decodes.
    public static let extensions: Set<String> = ["jpg", "jpeg"]
    /// What the data set's folder must hold, as a phrase that follows "expected".
    public static let layout = "train/ and val/, each with one folder of JPEGs per class (synset), as ImageNet is laid out"

    public let classNames: [String]
    public let files: [String]
    public let labels: [Int]
    public let augment: Bool
    public let seed: UInt64
    public let size: Int
    public let resizeTo: Int
    /// Replace an unreadable image by the next readable one of its class instead of failing.
    public let skipCorrupt: Bool
    /// What one JPEG may declare (pixels, scans); nil: ``JPEG/limits`` when the image is read.
    public let jpegLimits: JPEG.Limits?
    private let skippedFiles = SkippedFiles()

    public var count: Int { files.count }
    public var classes: Int { classNames.count }
    /// Files found unreadable so far (with `skipCorrupt`).
    public var skipped: [String] { skippedFiles.all }

    /// - Parameters:
    ///   - root: the folder holding `train/` and `val/` (ImageNet's own naming; `test/` is read
    ///     when there is no `val/`).
    ///   - train: the training split with augmentation, or the validation split.
    ///   - jpegLimits: bounds on each image (``JPEG/Limits``); an image past them is unreadable
    ///     (skipped with `skipCorrupt`).
    public init(root: String, train: Bool, classes: Classes = .imagenet100, seed: UInt64,
                size: Int = 224, resizeTo: Int = 256, skipCorrupt: Bool = false, jpegLimits: JPEG.Limits? = nil) throws {
        let fm = FileManager.default
        let layout = ImageFolderDataset.layout
        try DataLayoutError.requireFolder(root, expected: layout)
        var split = "\(root)/\(train ? "train" : "val")"
        if !train && !fm.fileExists(atPath: split) && fm.fileExists(atPath: "\(root)/test") { split = "\(root)/test" }
        try DataLayoutError.requireFolder(split, expected: layout)
        let present = ((try? fm.contentsOfDirectory(atPath: split)) ?? [])
            .filter { !$0.hasPrefix(".") && (try? fm.attributesOfItem(atPath: "\(split)/\($0)")[.type] as? FileAttributeType) == .typeDirectory }
        let wanted: [String]
        switch classes {
        case .all: wanted = present
        case .imagenet100: wanted = ImageNet100.synsets
        case .named(let names): wanted = names
        }
        let missing = wanted.filter { !present.contains($0) }
        guard !wanted.isEmpty else { throw DataLayoutError(path: split, problem: "holds no class folders", expected: layout) }
        guard missing.isEmpty else {
            let what = classes == .imagenet100 ? "ImageNet-100's \(wanted.count) classes" : "the \(wanted.count) classes asked for"
            throw DataLayoutError(path: split, problem: "\(missing.count) of \(what) have no folder here, e.g. \(missing.prefix(3).joined(separator: ", ")) (--classes all takes the folders present)")
        }
        let names = wanted.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }  // ImageFolder's order
        var files: [String] = [], labels: [Int] = []
        for (label, name) in names.enumerated() {
            let images = ((try? fm.contentsOfDirectory(atPath: "\(split)/\(name)")) ?? [])
                .filter { ImageFolderDataset.extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
                .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            guard !images.isEmpty else {
                throw DataLayoutError(path: "\(split)/\(name)", problem: "holds no .jpeg/.jpg files", expected: layout)
            }
            files += images.map { "\(split)/\(name)/\($0)" }
            labels += [Int](repeating: label, count: images.count)
        }
        (self.classNames, self.files, self.labels) = (names, files, labels)
        (self.augment, self.seed, self.size, self.resizeTo, self.skipCorrupt) = (train, seed, size, resizeTo, skipCorrupt)
        self.jpegLimits = jpegLimits
    }

    /// The crop torchvision's `RandomResizedCrop(scale: (0.08, 1), ratio: (3/4, 4/3))` draws,
    /// from 41 uniforms in [0, 1): ten tries of (area, log-ratio, top, left), then the flip.
    public static func randomResizedCrop(width: Int, height: Int, uniforms u: [Float]) -> (x: Int, y: Int, width: Int, height: Int) {
        let area = Double(width * height)
        let (logLo, logHi) = (log(3.0 / 4.0), log(4.0 / 3.0))
        for attempt in 0..<10 {
            let v = u[(4 * attempt)..<(4 * attempt + 4)].map(Double.init)
            let target = area * (0.08 + (1 - 0.08) * v[0])
            let ratio = exp(logLo + (logHi - logLo) * v[1])
            let w = Int((target * ratio).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / ratio).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                return (Int(v[3] * Double(width - w + 1)), Int(v[2] * Double(height - h + 1)), w, h)
            }
        }
        // Fallback: the whole image, cut to the nearest allowed aspect ratio, centred.
        let ratio = Double(width) / Double(height)
        var (w, h) = (width, height)
        if ratio < 3.0 / 4.0 {
            h = Int((Double(w) / (3.0 / 4.0)).rounded(.toNearestOrEven))
        } else if ratio > 4.0 / 3.0 {
            w = Int((Double(h) * (4.0 / 3.0)).rounded(.toNearestOrEven))
        }
        return ((width - w) / 2, (height - h) / 2, w, h)
    }

    /// torchvision's `Resize(s)` then `CenterCrop(c)`: the resized size and the crop's corner.
    public static func resizeThenCenterCrop(width: Int, height: Int, shorter: Int, crop: Int) -> (width: Int, height: Int, x: Int, y: Int) {
        let (w, h) = width <= height ? (shorter, Int(Double(shorter) * Double(height) / Double(width)))
                                     : (Int(Double(shorter) * Double(width) / Double(height)), shorter)
        // Python's round(): halves to even.
        let x = Int((Double(w - crop) / 2).rounded(.toNearestOrEven)), y = Int((Double(h - crop) / 2).rounded(.toNearestOrEven))
        return (w, h, x, y)
    }

    /// One sample, transformed and normalised, as `[3, size, size]` floats at `out`.
    func transform(_ image: RGBImage, sample: Int, epoch: Int, into out: UnsafeMutablePointer<Float>) {
        var pixels: [UInt8]
        var flip = false
        if augment {
            let u = RandomGenerator(seed: seed).derived(UInt64(epoch) &* 1_000_003 &+ UInt64(sample)).uniform(41)
            let crop = ImageFolderDataset.randomResizedCrop(width: image.width, height: image.height, uniforms: u)
            pixels = Resize.bilinearRGB(image, crop: crop, outWidth: size, outHeight: size)
            flip = u[40] < 0.5
        } else {
            let r = ImageFolderDataset.resizeThenCenterCrop(width: image.width, height: image.height, shorter: resizeTo, crop: size)
            let resized = r.width == image.width && r.height == image.height
                ? image
                : RGBImage(width: r.width, height: r.height,
                           pixels: Resize.bilinearRGB(image, crop: (0, 0, image.width, image.height), outWidth: r.width, outHeight: r.height))
            // A crop larger than the image pads with zeros, as torchvision's CenterCrop does.
            pixels = [UInt8](repeating: 0, count: size * size * 3)
            for y in 0..<size where y + r.y >= 0 && y + r.y < r.height {
                for x in 0..<size where x + r.x >= 0 && x + r.x < r.width {
                    let (s, d) = (((y + r.y) * r.width + x + r.x) * 3, (y * size + x) * 3)
                    pixels[d] = resized.pixels[s]; pixels[d + 1] = resized.pixels[s + 1]; pixels[d + 2] = resized.pixels[s + 2]
                }
            }
        }
        let plane = size * size
        for c in 0..<3 {
            let (scale, shift) = (1 / (255 * ImageFolderDataset.std[c]), ImageFolderDataset.mean[c] / ImageFolderDataset.std[c])
            for y in 0..<size {
                for x in 0..<size {
                    let sx = flip ? size - 1 - x : x
                    out[c * plane + y * size + x] = Float(pixels[(y * size + sx) * 3 + c]) * scale - shift
                }
            }
        }
    }

    /// Decodes sample `i`, or with `skipCorrupt` the next readable file of its class.
    func image(_ i: Int) throws -> RGBImage {
        var j = i
        while true {
            do { return try JPEG.read(files[j], limits: jpegLimits) } catch {
                guard skipCorrupt else {
                    let hint = "pass --skip-corrupt to use the next readable image of its class instead"
                    throw (error as? DataFileError)?.hinted(hint) ?? DataFileError(path: files[j], reason: "\(error)", hint: hint)
                }
                if skippedFiles.insert(files[j]) {
                    FileHandle.standardError.write(Data("warning: skipping unreadable image: \(error)\n".utf8))
                }
                j = j + 1 < files.count && labels[j + 1] == labels[i] ? j + 1 : labels.firstIndex(of: labels[i])!
                if j == i { throw DataFileError(path: files[i], reason: "no readable image in its class folder") }
            }
        }
    }

    public func batch(_ indices: ArraySlice<Int>, epoch: Int) throws -> Batch {
        let out = Tensor.empty([indices.count, 3, size, size], device: .cpu)
        let p = out.pointer(as: Float.self)
        let sampleSize = 3 * size * size
        let list = Array(indices)
        var failures = [Error?](repeating: nil, count: list.count)
        failures.withUnsafeMutableBufferPointer { failures in
            DispatchQueue.concurrentPerform(iterations: list.count) { j in
                do {
                    transform(try image(list[j]), sample: list[j], epoch: epoch, into: p + j * sampleSize)
                } catch {
                    failures[j] = error
                }
            }
        }
        if let error = failures.compactMap({ $0 }).first { throw error }
        return Batch(inputs: out, labels: Tensor(labels: list.map { labels[$0] }))
    }
}

/// The set of files skipped so far, shared by the copies of a data set value.
final class SkippedFiles: @unchecked Sendable {
    private var files: [String] = []
    private let lock = NSLock()
    /// Adds `path`; true when it was new.
    func insert(_ path: String) -> Bool {
        lock.withLock {
            if files.contains(path) { return false }
            files.append(path)
            return true
        }
    }
    var all: [String] { lock.withLock { files } }
}
