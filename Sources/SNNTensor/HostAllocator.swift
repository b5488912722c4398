import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Host memory for tensor storages: small blocks from `malloc`, large ones carved out of
/// segments mapped from the kernel and kept for reuse.
///
/// A training step allocates and frees the same large activation sizes every step. Through
/// glibc's heap they fragment it (VGGSNN at T=10 left a 2.7 GB heap for 1.5 GB of live tensors),
/// and through plain `mmap`/`munmap` every step pays page faults and zeroing for fresh pages.
/// So blocks of at least ``largeBlock`` bytes come from segments this allocator maps (2 MiB
/// aligned, huge pages advised): a request takes the smallest free block that holds it, split
/// when larger, and a freed block merges with free neighbours in its segment. A step then runs
/// in the memory the previous ones mapped, whatever sizes it asks for in whatever order; only
/// when the free bytes exceed ``cacheLimit`` are wholly free segments unmapped.
///
/// An earlier version kept freed blocks in free lists of their exact size: a freed block served
/// only a request of the same size, so with a cache of half the tensors' high-water mark
/// ResNet-19 (T=4, batch 16) unmapped and mapped again a few hundred MiB a step, and the kernel's
/// zeroing of fresh pages took 17 % of its CPU time (`perf record`), while a larger cache held
/// blocks of the wrong sizes at the step's peak (1,375 MiB resident for 900 MiB of tensors).
final class HostAllocator: @unchecked Sendable {
    static let shared = HostAllocator()

    /// Blocks from this size on come from the segments; smaller ones come from `malloc`.
    static let largeBlock = 1 << 20
    /// Large blocks are whole multiples of this, so that every block stays 64 KiB aligned.
    private static let page = 1 << 16
    /// Segments are whole multiples of this (and aligned to it): a transparent huge page.
    private static let hugePage = 1 << 21

    /// A fixed limit from `SNN_HOST_CACHE_MIB`, else `nil`: the limit follows the tensors'
    /// high-water mark (see ``cacheLimit``).
    private let fixedLimit: Int?
    /// The share of the tensors' high-water mark the free blocks may hold (`SNN_HOST_CACHE_SHARE`).
    private let share: Double

    /// A block of a segment, free or in use; blocks tile their segment without gaps.
    private struct Block {
        var size: Int
        /// The address of the block just before this one in its segment (`nil`: the first).
        var previous: Int?
        var isFree: Bool
        /// The segment's first address.
        let segment: Int
    }

    private let lock = NSLock()
    /// Every block of every segment, by address.
    private var blocks: [Int: Block] = [:]
    /// Mapped segments: first address → size.
    private var segments: [Int: Int] = [:]
    /// The free blocks, ordered by size then address (best fit is a binary search).
    private var freeBlocks: [(size: Int, address: Int)] = []
    private var freeBytes = 0

    private convenience init() {
        let environment = ProcessInfo.processInfo.environment
        self.init(fixedLimit: environment["SNN_HOST_CACHE_MIB"].flatMap(Int.init).map { max(0, $0) << 20 },
                  share: environment["SNN_HOST_CACHE_SHARE"].flatMap(Double.init) ?? 2)
    }

    /// An allocator of its own (tests); ``shared`` is the one storages use.
    init(fixedLimit: Int?, share: Double = 2) {
        self.fixedLimit = fixedLimit
        self.share = share
    }

    /// The most free bytes the segments keep mapped: `SNN_HOST_CACHE_MIB` when set, else 256 MiB
    /// or twice the most bytes tensors have held at once (`SNN_HOST_CACHE_SHARE`, default 2),
    /// whichever is larger. Beyond it, wholly free segments are unmapped. Twice, so that a
    /// training step keeps what it mapped: with half, VGGSNN (T=10, batch 16) unmapped about
    /// 1 GB as its backward pass freed the saved activations and faulted it in again, zeroed,
    /// in the next forward pass, and ran at 4.12–4.73 samples/s in 1,328 MiB against 5.21–5.74
    /// in 1,553 (ResNet-19, T=4: 6.21–6.81 in 1,117 MiB against 6.58–7.14 in 1,134; three
    /// interleaved rounds of `snn bench train`).
    var cacheLimit: Int {
        fixedLimit ?? max(256 << 20, Int(Double(Storage.highWaterByteCount) * share))
    }

    /// Bytes mapped for large blocks now, in use or free.
    var mappedByteCount: Int {
        lock.withLock { segments.values.reduce(0, +) }
    }

    /// Bytes of large blocks free for reuse now.
    var freeByteCount: Int {
        lock.withLock { freeBytes }
    }

    /// The bytes actually reserved for a request of `byteCount`.
    private static func blockSize(_ byteCount: Int) -> Int {
        byteCount < largeBlock ? max(byteCount, 64) : (byteCount + page - 1) / page * page
    }

    /// 64-byte aligned memory of at least `byteCount` bytes (contents undefined), or `nil` when
    /// the system has none.
    func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        let size = HostAllocator.blockSize(byteCount)
        guard size >= HostAllocator.largeBlock else {
            var p: UnsafeMutableRawPointer?
            return posix_memalign(&p, 64, size) == 0 ? p : nil
        }
        lock.lock()
        if let address = takeBestFit(size) {
            lock.unlock()
            return UnsafeMutableRawPointer(bitPattern: address)
        }
        lock.unlock()
        let segmentSize = (size + HostAllocator.hugePage - 1) / HostAllocator.hugePage * HostAllocator.hugePage
        guard let p = HostAllocator.map(segmentSize) else {
            // Out of address space or memory: give back what is wholly free and try once more.
            trim()
            return HostAllocator.map(segmentSize).map { adopt($0, segmentSize: segmentSize, using: size) }
        }
        return adopt(p, segmentSize: segmentSize, using: size)
    }

    /// Records a fresh segment whose first `size` bytes are handed out and the rest is free.
    private func adopt(_ p: UnsafeMutableRawPointer, segmentSize: Int, using size: Int) -> UnsafeMutableRawPointer {
        let address = Int(bitPattern: p)
        lock.withLock {
            segments[address] = segmentSize
            blocks[address] = Block(size: size, previous: nil, isFree: false, segment: address)
            if segmentSize > size {
                blocks[address + size] = Block(size: segmentSize - size, previous: address, isFree: true, segment: address)
                insertFree(address + size, segmentSize - size)
            }
        }
        return p
    }

    /// Takes the smallest free block of at least `size` bytes, splitting off the rest; the lock
    /// is held.
    private func takeBestFit(_ size: Int) -> Int? {
        let i = freeIndex(size: size, address: 0)
        guard i < freeBlocks.count else { return nil }
        let (found, address) = freeBlocks[i]
        removeFree(at: i)
        blocks[address]!.isFree = false
        if found > size {
            let segment = blocks[address]!.segment
            let rest = address + size
            blocks[address]!.size = size
            blocks[rest] = Block(size: found - size, previous: address, isFree: true, segment: segment)
            setPrevious(of: address + found, in: segment, to: rest)
            insertFree(rest, found - size)
        }
        return address
    }

    /// Returns a block from ``allocate(_:)`` of the same `byteCount`.
    func deallocate(_ p: UnsafeMutableRawPointer, _ byteCount: Int) {
        let size = HostAllocator.blockSize(byteCount)
        guard size >= HostAllocator.largeBlock else { Glibc.free(p); return }
        let limit = cacheLimit
        var release: [(Int, Int)] = []
        lock.lock()
        var address = Int(bitPattern: p)
        guard var block = blocks[address], !block.isFree, block.size == size else {
            lock.unlock()
            preconditionFailure("[HostAllocator] freeing \(p), which is not an allocated block of \(size) bytes")
        }
        let end = block.segment + segments[block.segment]!
        // Merge with the free block after this one, then with the free block before.
        let next = address + block.size
        if next < end, let after = blocks[next], after.isFree {
            removeFree(next, after.size)
            blocks[next] = nil
            block.size += after.size
        }
        if let before = block.previous, let earlier = blocks[before], earlier.isFree {
            removeFree(before, earlier.size)
            blocks[address] = nil
            address = before
            block = Block(size: earlier.size + block.size, previous: earlier.previous, isFree: true, segment: block.segment)
        }
        block.isFree = true
        blocks[address] = block
        setPrevious(of: address + block.size, in: block.segment, to: address)
        insertFree(address, block.size)
        if freeBytes > limit { release = takeFreeSegments(keeping: limit) }
        lock.unlock()
        for (start, length) in release { munmap(UnsafeMutableRawPointer(bitPattern: start), length) }
    }

    /// Unmaps every wholly free segment.
    func trim() {
        lock.lock()
        let release = takeFreeSegments(keeping: 0)
        lock.unlock()
        for (start, length) in release { munmap(UnsafeMutableRawPointer(bitPattern: start), length) }
    }

    /// Removes wholly free segments, largest first, until at most `limit` free bytes remain, and
    /// returns them for unmapping outside the lock; the lock is held.
    private func takeFreeSegments(keeping limit: Int) -> [(Int, Int)] {
        var whole = freeBlocks.filter { blocks[$0.address]!.previous == nil && segments[$0.address] == $0.size }
        var release: [(Int, Int)] = []
        while freeBytes > limit, let (size, address) = whole.popLast() {
            removeFree(address, size)
            blocks[address] = nil
            segments[address] = nil
            release.append((address, size))
        }
        return release
    }

    /// Points the block at `address`, when it lies in `segment`, back at `previous`.
    private func setPrevious(of address: Int, in segment: Int, to previous: Int) {
        if address < segment + segments[segment]!, blocks[address] != nil { blocks[address]!.previous = previous }
    }

    /// The position of `(size, address)` in ``freeBlocks``, or where it would go.
    private func freeIndex(size: Int, address: Int) -> Int {
        var (low, high) = (0, freeBlocks.count)
        while low < high {
            let mid = (low + high) / 2
            let entry = freeBlocks[mid]
            if entry.size < size || (entry.size == size && entry.address < address) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private func insertFree(_ address: Int, _ size: Int) {
        freeBlocks.insert((size, address), at: freeIndex(size: size, address: address))
        freeBytes += size
    }

    private func removeFree(_ address: Int, _ size: Int) {
        removeFree(at: freeIndex(size: size, address: address))
    }

    private func removeFree(at i: Int) {
        freeBytes -= freeBlocks[i].size
        freeBlocks.remove(at: i)
    }

    /// A fresh mapping of `size` bytes (a multiple of 2 MiB), 2 MiB aligned and marked for
    /// transparent huge pages: the first touch of a 256 MB activation then takes 128 page
    /// faults instead of 65,536.
    private static func map(_ size: Int) -> UnsafeMutableRawPointer? {
        let huge = hugePage
        guard let raw = mmap(nil, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else { return nil }
        let start = Int(bitPattern: raw), aligned = (start + huge - 1) / huge * huge
        if aligned > start { munmap(raw, aligned - start) }
        let end = start + size + huge, alignedEnd = aligned + size
        if end > alignedEnd, let tail = UnsafeMutableRawPointer(bitPattern: alignedEnd) { munmap(tail, end - alignedEnd) }
        guard let p = UnsafeMutableRawPointer(bitPattern: aligned) else { return nil }
        _ = madvise(p, size, 14)  // MADV_HUGEPAGE; advice only, failure is harmless
        return p
    }
}
