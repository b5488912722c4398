import Foundation
import SNNLibraries

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

    /// A communicator handle, whichever the ABI: the bits of Open MPI's pointer or MPICH's `int`.
    typealias Comm = UInt

    /// `MPI_COMM_WORLD` and `MPI_COMM_SELF`.
    let world: Comm
    let selfComm: Comm

    // The functions taking handles, with the ABI's types and MPI_SUM bound in.
    let commRank: (Comm, UnsafeMutablePointer<Int32>) -> Int32
    let commSize: (Comm, UnsafeMutablePointer<Int32>) -> Int32
    /// `MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)`.
    let setErrorsReturn: (Comm) -> Int32
    /// `MPI_Allreduce(MPI_IN_PLACE, buffer, count, type, MPI_SUM, comm)`.
    let allReduceSumInPlace: (Comm, UnsafeMutableRawPointer?, Int32, Datatype) -> Int32
    /// `MPI_Bcast(buffer, count, MPI_BYTE, root, comm)`.
    let broadcastBytes: (Comm, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    let barrier: (Comm) -> Int32
    let abort: (Comm, Int32) -> Int32
    /// `MPI_Iallreduce(MPI_IN_PLACE, buffer, count, type, MPI_SUM, comm, request)`; the request is
    /// stored in the 8-byte slot given (a pointer in Open MPI, an `int` in MPICH).
    let startAllReduceSumInPlace: (Comm, UnsafeMutableRawPointer?, Int32, Datatype, UnsafeMutableRawPointer) -> Int32
    /// `MPI_Wait(request, MPI_STATUS_IGNORE)`.
    let wait: (UnsafeMutableRawPointer) -> Int32
    /// `MPI_Test(request, flag, MPI_STATUS_IGNORE)`: lets MPI move a pending collective on.
    let test: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32

    // Joining processes that no MPI launcher started (MPI-2 dynamic processes).
    /// `MPI_Open_port(MPI_INFO_NULL, name)`, `name` at least ``maxPortName`` bytes.
    let openPort: (UnsafeMutablePointer<CChar>) -> Int32
    let closePort: (UnsafePointer<CChar>) -> Int32
    /// `MPI_Comm_accept(port, MPI_INFO_NULL, root, comm, &intercomm)`: collective over `comm`.
    let accept: (UnsafePointer<CChar>, Int32, Comm) -> (Int32, Comm)
    /// `MPI_Comm_connect(port, MPI_INFO_NULL, root, comm, &intercomm)`.
    let connect: (UnsafePointer<CChar>, Int32, Comm) -> (Int32, Comm)
    /// `MPI_Intercomm_merge(intercomm, high, &intracomm)`.
    let merge: (Comm, Bool) -> (Int32, Comm)
    /// `MPI_Comm_free(&comm)`.
    let free: (Comm) -> Int32

    /// Bytes for a port name: MPI_MAX_PORT_NAME is 1024 in Open MPI, 256 in MPICH.
    static let maxPortName = 1024

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
        (world, selfComm) = (bound.world, bound.selfComm)
        (commRank, commSize, setErrorsReturn) = (bound.rank, bound.size, bound.setErrorsReturn)
        (allReduceSumInPlace, broadcastBytes, barrier, abort) = (bound.allReduce, bound.broadcast, bound.barrier, bound.abort)
        (startAllReduceSumInPlace, wait, test) = (bound.startAllReduce, bound.wait, bound.test)
        (openPort, closePort, accept, connect, merge, free) = (bound.openPort, bound.closePort, bound.accept, bound.connect,
                                                               bound.merge, bound.free)
    }

    private typealias HandleFunctions = (
        world: Comm, selfComm: Comm,
        rank: (Comm, UnsafeMutablePointer<Int32>) -> Int32, size: (Comm, UnsafeMutablePointer<Int32>) -> Int32,
        setErrorsReturn: (Comm) -> Int32, allReduce: (Comm, UnsafeMutableRawPointer?, Int32, Datatype) -> Int32,
        broadcast: (Comm, UnsafeMutableRawPointer?, Int32, Int32) -> Int32, barrier: (Comm) -> Int32, abort: (Comm, Int32) -> Int32,
        startAllReduce: (Comm, UnsafeMutableRawPointer?, Int32, Datatype, UnsafeMutableRawPointer) -> Int32,
        wait: (UnsafeMutableRawPointer) -> Int32, test: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32,
        openPort: (UnsafeMutablePointer<CChar>) -> Int32, closePort: (UnsafePointer<CChar>) -> Int32,
        accept: (UnsafePointer<CChar>, Int32, Comm) -> (Int32, Comm), connect: (UnsafePointer<CChar>, Int32, Comm) -> (Int32, Comm),
        merge: (Comm, Bool) -> (Int32, Comm), free: (Comm) -> Int32
    )

    // The two binders below differ only in the handle type `H`, its conversion from and to `Comm`,
    // and the handles' values: a `@convention(c)` type cannot be generic, so each spells its own.

    /// Open MPI: a handle is the address of an `ompi_mpi_*` global; `MPI_IN_PLACE` is 1.
    private static func openMPIFunctions(_ symbols: Symbols) throws -> HandleFunctions {
        typealias H = UnsafeMutableRawPointer
        func h(_ comm: Comm) -> H { H(bitPattern: comm)! }
        let world = try symbols.address("ompi_mpi_comm_world"), selfComm = try symbols.address("ompi_mpi_comm_self")
        let (float, double, byte) = (try symbols.address("ompi_mpi_float"), try symbols.address("ompi_mpi_double"),
                                     try symbols.address("ompi_mpi_byte"))
        let (sum, errorsReturn) = (try symbols.address("ompi_mpi_op_sum"), try symbols.address("ompi_mpi_errors_return"))
        let infoNull = try symbols.address("ompi_mpi_info_null")
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
        typealias Port = @convention(c) (H, UnsafeMutablePointer<CChar>) -> Int32
        typealias Join = @convention(c) (UnsafePointer<CChar>, H, Int32, H, UnsafeMutablePointer<H?>) -> Int32
        let openPort = try symbols.function("MPI_Open_port", Port.self)
        let closePort = try symbols.function("MPI_Close_port", (@convention(c) (UnsafePointer<CChar>) -> Int32).self)
        let accept = try symbols.function("MPI_Comm_accept", Join.self)
        let connect = try symbols.function("MPI_Comm_connect", Join.self)
        let merge = try symbols.function("MPI_Intercomm_merge", (@convention(c) (H, Int32, UnsafeMutablePointer<H?>) -> Int32).self)
        let free = try symbols.function("MPI_Comm_free", (@convention(c) (UnsafeMutablePointer<H?>) -> Int32).self)
        func type(_ t: Datatype) -> H { t == .float ? float : t == .double ? double : byte }
        func made(_ call: (UnsafeMutablePointer<H?>) -> Int32) -> (Int32, Comm) {
            var out: H?
            let code = call(&out)
            return (code, out.map { UInt(bitPattern: $0) } ?? 0)
        }
        return (world: UInt(bitPattern: world), selfComm: UInt(bitPattern: selfComm),
                rank: { rank(h($0), $1) }, size: { size(h($0), $1) }, setErrorsReturn: { setHandler(h($0), errorsReturn) },
                allReduce: { allReduce(inPlace, $1, $2, type($3), sum, h($0)) },
                broadcast: { broadcast($1, $2, byte, $3, h($0)) }, barrier: { barrier(h($0)) }, abort: { abort(h($0), $1) },
                startAllReduce: { startAllReduce(inPlace, $1, $2, type($3), sum, h($0), $4) },
                wait: { wait($0, nil) }, test: { test($0, $1, nil) },
                openPort: { openPort(infoNull, $0) }, closePort: { closePort($0) },
                accept: { port, root, comm in made { accept(port, infoNull, root, h(comm), $0) } },
                connect: { port, root, comm in made { connect(port, infoNull, root, h(comm), $0) } },
                merge: { inter, high in made { merge(h(inter), high ? 1 : 0, $0) } },
                free: { comm in var handle: H? = h(comm); return free(&handle) })
    }

    /// MPICH's ABI (MPICH, Intel MPI, MVAPICH): `int` handles; `MPI_IN_PLACE` is -1.
    private static func mpichFunctions(_ symbols: Symbols) throws -> HandleFunctions {
        typealias H = Int32
        func h(_ comm: Comm) -> H { H(truncatingIfNeeded: comm) }
        let (world, selfComm): (H, H) = (0x4400_0000, 0x4400_0001)  // MPI_COMM_WORLD, MPI_COMM_SELF
        let (float, double, byte): (H, H, H) = (0x4c00_040a, 0x4c00_080b, 0x4c00_010d)  // MPI_FLOAT, MPI_DOUBLE, MPI_BYTE
        let (sum, errorsReturn): (H, H) = (0x5800_0003, 0x5400_0001)  // MPI_SUM, MPI_ERRORS_RETURN
        let infoNull: H = 0x1c00_0000  // MPI_INFO_NULL
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
        typealias Port = @convention(c) (H, UnsafeMutablePointer<CChar>) -> Int32
        typealias Join = @convention(c) (UnsafePointer<CChar>, H, Int32, H, UnsafeMutablePointer<H>) -> Int32
        let openPort = try symbols.function("MPI_Open_port", Port.self)
        let closePort = try symbols.function("MPI_Close_port", (@convention(c) (UnsafePointer<CChar>) -> Int32).self)
        let accept = try symbols.function("MPI_Comm_accept", Join.self)
        let connect = try symbols.function("MPI_Comm_connect", Join.self)
        let merge = try symbols.function("MPI_Intercomm_merge", (@convention(c) (H, Int32, UnsafeMutablePointer<H>) -> Int32).self)
        let free = try symbols.function("MPI_Comm_free", (@convention(c) (UnsafeMutablePointer<H>) -> Int32).self)
        func type(_ t: Datatype) -> H { t == .float ? float : t == .double ? double : byte }
        func made(_ call: (UnsafeMutablePointer<H>) -> Int32) -> (Int32, Comm) {
            var out: H = 0
            let code = call(&out)
            return (code, UInt(UInt32(bitPattern: out)))
        }
        return (world: UInt(UInt32(bitPattern: world)), selfComm: UInt(UInt32(bitPattern: selfComm)),
                rank: { rank(h($0), $1) }, size: { size(h($0), $1) }, setErrorsReturn: { setHandler(h($0), errorsReturn) },
                allReduce: { allReduce(inPlace, $1, $2, type($3), sum, h($0)) },
                broadcast: { broadcast($1, $2, byte, $3, h($0)) }, barrier: { barrier(h($0)) }, abort: { abort(h($0), $1) },
                startAllReduce: { startAllReduce(inPlace, $1, $2, type($3), sum, h($0), $4) },
                wait: { wait($0, statusIgnore) }, test: { test($0, $1, statusIgnore) },
                openPort: { openPort(infoNull, $0) }, closePort: { closePort($0) },
                accept: { port, root, comm in made { accept(port, infoNull, root, h(comm), $0) } },
                connect: { port, root, comm in made { connect(port, infoNull, root, h(comm), $0) } },
                merge: { inter, high in made { merge(h(inter), high ? 1 : 0, $0) } },
                free: { comm in var handle = h(comm); return free(&handle) })
    }

    /// MPI's text for an error code (`MPI_ERR_COUNT: invalid count argument`).
    func message(for code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 1024)  // MPI_MAX_ERROR_STRING: 256 in Open MPI, 512 in MPICH
        var length: Int32 = 0
        guard errorString(code, &buffer, &length) == 0 else { return "MPI error \(code)" }
        // MPICH's "error stack" spans lines: one line, its non-empty lines joined.
        return Self.text(buffer, length: length).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
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

