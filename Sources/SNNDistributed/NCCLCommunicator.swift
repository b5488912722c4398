import CNCCL
import Foundation
import SNNTensor

/// Collectives over tensors that live on a GPU, run by the GPU itself on its stream: no copy
/// through host memory, and the host does not wait for them (work queued after a collective on
/// the same stream runs after it).
public protocol DeviceCollectives: AnyObject {
    /// What carries them, for messages: `NCCL 2.30.7`.
    var name: String { get }
    /// The device whose tensors these collectives take.
    var device: Device { get }
    /// Sums a contiguous float32 tensor on ``device`` over all ranks, in place.
    func allReduceSum(_ tensor: Tensor) throws
    /// Copies `root`'s contiguous tensor on ``device`` into every other rank's.
    func broadcast(_ tensor: Tensor, root: Int) throws
}

/// The GPU side of a job's processes: one NCCL communicator per process, over the process's
/// GPU, made once every rank has NCCL (see ``make(over:device:stream:address:environment:)``).
///
/// Every rank calls the same collectives in the same order, as with ``Communicator``. A
/// collective is queued on the stream given (the backend's one stream), so it is ordered with
/// the kernels before and after it. A failure NCCL reports when the collective is queued (a
/// bad argument, a rank gone) is thrown, naming the collective and this rank; the trainer then
/// ends the job, as for any failed collective.
public final class NCCLCommunicator: DeviceCollectives {
    public let library: NCCLLibrary
    public let device: Device
    public let rank: Int
    public let size: Int
    public var name: String { library.version }
    private let comm: OpaquePointer
    private let stream: OpaquePointer?
    private let address: (Tensor) -> UInt64
    private let lock = NSLock()

    /// Joins the NCCL communicator whose unique id is `uniqueID` (rank 0's, shared by every rank)
    /// as `rank` of `size`, on the GPU whose CUDA context is current on this thread.
    ///
    /// - Parameters:
    ///   - stream: the `CUstream` / `cudaStream_t` collectives are queued on.
    ///   - address: the device address of a tensor's first element.
    /// - Throws: ``DistributedError`` with NCCL's message when `ncclCommInitRank` fails.
    public init(library: NCCLLibrary, uniqueID: [UInt8], rank: Int, size: Int, device: Device, stream: OpaquePointer?,
                address: @escaping (Tensor) -> UInt64) throws {
        var comm: OpaquePointer?
        try library.check(library.commInitRank(&comm, Int32(size), NCCLLibrary.uniqueID(uniqueID), Int32(rank)),
                          "ncclCommInitRank (rank \(rank) of \(size))")
        guard let comm else { throw DistributedError("[ncclCommInitRank] rank \(rank) of \(size): NCCL returned no communicator") }
        (self.library, self.comm, self.rank, self.size, self.device, self.stream, self.address) =
            (library, comm, rank, size, device, stream, address)
    }

    deinit { _ = library.commDestroy(comm) }

    /// The NCCL communicator of every process of `communicator`'s job, each on its own GPU
    /// `device`: `nil` when NCCL is not found on some rank (then none uses it) or `SNN_NCCL=0`,
    /// with the reason. Every rank calls this at the same point: rank 0 makes the unique id and
    /// `communicator` carries it and the ranks' answers.
    ///
    /// - Throws: ``DistributedError`` when every rank has NCCL but the communicator cannot be
    ///   made (the caller should end the job: the other ranks may be waiting in NCCL).
    public static func make(over communicator: any Communicator, device: Device, stream: OpaquePointer?,
                            address: @escaping (Tensor) -> UInt64,
                            environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (collectives: NCCLCommunicator?, reason: String) {
        var library: NCCLLibrary?
        var reason = ""
        if environment["SNN_NCCL"] == "0" {
            reason = "SNN_NCCL=0"
        } else {
            do { library = try NCCLLibrary.load(environment: environment) } catch { reason = "\(error)" }
        }
        // Every rank learns which ranks lack NCCL, and the first one's reason.
        var slots = [Double](repeating: 0, count: communicator.size)
        slots[communicator.rank] = library == nil ? 1 : 0
        let missing = try communicator.allReduceSum(slots).enumerated().filter { $0.element > 0 }.map(\.offset)
        guard let first = missing.first else {
            let library = library!
            let id = try UniqueIDExchange.broadcast(
                communicator.rank == 0 ? try library.uniqueID() : [UInt8](repeating: 0, count: NCCLLibrary.uniqueIDByteCount),
                over: communicator)
            return (try NCCLCommunicator(library: library, uniqueID: id, rank: communicator.rank, size: communicator.size,
                                         device: device, stream: stream, address: address), "")
        }
        let firstReason = try communicator.broadcast(string: reason, root: first)
        let ranks = missing.count == communicator.size ? "every rank" : "rank\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", "))"
        return (nil, ranks == "every rank" ? firstReason : "\(ranks) of \(communicator.size): \(firstReason)")
    }

    public func allReduceSum(_ tensor: Tensor) throws { try allReduceSum(tensor, into: tensor) }

    /// Sums `input` over all ranks into `output` (contiguous float32 tensors of one size on
    /// ``device``; the same tensor sums in place).
    public func allReduceSum(_ input: Tensor, into output: Tensor) throws {
        try check(input, "ncclAllReduce")
        try check(output, "ncclAllReduce")
        precondition(input.dtype == .float32 && output.dtype == .float32 && input.count == output.count,
                     "[NCCL] expected float32 tensors of one size, got \(input.dtype) \(input.count) and \(output.dtype) \(output.count)")
        let (from, to) = (UnsafeRawPointer(bitPattern: UInt(address(input))), UnsafeMutableRawPointer(bitPattern: UInt(address(output))))
        try run("ncclAllReduce of \(input.count) floats") {
            library.allReduce(from, to, input.count, NCCLLibrary.DataType.float32.rawValue, NCCLLibrary.opSum, comm, stream)
        }
    }

    public func broadcast(_ tensor: Tensor, root: Int) throws {
        try check(tensor, "ncclBroadcast")
        let at = UnsafeMutableRawPointer(bitPattern: UInt(address(tensor)))
        let bytes = tensor.count * tensor.dtype.size
        try run("ncclBroadcast of \(bytes) bytes from rank \(root)") {
            library.broadcast(at, at, bytes, NCCLLibrary.DataType.uint8.rawValue, Int32(root), comm, stream)
        }
    }

    private func check(_ tensor: Tensor, _ function: String) throws {
        guard tensor.device == device, tensor.isContiguous else {
            throw DistributedError("[\(function)] rank \(rank): expected a contiguous tensor on \(device), got "
                                   + "\(tensor.isContiguous ? "" : "a strided ")one on \(tensor.device)")
        }
    }

    private func run(_ what: String, _ call: () -> UInt32) throws {
        lock.lock()
        defer { lock.unlock() }
        try library.check(call(), "\(what), rank \(rank) of \(size)")
    }
}
