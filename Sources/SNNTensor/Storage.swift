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

    /// Allocates `byteCount` bytes, zero-filled.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        data = Storage.allocate(byteCount)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 64))
        Storage.account(byteCount)
    }

    /// Allocates `byteCount` bytes without zeroing them; the caller writes every byte.
    public init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        data = Storage.allocate(byteCount)
        Storage.account(byteCount)
    }

    deinit {
        HostAllocator.shared.deallocate(data, byteCount)
        Storage.account(-byteCount)
    }

    private static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        precondition(byteCount >= 0, "[Storage] expected a non-negative size, got \(byteCount)")
        guard let p = HostAllocator.shared.allocate(byteCount) else {
            fatalError("[Storage] out of host memory allocating \(byteCount) bytes (\(liveByteCount) bytes held by tensors)")
        }
        return p
    }

    // MARK: - Live bytes

    private static let counterLock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0
    nonisolated(unsafe) private static var highWater = 0

    private static func account(_ delta: Int) {
        counterLock.lock()
        live += delta
        if live > peak { peak = live }
        if live > highWater { highWater = live }
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

    /// The highest ``liveByteCount`` since the process started (never reset).
    public static var highWaterByteCount: Int {
        counterLock.lock()
        defer { counterLock.unlock() }
        return highWater
    }

    /// Starts a new peak measurement from the current live bytes.
    public static func resetPeakByteCount() {
        counterLock.lock()
        peak = live
        counterLock.unlock()
    }
}
