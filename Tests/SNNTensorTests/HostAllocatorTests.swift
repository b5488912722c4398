@testable import SNNTensor
import Testing

/// The host allocator's large blocks: reuse across sizes, splitting, merging, the cache limit, and
/// blocks that never overlap.
@Suite struct HostAllocatorTests {
    static let mib = 1 << 20

    /// Allocates `mib` MiB and fills it with `byte`.
    private func take(_ a: HostAllocator, _ mib: Int, fill byte: UInt8) -> UnsafeMutableRawPointer {
        let p = a.allocate(mib * Self.mib)!
        p.initializeMemory(as: UInt8.self, repeating: byte, count: mib * Self.mib)
        return p
    }

    private func holds(_ p: UnsafeMutableRawPointer, _ mib: Int, _ byte: UInt8) -> Bool {
        let bytes = UnsafeRawBufferPointer(start: p, count: mib * Self.mib)
        return bytes.allSatisfy { $0 == byte }
    }

    @Test func aFreedBlockServesTheNextRequestOfItsSize() {
        let a = HostAllocator(fixedLimit: 1 << 30)
        let p = take(a, 4, fill: 1)
        #expect(a.mappedByteCount == 4 * Self.mib)
        a.deallocate(p, 4 * Self.mib)
        #expect(a.freeByteCount == 4 * Self.mib)
        let q = a.allocate(4 * Self.mib)
        #expect(q == p)
        #expect(a.mappedByteCount == 4 * Self.mib && a.freeByteCount == 0)
        a.deallocate(q!, 4 * Self.mib)
        a.trim()
        #expect(a.mappedByteCount == 0)
    }

    /// The exact-size free lists this replaced served only requests of the freed size: a step whose
    /// sizes changed mapped fresh memory (page faults and zeroing) while the cache held the rest.
    @Test func smallerRequestsSplitAFreedBlockAndFreedNeighboursMerge() {
        let a = HostAllocator(fixedLimit: 1 << 30)
        let big = take(a, 8, fill: 0)
        a.deallocate(big, 8 * Self.mib)
        let x = take(a, 3, fill: 3), y = take(a, 5, fill: 5)
        #expect(a.mappedByteCount == 8 * Self.mib)
        #expect(Set([x, y]).contains(big))
        #expect(holds(x, 3, 3) && holds(y, 5, 5))
        a.deallocate(x, 3 * Self.mib)
        a.deallocate(y, 5 * Self.mib)
        // Merged back into one block of 8 MiB.
        #expect(a.allocate(8 * Self.mib) == big)
        #expect(a.mappedByteCount == 8 * Self.mib)
        a.deallocate(big, 8 * Self.mib)
        a.trim()
    }

    /// Merging on either side, in every order of frees, leaves one free block per segment.
    @Test(arguments: [[0, 1, 2], [2, 1, 0], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1]])
    func freesInAnyOrderMergeIntoOneBlock(order: [Int]) {
        let a = HostAllocator(fixedLimit: 1 << 30)
        let whole = a.allocate(6 * Self.mib)!
        a.deallocate(whole, 6 * Self.mib)
        let parts = [take(a, 1, fill: 10), take(a, 2, fill: 20), take(a, 3, fill: 30)]
        let sizes = [1, 2, 3]
        #expect(a.mappedByteCount == 6 * Self.mib)
        for i in order { a.deallocate(parts[i], sizes[i] * Self.mib) }
        #expect(a.freeByteCount == 6 * Self.mib)
        #expect(a.allocate(6 * Self.mib) == whole)
        a.deallocate(whole, 6 * Self.mib)
        a.trim()
        #expect(a.mappedByteCount == 0)
    }

    /// A training step's pattern (activations of several sizes allocated in the forward pass,
    /// gradients in the backward pass, freed in another order) settles: after the first step
    /// nothing more is mapped, and live blocks never overlap.
    @Test func repeatedStepsRunInTheMemoryTheFirstMapped() {
        let a = HostAllocator(fixedLimit: 1 << 30)
        var mapped: [Int] = []
        for _ in 0..<4 {
            var saved: [(UnsafeMutableRawPointer, Int, UInt8)] = []
            for (i, mib) in [8, 8, 4, 4, 2, 2, 1, 1].enumerated() {
                saved.append((take(a, mib, fill: UInt8(i + 1)), mib, UInt8(i + 1)))
            }
            var gradients: [(UnsafeMutableRawPointer, Int, UInt8)] = []
            while let (p, mib, byte) = saved.popLast() {
                #expect(holds(p, mib, byte))
                let g = take(a, mib * 2 > 8 ? mib : mib * 2, fill: 100 + byte)
                gradients.append((g, mib * 2 > 8 ? mib : mib * 2, 100 + byte))
                a.deallocate(p, mib * Self.mib)
                if gradients.count > 2 {
                    let (q, n, b) = gradients.removeFirst()
                    #expect(holds(q, n, b))
                    a.deallocate(q, n * Self.mib)
                }
            }
            for (q, n, b) in gradients {
                #expect(holds(q, n, b))
                a.deallocate(q, n * Self.mib)
            }
            mapped.append(a.mappedByteCount)
            #expect(a.freeByteCount == a.mappedByteCount)
        }
        #expect(Set(mapped.dropFirst()).count == 1 && mapped[1] == mapped[0], "mapped bytes per step: \(mapped)")
        a.trim()
        #expect(a.mappedByteCount == 0)
    }

    @Test func freeBytesBeyondTheLimitAreUnmapped() {
        let a = HostAllocator(fixedLimit: 4 * Self.mib)
        let p = take(a, 4, fill: 1), q = take(a, 6, fill: 2)
        a.deallocate(p, 4 * Self.mib)
        #expect(a.mappedByteCount == 10 * Self.mib)
        a.deallocate(q, 6 * Self.mib)
        // 10 MiB free against a limit of 4: the 6 MiB segment goes, the 4 MiB one stays.
        #expect(a.mappedByteCount == 4 * Self.mib && a.freeByteCount == 4 * Self.mib)
        a.trim()
        #expect(a.mappedByteCount == 0)
    }

    @Test func smallBlocksComeFromTheHeap() {
        let a = HostAllocator(fixedLimit: nil)
        let p = a.allocate(1000)!
        #expect(Int(bitPattern: p) % 64 == 0)
        #expect(a.mappedByteCount == 0)
        a.deallocate(p, 1000)
    }
}
