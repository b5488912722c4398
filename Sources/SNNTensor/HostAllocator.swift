import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Host memory for tensor storages: small blocks from `malloc`, large ones mapped from the
/// kernel and cached by size for reuse.
///
/// A training step allocates and frees the same large activation sizes every step. Through
/// glibc's heap they fragment it (VGGSNN at T=10 left a 2.7 GB heap for 1.5 GB of live tensors),
/// and through plain `mmap`/`munmap` every step pays page faults and zeroing for fresh pages.
/// So blocks of at least ``largeBlock`` bytes are mapped directly and, when freed, kept in a
/// per-size free list that the next allocation of that size takes; the free lists hold at most
/// ``cacheLimit`` bytes and unmap anything beyond.
final class HostAllocator: @unchecked Sendable {
    static let shared = HostAllocator()

    /// Blocks from this size on are mapped and cached; smaller ones come from `malloc`.
    static let largeBlock = 1 << 20
    private static let page = 1 << 16

    /// A fixed limit from `SNN_HOST_CACHE_MIB`, else `nil`: the limit follows the tensors'
    /// high-water mark (see ``cacheLimit``).
    private let fixedLimit: Int?
    /// The share of the tensors' high-water mark the free lists may hold (`SNN_HOST_CACHE_SHARE`).
    private let share: Double
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cachedBytes = 0

    private init() {
        let environment = ProcessInfo.processInfo.environment
        fixedLimit = environment["SNN_HOST_CACHE_MIB"].flatMap(Int.init).map { max(0, $0) << 20 }
        share = environment["SNN_HOST_CACHE_SHARE"].flatMap(Double.init) ?? 0.5
    }

    /// The most bytes the free lists hold: `SNN_HOST_CACHE_MIB` when set, else 256 MiB or half
    /// the most bytes tensors have held at once, whichever is larger. A step then finds most of
    /// its blocks where the previous step left them (a cache smaller than one step's largest
    /// activations thrashes: every free unmaps, every allocation faults fresh zeroed pages),
    /// while what is mapped stays within 1.5× the tensors' high-water mark. Half rather than
    /// three quarters: in `snn bench train` VGGSNN (T=10, batch 16) then ran at 3.20–3.22
    /// samples/s in 1,385 MiB instead of 2.99–3.01 in 1,597 (its pooling took 0.03 s a step
    /// instead of 0.15), ResNet-19 (T=4) as fast in 1,208 MiB instead of 1,245.
    var cacheLimit: Int {
        fixedLimit ?? max(256 << 20, Int(Double(Storage.highWaterByteCount) * share))
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
        if let p = free[size]?.popLast() {
            cachedBytes -= size
            lock.unlock()
            return p
        }
        lock.unlock()
        return HostAllocator.map(size)
    }

    /// A fresh mapping of `size` bytes (a multiple of 64 KiB), 2 MiB aligned and marked for
    /// transparent huge pages: the first touch of a 256 MB activation then takes 128 page
    /// faults instead of 65,536.
    private static func map(_ size: Int) -> UnsafeMutableRawPointer? {
        let huge = 1 << 21
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

    /// Returns a block from ``allocate(_:)`` of the same `byteCount`.
    func deallocate(_ p: UnsafeMutableRawPointer, _ byteCount: Int) {
        let size = HostAllocator.blockSize(byteCount)
        guard size >= HostAllocator.largeBlock else { Glibc.free(p); return }
        let limit = cacheLimit
        lock.lock()
        if cachedBytes + size <= limit {
            free[size, default: []].append(p)
            cachedBytes += size
            lock.unlock()
            return
        }
        lock.unlock()
        munmap(p, size)
    }

    /// Unmaps every cached block.
    func trim() {
        lock.lock()
        let blocks = free
        free = [:]
        cachedBytes = 0
        lock.unlock()
        for (size, list) in blocks { for p in list { munmap(p, size) } }
    }
}
