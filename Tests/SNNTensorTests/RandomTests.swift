import SNNTensor
import SNNTestSupport
import Testing

@Suite("random generator")
struct RandomTests {
    private func meanAndStd(_ v: [Float]) -> (Double, Double) {
        let n = Double(v.count)
        let mean = v.reduce(0.0) { $0 + Double($1) } / n
        let variance = v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return (mean, variance.squareRoot())
    }

    @Test("the same seed gives the same numbers; different seeds differ")
    func seeding() {
        #expect(RandomGenerator(seed: 1).uniform(100) == RandomGenerator(seed: 1).uniform(100))
        #expect(RandomGenerator(seed: 1).normal(100) == RandomGenerator(seed: 1).normal(100))
        #expect(RandomGenerator(seed: 1).permutation(50) == RandomGenerator(seed: 1).permutation(50))
        #expect(RandomGenerator(seed: 1).uniform(100) != RandomGenerator(seed: 2).uniform(100))
        #expect(RandomGenerator(seed: 1).normal(100) != RandomGenerator(seed: 2).normal(100))
        // Successive draws from one generator differ too.
        let g = RandomGenerator(seed: 1)
        #expect(g.uniform(100) != g.uniform(100))
        let a = Tensor.normal([4, 5], generator: RandomGenerator(seed: 3), device: .reference)
        let b = Tensor.normal([4, 5], generator: RandomGenerator(seed: 3), device: .reference)
        assertClose(a, b, .exact)
        #expect(RandomGenerator(seed: 3).derived(1).uniform(10) != RandomGenerator(seed: 3).derived(2).uniform(10))
    }

    @Test("uniform: values in [0, 1), mean 1/2 and variance 1/12 over 100k samples")
    func uniformStatistics() {
        let u = RandomGenerator(seed: 10).uniform(100_000)
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let (mean, std) = meanAndStd(u)
        // The standard error of the mean is √(1/12)/√1e5 ≈ 0.0009.
        #expect(Swift.abs(mean - 0.5) < Tolerance.statistical100k / 4, "mean \(mean)")
        #expect(Swift.abs(std * std - 1.0 / 12) < 0.002, "variance \(std * std)")
        let t = Tensor.uniform([1000], low: -2, high: 3, generator: RandomGenerator(seed: 11), device: .reference)
            .toDoubles()
        #expect(t.allSatisfy { $0 >= -2 && $0 < 3 })
    }

    @Test("normal: mean 0 and standard deviation 1 over 100k samples")
    func normalStatistics() {
        let z = RandomGenerator(seed: 12).normal(100_000)
        #expect(z.allSatisfy { $0.isFinite })
        let (mean, std) = meanAndStd(z)
        #expect(Swift.abs(mean) < Tolerance.statistical100k, "mean \(mean)")
        #expect(Swift.abs(std - 1) < Tolerance.statistical100k, "std \(std)")
        // About 68.3% within one standard deviation.
        let within = Double(z.filter { Swift.abs($0) < 1 }.count) / 1e5
        #expect(Swift.abs(within - 0.6827) < 0.01, "fraction within 1σ \(within)")
        let t = Tensor.normal([100_000], mean: 3, std: 0.5, generator: RandomGenerator(seed: 13), device: .reference)
        let (tm, ts) = meanAndStd(t.toFloats())
        #expect(Swift.abs(tm - 3) < 0.01 && Swift.abs(ts - 0.5) < 0.01, "mean \(tm) std \(ts)")
    }

    @Test("permutation is a permutation of 0..<n", arguments: [0, 1, 2, 17, 1000])
    func permutation(n: Int) {
        let p = RandomGenerator(seed: 14).permutation(n)
        #expect(p.sorted() == Array(0..<n))
        if n >= 17 { #expect(p != Array(0..<n), "a shuffle of \(n) elements moved something") }
    }

    @Test("permutation is roughly uniform: each element lands in each position about equally")
    func permutationUniformity() {
        // 6000 permutations of 3: each of the 3 values appears at position 0 about 2000 times
        // (binomial standard deviation ≈ 37).
        let g = RandomGenerator(seed: 15)
        var counts = [0, 0, 0]
        for _ in 0..<6000 { counts[g.permutation(3)[0]] += 1 }
        #expect(counts.allSatisfy { Swift.abs($0 - 2000) < 250 }, "\(counts)")
    }

    @Test("integer(below:) stays in range and covers it")
    func integers() {
        let g = RandomGenerator(seed: 16)
        let draws = (0..<1000).map { _ in g.integer(below: 7) }
        #expect(draws.allSatisfy { (0..<7).contains($0) })
        #expect(Set(draws).count == 7)
    }

    @Test("bernoulli rate matches the probability", arguments: [0.0, 0.1, 0.5, 0.9, 1.0])
    func bernoulli(p: Double) {
        let t = Tensor.bernoulli([100_000], probability: p, generator: RandomGenerator(seed: 17), device: .reference)
        let v = t.toDoubles()
        #expect(v.allSatisfy { $0 == 0 || $0 == 1 })
        let rate = v.reduce(0, +) / 1e5
        // Standard error √(p(1-p)/1e5) ≤ 0.0016.
        #expect(Swift.abs(rate - p) < 0.01, "rate \(rate)")
    }
}
