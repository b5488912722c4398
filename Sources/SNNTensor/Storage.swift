import Foundation

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
        data = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 64))
    }

    /// Allocates `byteCount` bytes without zeroing them; the caller writes every byte.
    public init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        data = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
    }

    deinit { data.deallocate() }
}
