import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Collectives over MPI between the processes mpirun (or srun with an MPI built for Slurm's PMI)
/// started (see ``start()``), or that another launcher started and MPI joined into one world (see
/// ``join(_:timeout:)``), with MPI loaded at run time.
///
/// Failures are errors, not aborts: `MPI_COMM_WORLD` is switched to `MPI_ERRORS_RETURN`, and a
/// failed call throws a ``DistributedError`` naming the function, this rank and MPI's message.
/// A rank that cannot go on should call ``abort(code:)``: returning or exiting while the others
/// wait in a collective would leave them waiting.
///
/// Collectives may come from any thread, one at a time (MPI is started at
/// `MPI_THREAD_SERIALIZED`, and calls are serialised here).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// `MPI (Open MPI v4.1.4)`.
    public let backendName: String
    /// `MPI_Get_library_version`'s whole text.
    public let libraryVersion: String
    /// The library loaded: a soname such as `libmpi.so.40`, or `SNN_MPI_LIBRARY`.
    public let libraryPath: String
    /// The most elements one MPI call carries; longer buffers go in several calls (MPI counts are
    /// `int`). Lowered by tests to exercise the split.
    package var maxElementsPerCall = Int(Int32.max)
    /// NCCL over the processes' GPUs, once the caller has made it (``NCCLCommunicator/make(over:device:stream:address:environment:)``).
    public var deviceCollectives: (any DeviceCollectives)?

    let library: MPILibrary
    /// The communicator: `MPI_COMM_WORLD`, or the one ``join(_:timeout:)`` made.
    let comm: MPILibrary.Comm
    /// The links of a joined world, watched for ranks that stop (nil under an MPI launcher).
    var monitor: JoinMonitor?
    /// Whether `start()` called `MPI_Init_thread`, so MPI is this object's to finalize.
    private let ownsMPI: Bool
    private let lock = NSLock()
    private var finalized = false

    static let startLock = NSLock()
    nonisolated(unsafe) static var started: MPICommunicator?
    nonisolated(unsafe) private static var startedAndFinalized = false

    init(library: MPILibrary, comm: MPILibrary.Comm, ownsMPI: Bool, rank: Int, size: Int) {
        (self.library, self.comm, self.ownsMPI, self.rank, self.size) = (library, comm, ownsMPI, rank, size)
        libraryVersion = library.version()
        libraryPath = library.path
        backendName = "MPI (\(MPILibrary.shortVersion(libraryVersion)))"
    }

    /// Loads MPI, initialises it (unless the host program already did) and returns the
    /// communicator of `MPI_COMM_WORLD`; later calls return the same one. `MPI_Finalize` runs
    /// at exit, or at ``finalize()``.
    ///
    /// The library is `SNN_MPI_LIBRARY` when set, else the first of `libmpi.so.40` (Open MPI 3–5),
    /// `libmpi.so.12` / `libmpich.so.12` (MPICH, Intel MPI) and `libmpi.so` that loads (MPICH's
    /// first under MPICH's Hydra launcher). It must be the MPI whose mpirun started the job.
    ///
    /// - Throws: ``DistributedError`` when no MPI library loads (naming what was tried and how to
    ///   install one), when MPI was already finalized in this process, or when a call fails.
    public static func start() throws -> MPICommunicator {
        startLock.lock()
        defer { startLock.unlock() }
        try checkNotFinalized()
        if let started { return started }
        let library = try MPILibrary.load()
        let ownsMPI = try initialize(library)
        var rank: Int32 = 0, size: Int32 = 0
        try check(library.commRank(library.world, &rank), "MPI_Comm_rank", library, place: "at start")
        try check(library.commSize(library.world, &size), "MPI_Comm_size", library, place: "at start")
        let communicator = MPICommunicator(library: library, comm: library.world, ownsMPI: ownsMPI, rank: Int(rank), size: Int(size))
        started = communicator
        return communicator
    }

    /// Throws once MPI was finalized in this process. Call with ``startLock`` held.
    static func checkNotFinalized() throws {
        guard !startedAndFinalized else {
            throw DistributedError("[MPI_Init_thread] MPI was finalized in this process and cannot start again")
        }
    }

    /// Calls `MPI_Init_thread` unless the host program already did (then returns false), makes
    /// errors on `MPI_COMM_WORLD` and `MPI_COMM_SELF` return, and finalizes MPI at exit. Call with
    /// ``startLock`` held.
    static func initialize(_ library: MPILibrary) throws -> Bool {
        var flag: Int32 = 0
        _ = library.initialized(&flag)  // cannot fail
        let ownsMPI = flag == 0
        if ownsMPI {
            var provided: Int32 = 0
            // No MPI_Error_string here: before a successful MPI_Init, Open MPI 4 aborts on it.
            let code = library.initThread(nil, nil, MPILibrary.threadSerialized, &provided)
            guard code == 0 else {
                throw DistributedError("[MPI_Init_thread] \(MPILibrary.shortVersion(library.version())) from \(library.path) "
                                       + "failed with error code \(code)")
            }
            atexit { MPICommunicator.finalizeAtExit() }
        }
        try check(library.setErrorsReturn(library.world), "MPI_Comm_set_errhandler", library, place: "at start")
        try check(library.setErrorsReturn(library.selfComm), "MPI_Comm_set_errhandler", library, place: "at start")
        return ownsMPI
    }

    private static func finalizeAtExit() {
        startLock.lock()
        let communicator = started
        startLock.unlock()
        try? communicator?.finalize()
    }

    /// Calls `MPI_Finalize` (once; later calls do nothing). Every rank must call it, after its
    /// last collective; collectives afterwards throw.
    public func finalize() throws {
        lock.lock()
        defer { lock.unlock() }
        guard !finalized else { return }
        finalized = true
        Self.startLock.lock()
        Self.startedAndFinalized = true
        Self.startLock.unlock()
        monitor?.sayGoodbye()
        var done: Int32 = 0
        guard ownsMPI, library.finalized(&done) == 0, done == 0 else { return }
        try check(library.finalize(), "MPI_Finalize")
    }

    /// Ends every process of the job with exit status `code` (`MPI_Abort`), so that no rank waits
    /// forever for one that failed. Takes no lock: it works while another thread of this process
    /// is blocked in a collective.
    public func abort(code: Int32 = 1) -> Never {
        fflush(stdout)
        fflush(stderr)
        _ = library.abort(comm, code)
        exit(code)  // MPI_Abort does not return; should it, end this process at least.
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try allReduceSum(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: MemoryLayout<Float>.stride,
                         .float)
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try allReduceSum(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: MemoryLayout<Double>.stride,
                         .double)
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        precondition((0..<size).contains(root), "[MPI_Bcast] expected a root in 0..<\(size), got \(root)")
        try inChunks(buffer.baseAddress, count: buffer.count, stride: 1, "MPI_Bcast") {
            library.broadcastBytes(comm, $0, $1, Int32(root))
        }
    }

    public func barrier() throws {
        try serialized("MPI_Barrier") { try check(library.barrier(comm), "MPI_Barrier") }
    }

    /// `MPI_Iallreduce` in place, in pieces of at most ``maxElementsPerCall`` elements.
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingCollective {
        let pending = MPIPending(communicator: self)
        try inChunks(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: MemoryLayout<Float>.stride,
                     "MPI_Iallreduce") { start, count in
            let slot = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
            slot.storeBytes(of: 0, as: UInt64.self)
            pending.requests.append(slot)
            return library.startAllReduceSumInPlace(comm, start, count, .float, slot)
        }
        return pending
    }

    /// Waits for (or tests) the requests of one ``startAllReduceSum(_:)``.
    final class MPIPending: PendingCollective {
        let communicator: MPICommunicator
        var requests: [UnsafeMutableRawPointer] = []
        private var done = false

        init(communicator: MPICommunicator) { self.communicator = communicator }
        deinit { requests.forEach { $0.deallocate() } }

        func wait() throws {
            guard !done else { return }
            done = true
            for request in requests {
                try communicator.serialized("MPI_Wait") { try communicator.check(communicator.library.wait(request), "MPI_Wait") }
            }
        }

        func progress() {
            guard !done else { return }
            var flag: Int32 = 0
            for request in requests {
                try? communicator.serialized("MPI_Test") { _ = communicator.library.test(request, &flag) }
            }
        }
    }

    private func allReduceSum(_ start: UnsafeMutableRawPointer?, count: Int, stride: Int, _ type: MPILibrary.Datatype) throws {
        try inChunks(start, count: count, stride: stride, "MPI_Allreduce") { library.allReduceSumInPlace(comm, $0, $1, type) }
    }

    /// Runs `call` on consecutive pieces of at most `maxElementsPerCall` elements.
    private func inChunks(_ start: UnsafeMutableRawPointer?, count: Int, stride: Int, _ function: String,
                          _ call: (UnsafeMutableRawPointer?, Int32) -> Int32) throws {
        try serialized(function) {
            let chunk = max(1, min(maxElementsPerCall, Int(Int32.max)))
            var offset = 0
            while offset < count {
                let n = min(chunk, count - offset)
                try check(call(start.map { $0 + offset * stride }, Int32(n)), function)
                offset += n
            }
        }
    }

    fileprivate func serialized(_ function: String, _ body: () throws -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        guard !finalized else { throw DistributedError("[\(function)] rank \(rank) of \(size): called after MPI was finalized") }
        try body()
    }

    fileprivate func check(_ code: Int32, _ function: String) throws {
        try Self.check(code, function, library, place: "rank \(rank) of \(size)")
    }

    /// Throws for any code but MPI_SUCCESS (0), with MPI's text for it.
    static func check(_ code: Int32, _ function: String, _ library: MPILibrary, place: String) throws {
        guard code != 0 else { return }
        let version = MPILibrary.shortVersion(library.version())
        throw DistributedError("[\(function)] \(place), \(version): \(library.message(for: code)) (error code \(code))")
    }
}
