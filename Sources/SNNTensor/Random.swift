import Foundation

/// A seeded, counter-based random generator (Philox4x32-10).
///
/// Element `i` of a draw depends only on `(seed, counter + i)`, so a fill gives the same
/// numbers whether it runs on one thread or many, and a generator's state is two integers
/// that checkpoints record. Every random draw in SwiftSNN (init, shuffling, augmentation,
/// dropout) goes through one of these.
public final class RandomGenerator: @unchecked Sendable, Codable {
    /// The seed: Philox's key.
    public let seed: UInt64
    /// How many 32-bit words have been drawn so far.
    public private(set) var counter: UInt64

    public init(seed: UInt64, counter: UInt64 = 0) {
        self.seed = seed
        self.counter = counter
    }

    /// Moves the stream to `counter` (restoring a checkpointed position).
    public func seek(to counter: UInt64) { self.counter = counter }

    /// An independent generator for a named purpose, derived from this one's seed.
    public func derived(_ stream: UInt64) -> RandomGenerator {
        RandomGenerator(seed: Philox.mix(seed &+ 0x9E37_79B9_7F4A_7C15 &* (stream &+ 1)))
    }

    /// Reserves `n` words and returns the counter of the first.
    func reserve(_ n: Int) -> UInt64 {
        // Round up to whole Philox blocks so later draws start on a block boundary.
        let start = counter
        counter &+= UInt64((n + 3) / 4 * 4)
        return start
    }

    /// Calls `body(i, word)` for the `n` words of the range reserved at `start`.
    ///
    /// Word `i` depends only on `(seed, start + i)`, so the range is cut into `chunks` pieces
    /// generated concurrently (large draws) and the result is the same for any chunk count.
    static func words(seed: UInt64, start: UInt64, count n: Int, chunks: Int? = nil, _ body: (Int, UInt32) -> Void) {
        let blocks = (n + 3) / 4
        let pieces = max(1, min(chunks ?? (n >= 1 << 16 ? ProcessInfo.processInfo.activeProcessorCount : 1), blocks))
        withoutActuallyEscaping(body) { body in
            let run = { (piece: Int) in
                for b in (blocks * piece / pieces)..<(blocks * (piece + 1) / pieces) {
                    let block = Philox.block(key: seed, counter: start / 4 &+ UInt64(b))
                    for j in 0..<4 where 4 * b + j < n { body(4 * b + j, Philox.word(block, j)) }
                }
            }
            if pieces == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: pieces, execute: run) }
        }
    }

    /// Uniform floats in [0, 1) with 24 random bits each.
    public func uniform(_ n: Int) -> [Float] { uniform(n, chunks: nil) }

    /// `uniform(_:)` cut into a given number of concurrently generated chunks (for tests of
    /// thread-count independence).
    package func uniform(_ n: Int, chunks: Int?) -> [Float] {
        let start = reserve(n)
        return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            RandomGenerator.words(seed: seed, start: start, count: n, chunks: chunks) { i, w in buf[i] = Float(w >> 8) * 0x1p-24 }
            initialized = n
        }
    }

    /// Standard normal floats (Box–Muller on pairs of uniform words).
    public func normal(_ n: Int) -> [Float] { normal(n, chunks: nil) }

    /// `normal(_:)` cut into a given number of concurrently generated chunks.
    package func normal(_ n: Int, chunks: Int?) -> [Float] {
        let start = reserve(2 * n)
        return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            // Word 2i is u1 and word 2i+1 is u2 of sample i; both land in one 4-word block.
            var u1 = [Double](repeating: 0, count: n)
            u1.withUnsafeMutableBufferPointer { first in
                RandomGenerator.words(seed: seed, start: start, count: 2 * n, chunks: chunks) { i, w in
                    if i % 2 == 0 {
                        first[i / 2] = (Double(w >> 8) + 1) * 0x1p-24  // (0, 1]: the log is finite
                    } else {
                        let u2 = Double(w >> 8) * 0x1p-24
                        buf[i / 2] = Float((-2 * Foundation.log(first[i / 2])).squareRoot() * Foundation.cos(2 * Double.pi * u2))
                    }
                }
            }
            initialized = n
        }
    }

    /// A uniformly random integer in `0..<bound`.
    public func integer(below bound: Int) -> Int {
        precondition(bound > 0, "[random] expected a positive bound, got \(bound)")
        let start = reserve(2)
        var hi: UInt64 = 0, lo: UInt64 = 0
        RandomGenerator.words(seed: seed, start: start, count: 2) { i, w in if i == 0 { hi = UInt64(w) } else { lo = UInt64(w) } }
        return Int(((hi << 32) | lo) % UInt64(bound))
    }

    /// A random permutation of `0..<n` (Fisher–Yates).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        guard n > 1 else { return p }
        let start = reserve(2 * n)
        var words = [UInt32](repeating: 0, count: 2 * n)
        RandomGenerator.words(seed: seed, start: start, count: 2 * n) { i, w in words[i] = w }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let r = (UInt64(words[2 * i]) << 32) | UInt64(words[2 * i + 1])
            p.swapAt(i, Int(r % UInt64(i + 1)))
        }
        return p
    }
}

extension Tensor {
    /// Uniform samples in `[low, high)`.
    public static func uniform(_ shape: [Int], low: Double = 0, high: Double = 1, generator: RandomGenerator,
                               dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        random(.uniform(low: low, high: high), shape, generator: generator, dtype: dtype, device: device)
    }

    /// Normal samples with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Double = 0, std: Double = 1, generator: RandomGenerator,
                              dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        random(.normal(mean: mean, std: std), shape, generator: generator, dtype: dtype, device: device)
    }

    /// 1 with probability `probability`, else 0.
    public static func bernoulli(_ shape: [Int], probability: Double, generator: RandomGenerator,
                                 dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        precondition(probability >= 0 && probability <= 1, "[bernoulli] expected a probability in [0, 1], got \(probability)")
        return random(.bernoulli(probability: probability), shape, generator: generator, dtype: dtype, device: device)
    }

    /// Draws filled on the device from the generator's next words.
    static func random(_ distribution: RandomDistribution, _ shape: [Int], generator: RandomGenerator, dtype: DType,
                       device: Device) -> Tensor {
        let out = empty(shape, dtype: dtype, device: device)
        let counter = generator.reserve(out.count * distribution.wordsPerElement)
        device.memoryBackend.random(distribution, into: out, seed: generator.seed, counter: counter)
        return out
    }
}

/// Philox4x32 with 10 rounds (Salmon et al., SC'11), the generator cuRAND and JAX use.
enum Philox {
    static func block(key: UInt64, counter: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter), c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            (c0, c1, c2, c3) = (UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0, UInt32(truncatingIfNeeded: p1),
                                UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1, UInt32(truncatingIfNeeded: p0))
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// SplitMix64's finaliser, to turn related seeds into unrelated keys.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// Tuple subscripting for the 4-word Philox block.
extension Philox {
    @inline(__always) static func word(_ b: (UInt32, UInt32, UInt32, UInt32), _ j: Int) -> UInt32 {
        switch j { case 0: return b.0; case 1: return b.1; case 2: return b.2; default: return b.3 }
    }
}
