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

    /// Allocates `byteCount` bytes of host memory, zero-filled; traps when there is none.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        data = Storage.allocate(byteCount)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 64))
        release = nil
        Storage.account(byteCount)
    }

    /// Allocates `byteCount` bytes of host memory without zeroing them (the caller writes every
    /// byte); traps when there is none.
    public init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        data = Storage.allocate(byteCount)
        release = nil
        Storage.account(byteCount)
    }

    /// Allocates `byteCount` bytes of host memory for a tensor on `device` (contents undefined),
    /// or throws ``DeviceError/outOfMemory(device:bytes:held:)`` when the system has none or the
    /// tensors would exceed ``hostMemoryLimit``.
    public init(hostByteCount byteCount: Int, device: Device) throws(DeviceError) {
        precondition(byteCount >= 0, "[Storage] expected a non-negative size, got \(byteCount)")
        let held = Storage.liveByteCount
        if let limit = Storage.hostMemoryLimit, held + byteCount > limit {
            throw .outOfMemory(device: device, bytes: byteCount, held: held)
        }
        guard let p = HostAllocator.shared.allocate(byteCount) else {
            throw .outOfMemory(device: device, bytes: byteCount, held: held)
        }
        self.byteCount = byteCount
        data = p
        release = nil
        Storage.account(byteCount)
    }

    /// Adopts memory a device allocator returned; `release` gives it back when the last tensor
    /// using it goes. The bytes count towards ``liveByteCount``.
    public init(adopting data: UnsafeMutableRawPointer, byteCount: Int,
                release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void) {
        self.byteCount = byteCount
        self.data = data
        self.release = release
        Storage.account(byteCount)
    }

    private let release: (@Sendable (UnsafeMutableRawPointer, Int) -> Void)?

    /// One-byte codes made of a contiguous run of this storage's spikes by ``SavedActivation``,
    /// while any gradient rule still keeps them: a second rule that saves the same values (a
    /// residual block's convolution and its shortcut read the same spikes) shares them instead of
    /// casting again and holding a second copy. Guarded by ``compactCodesLock``.
    var compactCodes: [CompactCodes] = []
    static let compactCodesLock = NSLock()

    /// Stops sharing codes made of this storage, whose values have been overwritten (rules that
    /// keep them still restore what they saved).
    func forgetCompactCodes() {
        Storage.compactCodesLock.lock()
        compactCodes.removeAll()
        Storage.compactCodesLock.unlock()
    }

    /// The codes of `count` elements at `offset`, spikes of quantum `quantum`.
    struct CompactCodes {
        let offset: Int, count: Int, quantum: Double
        weak var codes: Storage?
    }

    deinit {
        if let release { release(data, byteCount) } else { HostAllocator.shared.deallocate(data, byteCount) }
        Storage.account(-byteCount)
    }

    private static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
        precondition(byteCount >= 0, "[Storage] expected a non-negative size, got \(byteCount)")
        guard let p = HostAllocator.shared.allocate(byteCount) else {
            fatalError("[Storage] out of host memory allocating \(byteCount) bytes (\(liveByteCount) bytes held by tensors)")
        }
        return p
    }

    /// The most bytes host tensors may hold at once (`SNN_HOST_MEMORY_LIMIT_MIB`), or `nil` for
    /// no limit but the system's. Beyond it an allocation fails with an out-of-memory error
    /// instead of the process being killed by the kernel.
    nonisolated(unsafe) public static var hostMemoryLimit: Int? =
        ProcessInfo.processInfo.environment["SNN_HOST_MEMORY_LIMIT_MIB"].flatMap(Int.init).map { max(0, $0) << 20 }

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
