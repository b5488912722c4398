import Foundation
import SNNTensor

/// The built-in data set: short event streams of moving shapes, generated deterministically
/// from a seed, so `snn train` works with no data on disk.
///
/// Each sample is a shape (square, disc, cross, bar) moving in one of two directions (right
/// or left, or down or up for the bar) across a 32×32 sensor; the class is (shape, direction),
/// 8 classes. A simulated sensor emits an ON event where a pixel becomes covered and an OFF
/// event where it becomes uncovered, plus background noise, so direction shows only in time
/// and in polarity. Events become frames with the same ``FrameIntegration`` as the real event
/// data sets.
public struct SyntheticEvents: Sendable {
    public static let classNames = ["square→", "square←", "disc→", "disc←", "cross→", "cross←", "bar↓", "bar↑"]
    public static let size = 32

    /// Frames `[count, T, 2, 32, 32]` and labels.
    public let frames: Tensor
    public let labels: [Int]
    public var count: Int { labels.count }

    /// Generates `count` samples from `seed`.
    public init(count: Int, seed: UInt64, integration: FrameIntegration = .eventCount(frames: 8)) {
        let t = integration.frames, s = SyntheticEvents.size
        let frames = Tensor.zeros([count, t, 2, s, s], device: .cpu)
        let base = frames.pointer(as: Float.self)
        var labels = [Int](repeating: 0, count: count)
        let sampleSize = t * 2 * s * s
        labels.withUnsafeMutableBufferPointer { labels in
        DispatchQueue.concurrentPerform(iterations: count) { i in
            // Every sample has its own stream: the same data whatever the thread count.
            let g = RandomGenerator(seed: seed).derived(UInt64(i))
            let label = g.integer(below: SyntheticEvents.classNames.count)
            let events = SyntheticEvents.render(label: label, generator: g)
            integration.integrate(events, into: base + i * sampleSize)
            labels[i] = label
        }
        }
        // Frames are event counts; scale them to about unit size for training.
        self.frames = withoutGradients { (frames / 2).contiguous() }
        self.labels = labels
    }

    /// Whether pixel (x, y) is covered by `shape` centred at (cx, cy) with half-size r.
    static func covers(_ shape: Int, _ x: Double, _ y: Double, _ cx: Double, _ cy: Double, _ r: Double) -> Bool {
        let (dx, dy) = (x - cx, y - cy)
        switch shape {
        case 0: return Swift.abs(dx) <= r && Swift.abs(dy) <= r
        case 1: return dx * dx + dy * dy <= r * r
        case 2: return (Swift.abs(dx) <= r / 3 && Swift.abs(dy) <= r) || (Swift.abs(dy) <= r / 3 && Swift.abs(dx) <= r)
        default: return Swift.abs(dx) <= r * 1.4 && Swift.abs(dy) <= r / 3
        }
    }

    /// Simulates the sensor watching one moving shape.
    static func render(label: Int, generator g: RandomGenerator) -> EventStream {
        let s = size, shape = label / 2, forward = label % 2 == 0
        let u = g.uniform(8).map(Double.init)
        let r = 3.5 + 2.5 * u[0]
        let speed = (0.6 + 0.5 * u[1]) * (forward ? 1 : -1)   // pixels per step
        let steps = 24
        let travel = speed * Double(steps)
        let vertical = shape == 3
        // Start so the whole path stays roughly inside the sensor.
        let along = Double(s) / 2 - travel / 2 + (u[2] - 0.5) * 4
        let across = 8 + u[3] * Double(s - 16)
        var events = EventStream(width: s, height: s)
        var covered = [Bool](repeating: false, count: s * s)
        let noise = g.uniform(steps * 6)
        for step in 0...steps {
            let pos = along + speed * Double(step)
            let (cx, cy) = vertical ? (across, pos) : (pos, across)
            let time = Int64(step) * 1000
            for yy in 0..<s {
                for xx in 0..<s {
                    let now = covers(shape, Double(xx), Double(yy), cx, cy, r)
                    if now != covered[yy * s + xx] {
                        if step > 0 { events.append(x: xx, y: yy, on: now, time: time) }
                        covered[yy * s + xx] = now
                    }
                }
            }
            // Background activity: a few random events per step.
            if step < steps {
                for k in 0..<2 {
                    let j = (step * 2 + k) * 3
                    events.append(x: Int(noise[j] * Float(s)) % s, y: Int(noise[j + 1] * Float(s)) % s,
                                  on: noise[j + 2] < 0.5, time: time + 500)
                }
            }
        }
        return events
    }
}
