import SNNTensor

/// A recording of address events: pixel, polarity and microsecond timestamp per event, in
/// time order. Readers of event-camera formats produce these; integration turns them into
/// frames.
public struct EventStream: Sendable {
    public var x: [UInt16]
    public var y: [UInt16]
    /// 1 for ON (brighter), 0 for OFF.
    public var polarity: [UInt8]
    /// Microseconds.
    public var timestamp: [Int64]
    /// Sensor size.
    public let width: Int, height: Int

    public init(width: Int, height: Int) {
        (self.width, self.height) = (width, height)
        (x, y, polarity, timestamp) = ([], [], [], [])
    }

    public var count: Int { x.count }

    /// The events with timestamps in `interval`, in their order.
    public func window(_ interval: Range<Int64>) -> EventStream {
        var out = EventStream(width: width, height: height)
        for i in 0..<count where interval.contains(timestamp[i]) {
            out.x.append(x[i]); out.y.append(y[i]); out.polarity.append(polarity[i]); out.timestamp.append(timestamp[i])
        }
        return out
    }

    /// Appends one event (the caller keeps timestamps non-decreasing).
    public mutating func append(x: Int, y: Int, on: Bool, time: Int64) {
        self.x.append(UInt16(x))
        self.y.append(UInt16(y))
        polarity.append(on ? 1 : 0)
        timestamp.append(time)
    }
}

/// How events become `T` frames of 2 polarity channels, `[T, 2, H, W]` counts.
///
/// - `eventCount`: SpikingJelly's fixed-frames-number integration: with `d = ⌊n/T⌋`, frame `j`
///   takes events `[j·d, (j+1)·d)` and the last frame runs to the end.
/// - `time`: equal time bins between the first and the last timestamp.
public enum FrameIntegration: Hashable, Sendable, Codable {
    case eventCount(frames: Int)
    /// The CIFAR10-DVS path of the reference (inherited from TET): frame `i` takes events
    /// `[i·⌊n/T⌋, (i+1)·⌊n/T⌋)` and the remainder is dropped.
    case eventCountDroppingRemainder(frames: Int)
    case time(frames: Int)

    public var frames: Int {
        switch self {
        case .eventCount(let f), .eventCountDroppingRemainder(let f), .time(let f): return f
        }
    }

    /// A short name recording every option, for cache folders (`frames_8_split_by_number`).
    public var cacheName: String {
        switch self {
        case .eventCount(let f): return "frames_\(f)_split_by_number"
        case .eventCountDroppingRemainder(let f): return "frames_\(f)_split_by_number_drop_remainder"
        case .time(let f): return "frames_\(f)_split_by_time"
        }
    }

    /// The frame index of every event.
    func frameIndices(_ events: EventStream) -> [Int] {
        let n = events.count, frames = self.frames
        switch self {
        case .eventCount:
            let d = n / frames
            return (0..<n).map { d == 0 ? min($0, frames - 1) : min($0 / d, frames - 1) }
        case .eventCountDroppingRemainder:
            let d = n / frames
            return (0..<n).map { d == 0 ? -1 : ($0 / d < frames ? $0 / d : -1) }  // -1: dropped
        case .time:
            guard let first = events.timestamp.first, let last = events.timestamp.last, last > first else {
                return [Int](repeating: 0, count: n)
            }
            let span = Double(last - first)
            return events.timestamp.map { min(Int(Double($0 - first) / span * Double(frames)), frames - 1) }
        }
    }

    /// Integrates events into `[T, 2, height, width]` float32 counts (channel 0 OFF, 1 ON,
    /// frames indexed `[p][y][x]`), written into `out` at `offset` floats.
    public func integrate(_ events: EventStream, into out: UnsafeMutablePointer<Float>) {
        let plane = events.width * events.height
        out.update(repeating: 0, count: frames * 2 * plane)
        let index = frameIndices(events)
        for i in 0..<events.count where index[i] >= 0 {
            let pixel = Int(events.y[i]) * events.width + Int(events.x[i])
            out[(index[i] * 2 + Int(events.polarity[i])) * plane + pixel] += 1
        }
    }

    /// Divides each frame (both polarity planes) by its own maximum; an empty frame stays zero
    /// (the reference's division would make it NaN).
    public static func normalizePerFrameMaximum(_ frames: UnsafeMutablePointer<Float>, count: Int, frameSize: Int) {
        for f in 0..<count {
            let p = frames + f * frameSize
            var m: Float = 0
            for i in 0..<frameSize { m = Swift.max(m, p[i]) }
            if m > 0 { for i in 0..<frameSize { p[i] /= m } }
        }
    }

    /// Integrates into a new tensor `[T, 2, height, width]`.
    public func integrate(_ events: EventStream) -> Tensor {
        let t = Tensor.empty([frames, 2, events.height, events.width], device: .cpu)
        integrate(events, into: t.pointer(as: Float.self))
        return t
    }
}

