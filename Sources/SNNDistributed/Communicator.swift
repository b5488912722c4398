import Foundation
import SNNTensor

/// The collectives data-parallel training needs, over the processes of one job (MPI on CPUs,
/// NCCL on GPUs). Every rank calls the same collectives in the same order; a collective returns
/// when this rank's part is done. Errors name the collective, the rank and the cause.
public protocol Communicator: AnyObject {
    /// This process's index, 0..<size.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// What carries the collectives, for messages: `MPI (Open MPI 4.1.4)`, `single process`.
    var backendName: String { get }
    /// Sums `buffer` over all ranks, in place: every rank ends with the same sum.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Sums `buffer` over all ranks, in place (counters and metrics).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Copies `root`'s bytes into every other rank's `buffer`.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Ends every process of the job with exit status `code`: a process that fails alone must
    /// not leave the others waiting in a collective forever.
    func abort(code: Int32) -> Never
    /// Starts summing `buffer` over all ranks in place and returns at once; the sum is there when
    /// the handle's `wait()` returns, and the buffer must not be touched before. Every rank
    /// starts the same collectives in the same order.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingCollective
    /// Collectives the GPUs run themselves (NCCL), for tensors on their device; `nil`: tensors in
    /// device memory go through host copies.
    var deviceCollectives: (any DeviceCollectives)? { get }
}

/// A collective started by ``Communicator/startAllReduceSum(_:)``.
public protocol PendingCollective: AnyObject {
    /// Returns when this rank's part is done.
    func wait() throws
    /// Lets the collective advance without waiting (MPI moves nonblocking collectives on inside
    /// its calls), for callers with other work to do meanwhile.
    func progress()
}

/// A collective that finished before it was returned.
public final class CompletedCollective: PendingCollective {
    public init() {}
    public func wait() throws {}
    public func progress() {}
}

extension Communicator {
    /// None: device tensors go through host copies.
    public var deviceCollectives: (any DeviceCollectives)? { nil }

    /// The blocking all-reduce, for communicators without a nonblocking one.
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingCollective {
        try allReduceSum(buffer)
        return CompletedCollective()
    }
}

extension Communicator {
    /// Sums a contiguous float32 tensor over all ranks, in place. A tensor in device memory (a
    /// GPU's) is summed by ``deviceCollectives`` when they take its device, else through a host
    /// copy: one download and one upload.
    public func allReduceSum(_ tensor: Tensor) throws {
        precondition(tensor.dtype == .float32 && tensor.isContiguous,
                     "[Communicator] expected a contiguous float32 tensor, got \(tensor.dtype) on \(tensor.device)")
        if let device = deviceCollectives, device.device == tensor.device { return try device.allReduceSum(tensor) }
        guard tensor.device.isHostMemory else { return try throughHost(tensor) { try allReduceSum($0) } }
        try allReduceSum(UnsafeMutableBufferPointer(start: tensor.pointer(as: Float.self), count: tensor.count))
    }

    /// Runs `collective` on a host copy of the device tensor `tensor`, then copies the result back.
    private func throughHost(_ tensor: Tensor, _ collective: (Tensor) throws -> Void) throws {
        let host = Tensor.empty(tensor.shape, dtype: tensor.dtype, device: .cpu)
        host.assign(tensor)
        try collective(host)
        tensor.assign(host)
    }

    /// Sums `values` over all ranks.
    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        var copy = values
        try copy.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return copy
    }

    /// Copies `root`'s tensor into every other rank's (contiguous; one in device memory goes
    /// through ``deviceCollectives`` when they take its device, else through a host copy).
    public func broadcast(_ tensor: Tensor, root: Int = 0) throws {
        precondition(tensor.isContiguous, "[Communicator] expected a contiguous tensor")
        if let device = deviceCollectives, device.device == tensor.device { return try device.broadcast(tensor, root: root) }
        guard tensor.device.isHostMemory else { return try throughHost(tensor) { try broadcast($0, root: root) } }
        let start: UnsafeMutableRawPointer
        switch tensor.dtype.size {
        case 1: start = UnsafeMutableRawPointer(tensor.pointer(as: UInt8.self))
        case 2: start = UnsafeMutableRawPointer(tensor.pointer(as: UInt16.self))
        case 4: start = UnsafeMutableRawPointer(tensor.pointer(as: UInt32.self))
        default: start = UnsafeMutableRawPointer(tensor.pointer(as: UInt64.self))
        }
        try broadcast(UnsafeMutableRawBufferPointer(start: start, count: tensor.count * tensor.dtype.size), root: root)
    }

    /// Whether this process writes logs, checkpoints and reports.
    public var isLeader: Bool { rank == 0 }

    /// `root`'s string on every rank (a path, a name; at most 64 KiB of UTF-8).
    public func broadcast(string: String, root: Int = 0) throws -> String {
        guard size > 1 else { return string }
        var length = [Double(string.utf8.count)]
        if rank != root { length = [0] }
        try length.withUnsafeMutableBytes { try broadcast($0, root: root) }
        let count = Int(length[0])
        precondition(count <= 1 << 16, "[Communicator] broadcast(string:) takes at most 64 KiB")
        var bytes = rank == root ? Array(string.utf8) : [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A world of one: every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var backendName: String { "single process" }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never {
        fflush(stdout)
        exit(code)
    }
}
