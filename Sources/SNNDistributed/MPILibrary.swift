import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// MPI's C interface, opened at run time with `dlopen` so that `snn` runs where no MPI is
/// installed, and bound once here for either of the two ABIs in use.
///
/// Open MPI's handles are pointers to global objects (`MPI_COMM_WORLD` is `&ompi_mpi_comm_world`,
/// found with `dlsym`) and `MPI_IN_PLACE` is `(void *)1`. MPICH and its derivatives (Intel MPI,
/// MVAPICH, Cray MPICH) use `int` handles with fixed values and `MPI_IN_PLACE` `(void *)-1`. The
/// values below are those of Open MPI 4.1's and MPICH 4.0's `mpi.h`.
struct MPILibrary {
    enum ABI: String { case openMPI = "Open MPI", mpich = "MPICH" }
    enum Datatype { case float, double, byte }

    /// The file opened (a name such as `libmpi.so.40`, or the `SNN_MPI_LIBRARY` path).
    let path: String
    let abi: ABI

    typealias Flag = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    typealias InitThread = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32,
                                           UnsafeMutablePointer<Int32>?) -> Int32
    typealias ErrorString = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias LibraryVersion = @convention(c) (UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int32>?) -> Int32

    // The functions without handles: the same on both ABIs.
    let initialized: Flag
    let finalized: Flag
    let initThread: InitThread
    let finalize: @convention(c) () -> Int32
    let errorString: ErrorString
    let getLibraryVersion: LibraryVersion

    // The functions taking handles, with the ABI's MPI_COMM_WORLD (and types, MPI_SUM) bound in.
    let worldRank: (UnsafeMutablePointer<Int32>) -> Int32
    let worldSize: (UnsafeMutablePointer<Int32>) -> Int32
    /// `MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)`.
    let setErrorsReturn: () -> Int32
    /// `MPI_Allreduce(MPI_IN_PLACE, buffer, count, type, MPI_SUM, MPI_COMM_WORLD)`.
    let allReduceSumInPlace: (UnsafeMutableRawPointer?, Int32, Datatype) -> Int32
    /// `MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD)`.
    let broadcastBytes: (UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    let barrier: () -> Int32
    let abort: (Int32) -> Int32
    /// `MPI_Iallreduce(MPI_IN_PLACE, buffer, count, type, MPI_SUM, MPI_COMM_WORLD, request)`; the
    /// request is stored in the 8-byte slot given (a pointer in Open MPI, an `int` in MPICH).
    let startAllReduceSumInPlace: (UnsafeMutableRawPointer?, Int32, Datatype, UnsafeMutableRawPointer) -> Int32
    /// `MPI_Wait(request, MPI_STATUS_IGNORE)`.
    let wait: (UnsafeMutableRawPointer) -> Int32
    /// `MPI_Test(request, flag, MPI_STATUS_IGNORE)`: lets MPI move a pending collective on.
    let test: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32

    static let threadSerialized: Int32 = 2  // MPI_THREAD_SERIALIZED in both ABIs

    /// The libraries tried, in order: `SNN_MPI_LIBRARY` alone when set; otherwise Open MPI's
    /// soname first, or MPICH's when MPICH's Hydra launched this process (`PMI_RANK` without
    /// Open MPI's variables), since an MPI must be the one its launcher belongs to.
    /// `libmpich.so.12` is the name Debian and Ubuntu give MPICH's `libmpi.so.12`.
    static func candidates(environment: [String: String]) -> [String] {
        if let path = environment["SNN_MPI_LIBRARY"], !path.isEmpty { return [path] }
        let openMPI = ["libmpi.so.40"], mpich = ["libmpi.so.12", "libmpich.so.12"]
        let hydra = environment["PMI_RANK"] != nil && environment["OMPI_COMM_WORLD_RANK"] == nil
        return (hydra ? mpich + openMPI : openMPI + mpich) + ["libmpi.so"]
    }

    /// Opens the first of `candidates(environment:)` that loads.
    ///
    /// - Throws: ``DistributedError`` listing what was tried and how to install MPI; for an
    ///   explicit `SNN_MPI_LIBRARY`, the loader's reason.
    static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MPILibrary {
        let explicit = environment["SNN_MPI_LIBRARY"].map { !$0.isEmpty } ?? false
        return try load(names: candidates(environment: environment), explicit: explicit)
    }

    /// Opens the first of `names` that loads; `explicit`: one name the user chose, whose loader
    /// error is reported.
    static func load(names: [String], explicit: Bool) throws -> MPILibrary {
        for name in names {
            // RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve libmpi's symbols through the
            // global scope, and fail to load without it.
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                return try MPILibrary(handle: handle, path: name)
            }
            if explicit {
                let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
                throw DistributedError("[MPI] SNN_MPI_LIBRARY=\(name) could not be loaded: \(reason)")
            }
        }
        throw DistributedError("[MPI] no MPI library found (tried \(names.joined(separator: ", "))): install Open MPI "
                               + "(apt-get install openmpi-bin) or set SNN_MPI_LIBRARY=/path/libmpi.so")
    }

    private init(handle: UnsafeMutableRawPointer, path: String) throws {
        let symbols = Symbols(handle: handle, path: path, library: "MPI", expected: "an MPI 3 library of the ABI it looked like")
        self.path = path
        initialized = try symbols.function("MPI_Initialized", Flag.self)
        finalized = try symbols.function("MPI_Finalized", Flag.self)
        initThread = try symbols.function("MPI_Init_thread", InitThread.self)
        finalize = try symbols.function("MPI_Finalize", (@convention(c) () -> Int32).self)
        errorString = try symbols.function("MPI_Error_string", ErrorString.self)
        getLibraryVersion = try symbols.function("MPI_Get_library_version", LibraryVersion.self)
        let bound: HandleFunctions
        if dlsym(handle, "ompi_mpi_comm_world") != nil {
            (abi, bound) = (.openMPI, try Self.openMPIFunctions(symbols))
        } else {
            (abi, bound) = (.mpich, try Self.mpichFunctions(symbols))
        }
        (worldRank, worldSize, setErrorsReturn) = (bound.worldRank, bound.worldSize, bound.setErrorsReturn)
        (allReduceSumInPlace, broadcastBytes, barrier, abort) = (bound.allReduce, bound.broadcast, bound.barrier, bound.abort)
        (startAllReduceSumInPlace, wait, test) = (bound.startAllReduce, bound.wait, bound.test)
    }

    private typealias HandleFunctions = (
        worldRank: (UnsafeMutablePointer<Int32>) -> Int32, worldSize: (UnsafeMutablePointer<Int32>) -> Int32,
        setErrorsReturn: () -> Int32, allReduce: (UnsafeMutableRawPointer?, Int32, Datatype) -> Int32,
        broadcast: (UnsafeMutableRawPointer?, Int32, Int32) -> Int32, barrier: () -> Int32, abort: (Int32) -> Int32,
        startAllReduce: (UnsafeMutableRawPointer?, Int32, Datatype, UnsafeMutableRawPointer) -> Int32,
        wait: (UnsafeMutableRawPointer) -> Int32, test: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32
    )

    // The two binders below differ only in the handle type `H` and the handles' values: a
    // `@convention(c)` type cannot be generic, so each spells its own.

    /// Open MPI: a handle is the address of an `ompi_mpi_*` global; `MPI_IN_PLACE` is 1.
    private static func openMPIFunctions(_ symbols: Symbols) throws -> HandleFunctions {
        typealias H = UnsafeMutableRawPointer
        let world = try symbols.address("ompi_mpi_comm_world")
        let (float, double, byte) = (try symbols.address("ompi_mpi_float"), try symbols.address("ompi_mpi_double"),
                                     try symbols.address("ompi_mpi_byte"))
        let (sum, errorsReturn) = (try symbols.address("ompi_mpi_op_sum"), try symbols.address("ompi_mpi_errors_return"))
        let inPlace = UnsafeRawPointer(bitPattern: 1)
        let rank = try symbols.function("MPI_Comm_rank", (@convention(c) (H, UnsafeMutablePointer<Int32>) -> Int32).self)
        let size = try symbols.function("MPI_Comm_size", (@convention(c) (H, UnsafeMutablePointer<Int32>) -> Int32).self)
        let setHandler = try symbols.function("MPI_Comm_set_errhandler", (@convention(c) (H, H) -> Int32).self)
        typealias AllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, H, H, H) -> Int32
        typealias Broadcast = @convention(c) (UnsafeMutableRawPointer?, Int32, H, Int32, H) -> Int32
        let allReduce = try symbols.function("MPI_Allreduce", AllReduce.self)
        let broadcast = try symbols.function("MPI_Bcast", Broadcast.self)
        let barrier = try symbols.function("MPI_Barrier", (@convention(c) (H) -> Int32).self)
        let abort = try symbols.function("MPI_Abort", (@convention(c) (H, Int32) -> Int32).self)
        // MPI_Request is a pointer; MPI_STATUS_IGNORE is NULL.
        typealias StartAllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, H, H, H, UnsafeMutableRawPointer) -> Int32
        let startAllReduce = try symbols.function("MPI_Iallreduce", StartAllReduce.self)
        let wait = try symbols.function("MPI_Wait", (@convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?) -> Int32).self)
        let test = try symbols.function("MPI_Test", (@convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer?) -> Int32).self)
        return (worldRank: { rank(world, $0) }, worldSize: { size(world, $0) },
                setErrorsReturn: { setHandler(world, errorsReturn) },
                allReduce: { allReduce(inPlace, $0, $1, $2 == .float ? float : $2 == .double ? double : byte, sum, world) },
                broadcast: { broadcast($0, $1, byte, $2, world) }, barrier: { barrier(world) }, abort: { abort(world, $0) },
                startAllReduce: { startAllReduce(inPlace, $0, $1, $2 == .float ? float : $2 == .double ? double : byte, sum, world, $3) },
                wait: { wait($0, nil) }, test: { test($0, $1, nil) })
    }

    /// MPICH's ABI (MPICH, Intel MPI, MVAPICH): `int` handles; `MPI_IN_PLACE` is -1.
    private static func mpichFunctions(_ symbols: Symbols) throws -> HandleFunctions {
        typealias H = Int32
        let world: H = 0x4400_0000  // MPI_COMM_WORLD
        let (float, double, byte): (H, H, H) = (0x4c00_040a, 0x4c00_080b, 0x4c00_010d)  // MPI_FLOAT, MPI_DOUBLE, MPI_BYTE
        let (sum, errorsReturn): (H, H) = (0x5800_0003, 0x5400_0001)  // MPI_SUM, MPI_ERRORS_RETURN
        let inPlace = UnsafeRawPointer(bitPattern: -1)
        let rank = try symbols.function("MPI_Comm_rank", (@convention(c) (H, UnsafeMutablePointer<Int32>) -> Int32).self)
        let size = try symbols.function("MPI_Comm_size", (@convention(c) (H, UnsafeMutablePointer<Int32>) -> Int32).self)
        let setHandler = try symbols.function("MPI_Comm_set_errhandler", (@convention(c) (H, H) -> Int32).self)
        typealias AllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, H, H, H) -> Int32
        typealias Broadcast = @convention(c) (UnsafeMutableRawPointer?, Int32, H, Int32, H) -> Int32
        let allReduce = try symbols.function("MPI_Allreduce", AllReduce.self)
        let broadcast = try symbols.function("MPI_Bcast", Broadcast.self)
        let barrier = try symbols.function("MPI_Barrier", (@convention(c) (H) -> Int32).self)
        let abort = try symbols.function("MPI_Abort", (@convention(c) (H, Int32) -> Int32).self)
        // MPI_Request is an int; MPI_STATUS_IGNORE is (MPI_Status *)1.
        typealias StartAllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, H, H, H, UnsafeMutableRawPointer) -> Int32
        let startAllReduce = try symbols.function("MPI_Iallreduce", StartAllReduce.self)
        let wait = try symbols.function("MPI_Wait", (@convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?) -> Int32).self)
        let test = try symbols.function("MPI_Test", (@convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer?) -> Int32).self)
        let statusIgnore = UnsafeMutableRawPointer(bitPattern: 1)
        return (worldRank: { rank(world, $0) }, worldSize: { size(world, $0) },
                setErrorsReturn: { setHandler(world, errorsReturn) },
                allReduce: { allReduce(inPlace, $0, $1, $2 == .float ? float : $2 == .double ? double : byte, sum, world) },
                broadcast: { broadcast($0, $1, byte, $2, world) }, barrier: { barrier(world) }, abort: { abort(world, $0) },
                startAllReduce: { startAllReduce(inPlace, $0, $1, $2 == .float ? float : $2 == .double ? double : byte, sum, world, $3) },
                wait: { wait($0, statusIgnore) }, test: { test($0, $1, statusIgnore) })
    }

    /// MPI's text for an error code (`MPI_ERR_COUNT: invalid count argument`).
    func message(for code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 1024)  // MPI_MAX_ERROR_STRING: 256 in Open MPI, 512 in MPICH
        var length: Int32 = 0
        guard errorString(code, &buffer, &length) == 0 else { return "MPI error \(code)" }
        return Self.text(buffer, length: length)
    }

    /// `MPI_Get_library_version`'s text, whole (several lines for MPICH).
    func version() -> String {
        var buffer = [CChar](repeating: 0, count: 8192 + 1)  // MPI_MAX_LIBRARY_VERSION_STRING: 256 Open MPI, 8192 MPICH
        var length: Int32 = 0
        guard getLibraryVersion(&buffer, &length) == 0 else { return abi.rawValue }
        return Self.text(buffer, length: length)
    }

    /// The name and version alone: `Open MPI v4.1.4` from `Open MPI v4.1.4, package: ...`,
    /// `MPICH 4.0.2` from `MPICH Version:\t4.0.2\nMPICH Release date: ...`.
    static func shortVersion(_ full: String) -> String {
        let line = full.split(whereSeparator: \.isNewline).first.map(String.init) ?? full
        let head = line.split(separator: ",", maxSplits: 1).first.map(String.init) ?? line
        let words = head.split(whereSeparator: \.isWhitespace).filter { $0 != "Version:" }
        return words.isEmpty ? full : words.joined(separator: " ")
    }

    private static func text(_ buffer: [CChar], length: Int32) -> String {
        let bytes = buffer.prefix(min(Int(max(length, 0)), buffer.count)).prefix { $0 != 0 }
        return String(decoding: bytes.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

