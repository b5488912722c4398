import CCUDA
import Foundation

/// Host-to-device copies through page-locked memory: the bytes are copied into one of two
/// page-locked buffers and the transfer is queued from there, so the call returns as soon as the
/// bytes are staged and the transfer overlaps whatever the host and the GPU do next (a copy from
/// ordinary pageable memory makes the driver stage it itself, holding the caller). A buffer is
/// reused once the event recorded after its last transfer has completed; buffers grow to the
/// largest transfer seen.
final class PinnedStaging: @unchecked Sendable {
    /// Copies smaller than this go straight from pageable memory (staging buys nothing there).
    static let threshold = 64 << 10

    private struct Slot {
        var buffer: UnsafeMutableRawPointer?
        var capacity = 0
        var event: snn_CUevent?
    }

    private let device: CUDADevice
    private let lock = NSLock()
    private var slots = [Slot(), Slot()]
    private var next = 0

    init(device: CUDADevice) { self.device = device }

    deinit {
        for slot in slots {
            if let event = slot.event {
                try? device.wait(for: event)
                device.destroy(event)
            }
            if let buffer = slot.buffer { device.freePinned(buffer) }
        }
    }

    /// Queues a copy of `bytes` host bytes to `address`; the host memory may be reused when this
    /// returns.
    func upload(_ host: UnsafeRawPointer, to address: snn_CUdeviceptr, bytes: Int) throws {
        guard bytes >= PinnedStaging.threshold else {
            try device.copy(from: host, to: address, bytes: bytes)
            return
        }
        lock.lock()
        defer { lock.unlock() }
        var slot = slots[next]
        if let event = slot.event { try device.wait(for: event) }   // its previous transfer is done
        if slot.capacity < bytes {
            if let old = slot.buffer { device.freePinned(old) }
            slot.buffer = nil
            slot.buffer = try device.allocatePinned(bytes: bytes)
            slot.capacity = bytes
        }
        if slot.event == nil { slot.event = try device.makeEvent() }
        slots[next] = slot
        guard let buffer = slot.buffer, let event = slot.event else { return }
        buffer.copyMemory(from: host, byteCount: bytes)
        try device.copy(from: UnsafeRawPointer(buffer), to: address, bytes: bytes)
        try device.record(event)
        next = (next + 1) % slots.count
    }
}
