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
/// ``cacheLimit`` bytes (`SNN_HOST_CACHE_MIB`, default 256) and unmap anything beyond.
final class HostAllocator: @unchecked Sendable {
    static let shared = HostAllocator()

    /// Blocks from this size on are mapped and cached; smaller ones come from `malloc`.
    static let largeBlock = 1 << 20
    private static let page = 1 << 16

    let cacheLimit: Int
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cachedBytes = 0

    private init() {
        let mib = ProcessInfo.processInfo.environment["SNN_HOST_CACHE_MIB"].flatMap(Int.init) ?? 256
        cacheLimit = max(0, mib) << 20
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
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if p == MAP_FAILED { return nil }
        return p
    }

    /// Returns a block from ``allocate(_:)`` of the same `byteCount`.
    func deallocate(_ p: UnsafeMutableRawPointer, _ byteCount: Int) {
        let size = HostAllocator.blockSize(byteCount)
        guard size >= HostAllocator.largeBlock else { Glibc.free(p); return }
        lock.lock()
        if cachedBytes + size <= cacheLimit {
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
