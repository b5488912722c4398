import CNCCL
import Foundation
import SNNLibraries

#if canImport(Glibc)
import Glibc
#endif

/// NCCL's C interface, opened at run time with `dlopen` so that `snn` builds and runs where NCCL
/// (and CUDA) are absent, as on every CPU-only host.
///
/// The declarations are written from NCCL's public `nccl.h` of NCCL 2.21 (the signatures used
/// here are unchanged from 2.4 through 2.27):
///
/// ```c
/// typedef struct ncclComm* ncclComm_t;
/// typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;   // 128 bytes
/// typedef enum { ncclSuccess = 0, ncclUnhandledCudaError = 1, ncclSystemError = 2,
///                ncclInternalError = 3, ncclInvalidArgument = 4, ncclInvalidUsage = 5,
///                ncclRemoteError = 6, ncclInProgress = 7 } ncclResult_t;
/// typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
/// typedef enum { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4,
///                ncclUint64 = 5, ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8,
///                ncclBfloat16 = 9 } ncclDataType_t;
/// ncclResult_t ncclGetVersion(int* version);
/// ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId);
/// ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank);
/// ncclResult_t ncclCommDestroy(ncclComm_t comm);
/// ncclResult_t ncclCommAbort(ncclComm_t comm);
/// ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError);
/// const char*  ncclGetErrorString(ncclResult_t result);
/// ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
///                            ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
/// ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
///                            ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream);
/// ```
///
/// Enums are C `int`s (`Int32`), `size_t` is `Int`, `ncclComm_t` and `cudaStream_t` are opaque
/// pointers. `ncclUniqueId` comes from the `CNCCL` header because `ncclCommInitRank` takes it by
/// value, which only a C struct type can express.
public struct NCCLLibrary: @unchecked Sendable {
    /// The file opened: `SNN_NCCL_LIBRARY`, `libnccl.so.2`, or a Python wheel's copy.
    public let path: String
    /// `ncclGetVersion`'s integer: `22105` for 2.21.5 (`2708` for 2.7.8, before NCCL 2.9).
    public let versionCode: Int32

    /// `NCCL 2.21.5`.
    public var version: String { "NCCL \(versionNumber)" }
    /// `2.21.5`.
    public var versionNumber: String { Self.versionNumber(code: versionCode) }

    /// `ncclUniqueId`'s size (`NCCL_UNIQUE_ID_BYTES`).
    public static let uniqueIDByteCount = 128

    /// `ncclDataType_t` and `ncclRedOp_t` values used by the collectives (nccl.h 2.21).
    enum DataType: Int32 { case uint8 = 1, float32 = 7, float64 = 8 }
    static let opSum: Int32 = 0

    typealias GetVersion = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    typealias GetUniqueID = @convention(c) (UnsafeMutablePointer<snn_ncclUniqueId>?) -> Int32
    typealias CommInitRank = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, snn_ncclUniqueId, Int32) -> Int32
    typealias CommFunction = @convention(c) (OpaquePointer?) -> Int32
    typealias CommGetAsyncError = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias GetErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias AllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?,
                                          OpaquePointer?) -> Int32
    typealias Broadcast = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?,
                                          OpaquePointer?) -> Int32

    let getVersion: GetVersion
    let getUniqueID: GetUniqueID
    let commInitRank: CommInitRank
    let commDestroy: CommFunction
    let commAbort: CommFunction
    let commGetAsyncError: CommGetAsyncError
    let getErrorString: GetErrorString
    let allReduce: AllReduce
    let broadcast: Broadcast

    /// Opens NCCL: `SNN_NCCL_LIBRARY` alone when set; otherwise `libnccl.so.2` on the loader's
    /// path, then the `nvidia/nccl/lib/libnccl.so.2` of the `nvidia-nccl-cu12` / `-cu13` wheels
    /// in the Python environments listed by ``candidates(environment:)``.
    ///
    /// - Throws: ``DistributedError`` listing every place tried and how to install NCCL; for an
    ///   explicit `SNN_NCCL_LIBRARY`, the loader's reason; for a library without NCCL's symbols,
    ///   the missing one.
    public static func load() throws -> NCCLLibrary {
        try load(environment: ProcessInfo.processInfo.environment)
    }

    static func load(environment: [String: String]) throws -> NCCLLibrary {
        if let path = environment["SNN_NCCL_LIBRARY"], !path.isEmpty {
            // An explicit choice is never silently replaced by another NCCL of another version.
            guard let handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
                let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
                throw DistributedError("[NCCL] SNN_NCCL_LIBRARY=\(path) could not be loaded (tried \(path)): \(reason)")
            }
            return try NCCLLibrary(handle: handle, path: path)
        }
        let (opened, tried) = LibrarySearch.open(candidates(environment: environment))
        if let opened { return try NCCLLibrary(handle: opened.handle, path: opened.file) }
        throw DistributedError("[NCCL] no NCCL library found (tried \(tried.joined(separator: ", "))): "
                               + "pip install nvidia-nccl-cu12 (or -cu13), or set SNN_NCCL_LIBRARY=/path/libnccl.so.2")
    }

    /// The places tried without `SNN_NCCL_LIBRARY`, in order: `libnccl.so.2` (the loader's path:
    /// `LD_LIBRARY_PATH`, the ld.so cache), then `<site>/nvidia/nccl/lib/libnccl.so.2` for each
    /// Python site directory of ``LibrarySearch/pythonSitePackages(environment:)``.
    static func candidates(environment: [String: String]) -> [LibrarySearch.Place] {
        [.loader("libnccl.so.2")] + LibrarySearch.wheelPlaces(["nvidia/nccl/lib/libnccl.so.2"], environment: environment)
    }

    /// `2.21.5` from `22105`; `2.7.8` from `2708` (NCCL before 2.9 encoded `major*1000 + minor*100 + patch`).
    static func versionNumber(code: Int32) -> String {
        let (major, minor, patch) = code >= 10_000
            ? (code / 10_000, (code % 10_000) / 100, code % 100) : (code / 1000, (code % 1000) / 100, code % 100)
        return "\(major).\(minor).\(patch)"
    }

    private init(handle: UnsafeMutableRawPointer, path: String) throws {
        let symbols = Symbols(handle: handle, path: path, library: "NCCL", expected: "an NCCL 2 library")
        func function<T>(_ name: String, _ type: T.Type) throws -> T { try symbols.function(name, type) }
        self.path = path
        getVersion = try function("ncclGetVersion", GetVersion.self)
        getUniqueID = try function("ncclGetUniqueId", GetUniqueID.self)
        commInitRank = try function("ncclCommInitRank", CommInitRank.self)
        commDestroy = try function("ncclCommDestroy", CommFunction.self)
        commAbort = try function("ncclCommAbort", CommFunction.self)
        commGetAsyncError = try function("ncclCommGetAsyncError", CommGetAsyncError.self)
        getErrorString = try function("ncclGetErrorString", GetErrorString.self)
        allReduce = try function("ncclAllReduce", AllReduce.self)
        broadcast = try function("ncclBroadcast", Broadcast.self)
        var code: Int32 = 0
        let result = getVersion(&code)
        guard result == 0 else {
            throw DistributedError("[ncclGetVersion] \(path): error \(result)")
        }
        versionCode = code
    }

    /// NCCL's text for a result code (`unhandled system error (run with NCCL_DEBUG=INFO for details)`).
    func message(for result: Int32) -> String {
        guard let text = getErrorString(result) else { return "NCCL error \(result)" }
        return String(cString: text)
    }

    /// Throws a ``DistributedError`` naming `function` when `result` is not `ncclSuccess`.
    func check(_ result: Int32, _ function: String) throws {
        guard result != 0 else { return }
        throw DistributedError("[\(function)] \(version): \(message(for: result))")
    }

    /// A new `ncclUniqueId` (rank 0 makes it; every rank passes it to `ncclCommInitRank`). Needs
    /// no GPU: it opens NCCL's bootstrap socket on a network interface (`NCCL_SOCKET_IFNAME`).
    ///
    /// - Throws: ``DistributedError`` with NCCL's message when no interface can be used.
    public func uniqueID() throws -> [UInt8] {
        var id = snn_ncclUniqueId()
        try check(getUniqueID(&id), "ncclGetUniqueId")
        return withUnsafeBytes(of: &id) { Array($0) }
    }

    /// `bytes` as NCCL's struct, for `ncclCommInitRank`.
    static func uniqueID(_ bytes: [UInt8]) -> snn_ncclUniqueId {
        precondition(bytes.count == uniqueIDByteCount, "[NCCL] expected a \(uniqueIDByteCount)-byte unique id, got \(bytes.count)")
        var id = snn_ncclUniqueId()
        withUnsafeMutableBytes(of: &id) { target in bytes.withUnsafeBytes { target.copyMemory(from: $0) } }
        return id
    }
}
