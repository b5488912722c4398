import Foundation
import SNNTensor

/// The event-camera data sets, read from the layouts they are distributed in and integrated
/// into `T` frames of 2 polarity channels (TRT-SPEC.md §8 and §10).
///
/// - CIFAR10-DVS: `.aedat` (AEDAT 2.0) files in class folders. SpikingJelly's orientation
///   (x = 127 - y_raw, y = 127 - x_raw, ON = bit 0 clear), frames by equal event count with the
///   remainder dropped, true per-polarity counts divided by each frame's maximum, antialiased
///   bilinear resize; split per class by file index (0-899 train, 900-999 test; with other
///   counts, the first 90 %). Training augmentation: horizontal flip (p = 0.5), then a cyclic
///   roll by independent offsets in [-5, 5] along height and width. `frames: .reference`
///   reproduces the reference's preprocessing instead (see ``DVSFrames``).
/// - N-Caltech101: `.bin` files (ATIS 40-bit, 240×180) in Caltech101 class folders,
///   SpikingJelly's fixed-frames-number integration (the last frame runs to the end), raw counts,
///   antialiased resize; the first ⌈0.9·n_c⌉ files of each class (in name order) train.
/// - N-MNIST: `Train/<digit>/*.bin` and `Test/<digit>/*.bin` (34×34) as distributed;
///   fixed-frames-number integration, raw counts, no resize by default.
/// - DVS128 Gesture: `user*_<lighting>.aedat` (AEDAT 3.1) with `*_labels.csv` beside them and the
///   `trials_to_train.txt` / `trials_to_test.txt` lists; each labelled interval
///   `[start, end)` µs of a recording is a sample (classes 1-11 become 0-10), integrated like
///   N-Caltech101 and resized.
///
/// Frames are cached under `<root>/.snn-frames/<options>/` (or where ``FrameCache`` chooses
/// when that cannot be written), one file per sample written
/// atomically: a 24-byte header (`SNNFRM01`, then the source recording's size and modification
/// time in nanoseconds, little-endian) and the float32 frames. The folder name records every
/// option that changes the frames and the header the recording they came from, so a replaced or
/// truncated recording is integrated again; deleting the cache is always safe.
public struct EventFolderDataset: LabelledDataset {
    public enum Kind: String, Sendable, CaseIterable {
        case cifar10DVS = "DVSCIFAR10", ncaltech101 = "NCaltech101", nmnist = "NMNIST", dvsGesture = "DVSGesture"

        /// The frame size the paper's settings (and SwiftSNN's defaults) use.
        public var defaultSize: Int { self == .nmnist ? 34 : 48 }
        /// The sensor.
        public var sensor: (width: Int, height: Int) {
            switch self {
            case .cifar10DVS, .dvsGesture: return (128, 128)
            case .ncaltech101: return (240, 180)
            case .nmnist: return (34, 34)
            }
        }
    }

    /// How CIFAR10-DVS recordings become frames.
    public enum DVSFrames: String, Sendable, CaseIterable {
        /// True per-polarity counts, each frame divided by its maximum (an empty frame stays 0),
        /// antialiased bilinear resize per channel, SpikingJelly's orientation.
        case standard
        /// The reference's released preprocessing, bit for bit where it is defined: per frame, an
        /// occupancy map (a pixel hit several times counts once) of both polarities in channel 1
        /// (polarity ±1 used as an index), channel 0 empty, rows 127 - x_raw and columns y_raw
        /// (the MATLAB reader's mirror), external events included; then resized as PIL resizes the
        /// 8-bit two-channel image (values 0 or 255) and scaled back to [0, 1]. An empty frame is
        /// 0 (the reference would make it NaN).
        case reference
    }

    /// One sample: a file, its label and, for DVS128 Gesture, the time interval it covers.
    struct Recording {
        let path: String
        let label: Int
        let window: Range<Int64>?
        /// The cache file's path under the cache folder.
        let cacheName: String
    }

    public let kind: Kind
    public let classNames: [String]
    public let labels: [Int]
    /// `[count, T, 2, size, size]`.
    public let frames: Tensor
    public let augment: Bool
    public let seed: UInt64
    /// Files that could not be read and were skipped (with `skipCorrupt`).
    public let skipped: [String]
    /// Where frames were cached (or why not).
    public let frameCache: FrameCache
    /// Samples whose frames could not be written to the cache (a full disk), and the first reason.
    public let unwrittenFrames: Int
    public let frameWriteError: String?

    public var count: Int { labels.count }
    public var classes: Int { classNames.count }

    /// DVS128 Gesture's classes, in label order.
    public static let gestureClasses = ["hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
                                        "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
                                        "arm_roll", "air_drums", "air_guitar", "other_gestures"]

    /// The folder (under the data set's root) that caches frames made with these options.
    public static func cacheFolder(kind: Kind, timesteps: Int, size: Int, dvsFrames: DVSFrames = .standard) -> String {
        switch kind {
        case .cifar10DVS where dvsFrames == .reference:
            return "cifar10dvs_\(FrameIntegration.eventCountDroppingRemainder(frames: timesteps).cacheName)_reference_occupancy_channel1_pil8_\(size)x\(size)"
        case .cifar10DVS: return "cifar10dvs_\(FrameIntegration.eventCountDroppingRemainder(frames: timesteps).cacheName)_maxnorm_spikingjelly_orientation_bilinear_aa_\(size)x\(size)"
        case .ncaltech101: return "ncaltech101_\(FrameIntegration.eventCount(frames: timesteps).cacheName)_counts_bilinear_aa_\(size)x\(size)"
        case .nmnist: return "nmnist_\(FrameIntegration.eventCount(frames: timesteps).cacheName)_counts_bilinear_aa_\(size)x\(size)"
        case .dvsGesture: return "dvsgesture_\(FrameIntegration.eventCount(frames: timesteps).cacheName)_counts_bilinear_aa_\(size)x\(size)"
        }
    }

    /// Where frames made with these options are cached for the data set at `root`.
    public static func cacheDirectory(root: String, kind: Kind, timesteps: Int, size: Int, dvsFrames: DVSFrames = .standard) -> String {
        "\(root)/.snn-frames/\(cacheFolder(kind: kind, timesteps: timesteps, size: size, dvsFrames: dvsFrames))"
    }

    /// - Parameters:
    ///   - size: frame height and width (default: ``Kind/defaultSize``).
    ///   - cacheRoot: the folder to cache frames under instead of `<root>/.snn-frames` (see
    ///     ``FrameCache/choose(root:folder:cacheRoot:environment:)``).
    ///   - progress: called with (samples done, total) as frames are made or read, from worker
    ///     threads, one call at a time.
    /// - Throws: ``DataLayoutError`` when the folder is not laid out as the data set is
    ///   distributed (or `cacheRoot` cannot be written); ``DataFileError`` for the first
    ///   unreadable recording unless `skipCorrupt`.
    public init(kind: Kind, root: String, train: Bool, timesteps: Int, size: Int? = nil, augment: Bool, seed: UInt64,
                dvsFrames: DVSFrames = .standard, skipCorrupt: Bool = false, cacheRoot: String? = nil,
                progress: ((Int, Int) -> Void)? = nil) throws {
        let size = size ?? kind.defaultSize
        let (classes, files) = try EventFolderDataset.recordings(kind, root: root, train: train)
        let cache = try FrameCache.choose(root: root, folder: EventFolderDataset.cacheFolder(kind: kind, timesteps: timesteps, size: size, dvsFrames: dvsFrames),
                                          cacheRoot: cacheRoot)
        let all = Tensor.zeros([files.count, timesteps, 2, size, size], device: .cpu)
        let (failures, unwritten, writeError) = EventFolderDataset.makeFrames(
            kind, files, cache: cache, timesteps: timesteps, size: size, dvsFrames: dvsFrames, into: all.pointer(as: Float.self), progress: progress)
        let bad = failures.enumerated().compactMap { i, f in f.map { (i, $0) } }
        if let (i, error) = bad.first, !skipCorrupt {
            let hint = "pass --skip-corrupt to skip unreadable files" + (bad.count > 1 ? " (\(bad.count) in this split)" : "")
            throw (error as? DataFileError)?.hinted(hint) ?? DataFileError(path: files[i].path, reason: "\(error)", hint: hint)
        }
        let keep = (0..<files.count).filter { failures[$0] == nil }
        frames = keep.count == files.count ? all : withoutGradients {
            concat(keep.map { all.sliced(axis: 0, $0..<($0 + 1)) }, axis: 0)
        }
        labels = keep.map { files[$0].label }
        skipped = bad.map { files[$0.0].path }
        (self.kind, self.classNames, self.augment, self.seed) = (kind, classes, augment, seed)
        (self.frameCache, self.unwrittenFrames, self.frameWriteError) = (cache, unwritten, writeError)
    }

    /// Every sample's frames into `base`, recordings in parallel: each unreadable sample's error,
    /// and how many samples' frames could not be cached, with the first reason.
    private static func makeFrames(_ kind: Kind, _ files: [Recording], cache: FrameCache, timesteps: Int, size: Int, dvsFrames: DVSFrames,
                                   into base: UnsafeMutablePointer<Float>, progress: ((Int, Int) -> Void)?)
        -> (failures: [Error?], unwritten: Int, writeError: String?) {
        let sampleSize = timesteps * 2 * size * size
        var failures = [Error?](repeating: nil, count: files.count)
        let lock = NSLock()
        var (done, unwritten, writeError) = (0, 0, String?.none)
        // The samples of one recording (DVS128 Gesture's labelled intervals) are made together,
        // so the recording is decoded once.
        var groups: [[Int]] = []
        for (i, f) in files.enumerated() {
            if i > 0 && f.window != nil && f.path == files[i - 1].path { groups[groups.count - 1].append(i) } else { groups.append([i]) }
        }
        failures.withUnsafeMutableBufferPointer { failures in
            DispatchQueue.concurrentPerform(iterations: groups.count) { g in
                var decoded: EventStream? = nil
                for i in groups[g] {
                    var notWritten: String? = nil
                    do {
                        notWritten = try frames(kind, files[i], cache: cache, timesteps: timesteps, size: size,
                                                dvsFrames: dvsFrames, recordingEvents: &decoded, into: base + i * sampleSize)
                    } catch {
                        failures[i] = error
                    }
                    lock.withLock {
                        done += 1
                        if let notWritten { (unwritten, writeError) = (unwritten + 1, writeError ?? notWritten) }
                        progress?(done, files.count)
                    }
                }
            }
        }
        return (failures, unwritten, writeError)
    }

    /// What the user should hear about the frame cache, one line each: where it went when not
    /// into the data folder (or that it went nowhere), and cache files that could not be written.
    public var cacheNotes: [String] {
        var notes = frameCache.notice.map { [$0] } ?? []
        if let frameWriteError, let directory = frameCache.directory {
            notes.append("could not write \(unwrittenFrames) of \(count + skipped.count) frame files in \(directory) (\(frameWriteError)); they are computed again next time")
        }
        return notes
    }

    /// One sample's frames, from the cache or computed (and cached).
    ///
    /// - Parameter recordingEvents: DVS128 Gesture's decoded recording, decoded here when nil and
    ///   kept for the next interval of the same recording.
    /// - Returns: why the computed frames could not be written to the cache, or nil.
    static func frames(_ kind: Kind, _ recording: Recording, cache: FrameCache, timesteps: Int, size: Int, dvsFrames: DVSFrames,
                       recordingEvents: inout EventStream?, into out: UnsafeMutablePointer<Float>) throws -> String? {
        let count = timesteps * 2 * size * size
        let key = FrameCacheKey(source: recording.path)
        for folder in cache.readable {
            if let key, let data = try? Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(recording.cacheName)")),
               data.count == FrameCacheKey.size + count * 4, data.prefix(FrameCacheKey.size) == key.header {
                data.withUnsafeBytes { raw in
                    out.update(from: (raw.baseAddress! + FrameCacheKey.size).assumingMemoryBound(to: Float.self), count: count)
                }
                return nil
            }
        }
        if kind == .cifar10DVS && dvsFrames == .reference {
            try referenceCIFAR10DVSFrames(recording.path, timesteps: timesteps, size: size, into: out)
        } else {
            var events: EventStream
            let integration: FrameIntegration
            switch kind {
            case .cifar10DVS:
                let raw = try EventFiles.readAEDAT2(recording.path)
                events = EventStream(width: 128, height: 128)
                for i in 0..<raw.count {
                    events.append(x: 127 - Int(raw.y[i]), y: 127 - Int(raw.x[i]), on: raw.polarity[i] == 0, time: raw.timestamp[i])
                }
                integration = .eventCountDroppingRemainder(frames: timesteps)
            case .ncaltech101, .nmnist:
                events = try EventFiles.readATIS(recording.path, width: kind.sensor.width, height: kind.sensor.height)
                integration = .eventCount(frames: timesteps)
            case .dvsGesture:
                if recordingEvents == nil { recordingEvents = try EventFiles.readAEDAT3(recording.path) }
                events = recordingEvents!.window(recording.window ?? Int64.min..<Int64.max)
                integration = .eventCount(frames: timesteps)
            }
            let (w, h) = (events.width, events.height)
            var full = [Float](repeating: 0, count: timesteps * 2 * w * h)
            full.withUnsafeMutableBufferPointer { buffer in
                integration.integrate(events, into: buffer.baseAddress!)
                if kind == .cifar10DVS {
                    FrameIntegration.normalizePerFrameMaximum(buffer.baseAddress!, count: timesteps, frameSize: 2 * w * h)
                }
                if w == size && h == size {
                    out.update(from: buffer.baseAddress!, count: count)
                } else {
                    Resize.bilinear(buffer.baseAddress!, planes: timesteps * 2, height: h, width: w, into: out, outHeight: size, outWidth: size)
                }
            }
        }
        // The cache is an optimisation: a failed write only means recomputing next time, which
        // the caller reports.
        guard let key, let directory = cache.directory else { return nil }
        do {
            try AtomicFile.write(key.header + Data(bytes: out, count: count * 4), to: "\(directory)/\(recording.cacheName)", durable: false)
        } catch {
            return "\(error)"
        }
        return nil
    }

    /// ``DVSFrames/reference``: the reference's CIFAR10-DVS preprocessing.
    static func referenceCIFAR10DVSFrames(_ path: String, timesteps: Int, size: Int, into out: UnsafeMutablePointer<Float>) throws {
        let raw = try EventFiles.readAEDAT2(path, includeSpecial: true)
        let n = raw.count, d = n / timesteps
        out.update(repeating: 0, count: timesteps * 2 * size * size)
        var occupancy = [UInt8](repeating: 0, count: 128 * 128)
        for f in 0..<timesteps where d > 0 {
            for i in 0..<(128 * 128) { occupancy[i] = 0 }
            for i in (f * d)..<((f + 1) * d) {
                occupancy[(127 - Int(raw.x[i])) * 128 + Int(raw.y[i])] = 255
            }
            let resized = occupancy.withUnsafeBufferPointer {
                Resize.bilinear8($0.baseAddress!, width: 128, height: 128, channels: 1, crop: (0, 0, 128, 128),
                                 outWidth: size, outHeight: size)
            }
            let channel1 = out + (f * 2 + 1) * size * size
            for i in 0..<(size * size) { channel1[i] = Float(resized[i]) / 255 }
        }
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

/// What a cached sample's frames depend on besides the options in the cache folder's name: the
/// source recording's size and modification time.
struct FrameCacheKey {
    static let size = 24
    let header: Data

    /// The key of the recording at `source` now, or `nil` when it cannot be examined (the frames
    /// are then computed and not cached).
    init?(source: String) {
        var info = stat()
        guard stat(source, &info) == 0 else { return nil }
        let nanoseconds = Int64(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_mtim.tv_nsec)
        var bytes = Data("SNNFRM01".utf8)
        withUnsafeBytes(of: UInt64(info.st_size).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: nanoseconds.littleEndian) { bytes.append(contentsOf: $0) }
        header = bytes
    }
}
