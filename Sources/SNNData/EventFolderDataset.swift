import Foundation
import SNNTensor

/// CIFAR10-DVS (`.aedat` files in class folders) and N-Caltech101 (`.bin` files in Caltech101
/// class folders, background included), integrated into `T` frames of 2×48×48 as the paper's
/// settings use (TRT-SPEC.md §8 and §10).
///
/// - CIFAR10-DVS: SpikingJelly's orientation (x = 127 - y_raw, y = 127 - x_raw, ON = bit 0 clear),
///   frames by equal event count with the remainder dropped, true per-polarity counts divided by
///   each frame's maximum, antialiased bilinear resize; split per class by file index (0-899
///   train, 900-999 test; with other counts, the first 90 %). Training augmentation: horizontal
///   flip (p = 0.5), then a cyclic roll by independent offsets in [-5, 5] along height and width.
/// - N-Caltech101: SpikingJelly's fixed-frames-number integration (the last frame runs to the
///   end), raw counts, antialiased resize; the first ⌈0.9·n_c⌉ files of each class (in name
///   order) train, the rest test. No augmentation.
///
/// Frames are cached under `<root>/.snn-frames/<options>/`, one raw float32 file per recording,
/// written atomically; the folder name records every option that changes the frames, and
/// deleting it is always safe.
public struct EventFolderDataset: LabelledDataset {
    public enum Kind: String, Sendable { case cifar10DVS = "DVSCIFAR10", ncaltech101 = "NCaltech101" }

    public let kind: Kind
    public let classNames: [String]
    public let labels: [Int]
    /// `[count, T, 2, size, size]`.
    public let frames: Tensor
    public let augment: Bool
    public let seed: UInt64
    /// Files that could not be read and were skipped (with `skipCorrupt`).
    public let skipped: [String]

    public var count: Int { labels.count }
    public var classes: Int { classNames.count }

    /// The folder (under the data set's root) that caches frames made with these options.
    public static func cacheFolder(kind: Kind, timesteps: Int, size: Int) -> String {
        switch kind {
        case .cifar10DVS: return "cifar10dvs_\(FrameIntegration.eventCountDroppingRemainder(frames: timesteps).cacheName)_maxnorm_spikingjelly_orientation_bilinear_aa_\(size)x\(size)"
        case .ncaltech101: return "ncaltech101_\(FrameIntegration.eventCount(frames: timesteps).cacheName)_counts_bilinear_aa_\(size)x\(size)"
        }
    }

    /// - Parameter progress: called with (recordings done, total) as frames are made or read,
    ///   from worker threads, one call at a time.
    public init(kind: Kind, root: String, train: Bool, timesteps: Int, size: Int = 48, augment: Bool, seed: UInt64,
                skipCorrupt: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws {
        let fm = FileManager.default
        let ext = kind == .cifar10DVS ? "aedat" : "bin"
        let classes = ((try? fm.contentsOfDirectory(atPath: root)) ?? [])
            .filter { !$0.hasPrefix(".") && (try? fm.attributesOfItem(atPath: "\(root)/\($0)")[.type] as? FileAttributeType) == .typeDirectory }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }  // case-sensitive, like Python's sorted()
        guard !classes.isEmpty else {
            throw DataFileError(path: root, record: nil, offset: 0, reason: "no class folders holding .\(ext) files")
        }
        var files: [(path: String, label: Int)] = []
        for (label, name) in classes.enumerated() {
            let all = ((try? fm.contentsOfDirectory(atPath: "\(root)/\(name)")) ?? []).filter { $0.hasSuffix(".\(ext)") }
            guard !all.isEmpty else {
                throw DataFileError(path: "\(root)/\(name)", record: nil, offset: 0, reason: "class folder holds no .\(ext) files")
            }
            let ordered = kind == .cifar10DVS ? all.sorted { EventFolderDataset.index($0) < EventFolderDataset.index($1) } : all.sorted()
            let split = kind == .cifar10DVS && ordered.count == 1000 ? 900 : Int((0.9 * Double(ordered.count)).rounded(.up))
            for f in (train ? ordered[..<split] : ordered[split...]) { files.append(("\(root)/\(name)/\(f)", label)) }
        }
        let cache = "\(root)/.snn-frames/\(EventFolderDataset.cacheFolder(kind: kind, timesteps: timesteps, size: size))"
        let sampleSize = timesteps * 2 * size * size
        let all = Tensor.zeros([files.count, timesteps, 2, size, size], device: .cpu)
        let base = all.pointer(as: Float.self)
        var failures = [String?](repeating: nil, count: files.count)
        let lock = NSLock()
        var done = 0
        failures.withUnsafeMutableBufferPointer { failures in
            DispatchQueue.concurrentPerform(iterations: files.count) { i in
                do {
                    try EventFolderDataset.frames(kind, files[i].path, root: root, cache: cache, timesteps: timesteps, size: size,
                                                  into: base + i * sampleSize)
                } catch {
                    failures[i] = "\(error)"
                }
                lock.withLock {
                    done += 1
                    progress?(done, files.count)
                }
            }
        }
        let bad = failures.enumerated().compactMap { i, f in f.map { (i, $0) } }
        if let first = bad.first, !skipCorrupt {
            throw DataFileError(path: files[first.0].path, record: nil, offset: 0,
                                reason: "\(first.1) (\(bad.count) unreadable file(s); --skip-corrupt skips them)")
        }
        let keep = (0..<files.count).filter { failures[$0] == nil }
        frames = keep.count == files.count ? all : withoutGradients {
            concat(keep.map { all.sliced(axis: 0, $0..<($0 + 1)) }, axis: 0)
        }
        labels = keep.map { files[$0].label }
        skipped = bad.map { files[$0.0].path }
        (self.kind, self.classNames, self.augment, self.seed) = (kind, classes, augment, seed)
    }

    /// The recording index in a CIFAR10-DVS file name (`cifar10_airplane_123.aedat` → 123).
    static func index(_ name: String) -> Int {
        let stem = name.split(separator: ".").first.map(String.init) ?? name
        return Int(stem.split(separator: "_").last ?? "") ?? Int.max
    }

    /// One recording's frames, from the cache or computed (and cached).
    static func frames(_ kind: Kind, _ path: String, root: String, cache: String, timesteps: Int, size: Int,
                       into out: UnsafeMutablePointer<Float>) throws {
        let count = timesteps * 2 * size * size
        let cached = cache + "/" + path.dropFirst(root.count + 1) + ".f32"
        if let data = try? Data(contentsOf: URL(fileURLWithPath: cached)), data.count == count * 4 {
            data.withUnsafeBytes { out.update(from: $0.bindMemory(to: Float.self).baseAddress!, count: count) }
            return
        }
        var events: EventStream
        let integration: FrameIntegration
        switch kind {
        case .cifar10DVS:
            let raw = try EventFiles.readAEDAT2(path)
            events = EventStream(width: 128, height: 128)
            for i in 0..<raw.count {
                events.append(x: 127 - Int(raw.y[i]), y: 127 - Int(raw.x[i]), on: raw.polarity[i] == 0, time: raw.timestamp[i])
            }
            integration = .eventCountDroppingRemainder(frames: timesteps)
        case .ncaltech101:
            events = try EventFiles.readATIS(path, width: 240, height: 180)
            integration = .eventCount(frames: timesteps)
        }
        var full = [Float](repeating: 0, count: timesteps * 2 * events.width * events.height)
        full.withUnsafeMutableBufferPointer { buffer in
            integration.integrate(events, into: buffer.baseAddress!)
            if kind == .cifar10DVS {
                FrameIntegration.normalizePerFrameMaximum(buffer.baseAddress!, count: timesteps, frameSize: 2 * events.width * events.height)
            }
            Resize.bilinear(buffer.baseAddress!, planes: timesteps * 2, height: events.height, width: events.width,
                            into: out, outHeight: size, outWidth: size)
        }
        // The cache is an optimisation: a failed write only means recomputing next time.
        try? AtomicFile.write(Data(bytes: out, count: count * 4), to: cached)
    }

    public func batch(_ indices: ArraySlice<Int>, epoch: Int) -> Batch {
        let shape = Array(frames.shape.dropFirst())  // [T, 2, H, W]
        let (t, h, w) = (shape[0], shape[2], shape[3])
        let size = shape.reduce(1, *)
        let out = Tensor.empty([indices.count] + shape, device: .cpu)
        let (src, dst) = (frames.pointer(as: Float.self), out.pointer(as: Float.self))
        for (j, i) in indices.enumerated() {
            let s = src + i * size, d = dst + j * size
            guard augment && kind == .cifar10DVS else {
                d.update(from: s, count: size)
                continue
            }
            let u = RandomGenerator(seed: seed).derived(UInt64(epoch) &* 1_000_003 &+ UInt64(i)).uniform(3)
            let flip = u[0] < 0.5
            let (dy, dx) = (Int(u[1] * 11) - 5, Int(u[2] * 11) - 5)
            // out[y][x] = flipped[(y - dy) mod h][(x - dx) mod w]  (torch.roll by (dy, dx))
            for plane in 0..<(t * 2) {
                for y in 0..<h {
                    let sy = ((y - dy) % h + h) % h
                    for x in 0..<w {
                        let rx = ((x - dx) % w + w) % w
                        let sx = flip ? w - 1 - rx : rx
                        d[(plane * h + y) * w + x] = s[(plane * h + sy) * w + sx]
                    }
                }
            }
        }
        return Batch(inputs: out.transposed(0, 1).contiguous(), labels: Tensor(labels: indices.map { labels[$0] }))
    }
}
