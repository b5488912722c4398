@testable import SNNTensor
import Testing

/// The generator is counter-based: a draw's numbers depend on (seed, position) only, never on
/// how many threads produced them.
@Suite("random determinism")
struct RandomDeterminismTests {
    @Test("uniform and normal draws are identical for 1, 2, 3 and 8 concurrent chunks", arguments: [1, 2, 3, 8])
    func chunkCountIndependence(chunks: Int) {
        let n = 100_003
        let serialU = RandomGenerator(seed: 42).uniform(n, chunks: 1)
        let serialN = RandomGenerator(seed: 42).normal(n, chunks: 1)
        #expect(RandomGenerator(seed: 42).uniform(n, chunks: chunks) == serialU)
        #expect(RandomGenerator(seed: 42).normal(n, chunks: chunks) == serialN)
    }

    @Test("a short draw is the prefix of a long draw from the same seed")
    func prefixProperty() {
        let long = RandomGenerator(seed: 7).uniform(1000)
        #expect(RandomGenerator(seed: 7).uniform(10) == Array(long.prefix(10)))
    }

    @Test("a generator restored from (seed, counter) continues the same stream")
    func resumeFromCounter() {
        let g = RandomGenerator(seed: 3)
        _ = g.uniform(17)
        let restored = RandomGenerator(seed: g.seed, counter: g.counter)
        #expect(g.normal(50) == restored.normal(50))
        #expect(g.permutation(20) == restored.permutation(20))
    }

    @Test("Philox4x32-10 matches the published known-answer vector")
    func philoxKnownAnswer() {
        // Random123's kat_vectors: philox4x32_10 with counter 0 and key 0 gives
        // 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
        let block = Philox.block(key: 0, counter: 0)
        #expect([block.0, block.1, block.2, block.3] == [0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8])
    }
}
