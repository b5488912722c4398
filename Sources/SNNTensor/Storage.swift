import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A reference-counted, 64-byte aligned block of host memory.
///
/// Tensors share storages: views (reshape, permute, slice, expand) point into the same block.
/// Writes through one view are visible through the others; ops never write into their inputs
/// except the explicitly in-place optimiser updates.
public final class Storage: @unchecked Sendable {
    /// The first byte.
    public let data: UnsafeMutableRawPointer
    /// The size in bytes.
    public let byteCount: Int

    /// Keeps freed blocks in the heap instead of returning them to the kernel.
    ///
    /// Training allocates and frees the same large activation sizes every step; glibc's default
    /// serves them with fresh `mmap`s, and the page faults and zeroing of new pages then cost
    /// as much as the arithmetic. Raising the mmap and trim thresholds lets freed blocks be
    /// reused.
    private static let heapConfigured: Bool = {
        #if os(Linux)
        // glibc's mallopt is not in Swift's Glibc module (malloc.h); look it up.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
            _ = mallopt(-3, 1 << 30)  // M_MMAP_THRESHOLD
            _ = mallopt(-1, 1 << 30)  // M_TRIM_THRESHOLD
        }
        #endif
        return true
    }()

    /// Allocates `byteCount` bytes, zero-filled.
    public init(byteCount: Int) {
        _ = Storage.heapConfigured
        self.byteCount = byteCount
        data = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 64))
        Storage.account(byteCount)
    }

    /// Allocates `byteCount` bytes without zeroing them; the caller writes every byte.
    public init(uninitializedByteCount byteCount: Int) {
        _ = Storage.heapConfigured
        self.byteCount = byteCount
        data = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        Storage.account(byteCount)
    }

    deinit {
        data.deallocate()
        Storage.account(-byteCount)
    }

    // MARK: - Live bytes

    private static let counterLock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0

    private static func account(_ delta: Int) {
        counterLock.lock()
        live += delta
        if live > peak { peak = live }
        counterLock.unlock()
    }

    /// Bytes held by all storages now: what tensors, saved activations and optimiser state
    /// occupy (library scratch space is not counted).
    public static var liveByteCount: Int {
        counterLock.lock()
        defer { counterLock.unlock() }
        return live
    }

    /// The highest ``liveByteCount`` since the last ``resetPeakByteCount()``.
    public static var peakByteCount: Int {
        counterLock.lock()
        defer { counterLock.unlock() }
        return peak
    }

    /// Starts a new peak measurement from the current live bytes.
    public static func resetPeakByteCount() {
        counterLock.lock()
        peak = live
        counterLock.unlock()
    }
}
