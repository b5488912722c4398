import CNCCL
import Foundation
import SNNLibraries

#if canImport(Glibc)
import Glibc
#endif

/// NCCL's C interface, opened at run time with `dlopen` so that `snn` builds and runs where NCCL
/// (and CUDA) are absent, as on every CPU-only host. The functions' types are C's, in the
/// `CNCCL` header (`snn_ncclAllReduce_t`, ...), written from NCCL's public `nccl.h` and checked
/// against the real one by the tests (`check_prototypes.c`); the signatures used are unchanged
/// from NCCL 2.4 through 2.30.
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
    enum DataType: UInt32 { case uint8 = 1, float32 = 7, float64 = 8 }
    static let opSum: UInt32 = 0

    let getVersion: snn_ncclGetVersion_t
    let getUniqueID: snn_ncclGetUniqueId_t
    let commInitRank: snn_ncclCommInitRank_t
    let commDestroy: snn_ncclCommDestroy_t
    let commAbort: snn_ncclCommAbort_t
    let commGetAsyncError: snn_ncclCommGetAsyncError_t
    let getErrorString: snn_ncclGetErrorString_t
    let allReduce: snn_ncclAllReduce_t
    let broadcast: snn_ncclBroadcast_t

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
        getVersion = try function("ncclGetVersion", snn_ncclGetVersion_t.self)
        getUniqueID = try function("ncclGetUniqueId", snn_ncclGetUniqueId_t.self)
        commInitRank = try function("ncclCommInitRank", snn_ncclCommInitRank_t.self)
        commDestroy = try function("ncclCommDestroy", snn_ncclCommDestroy_t.self)
        commAbort = try function("ncclCommAbort", snn_ncclCommAbort_t.self)
        commGetAsyncError = try function("ncclCommGetAsyncError", snn_ncclCommGetAsyncError_t.self)
        getErrorString = try function("ncclGetErrorString", snn_ncclGetErrorString_t.self)
        allReduce = try function("ncclAllReduce", snn_ncclAllReduce_t.self)
        broadcast = try function("ncclBroadcast", snn_ncclBroadcast_t.self)
        var code: Int32 = 0
        let result = getVersion(&code)
        guard result == 0 else {
            throw DistributedError("[ncclGetVersion] \(path): error \(result)")
        }
        versionCode = code
    }

    /// NCCL's text for a result code (`unhandled system error (run with NCCL_DEBUG=INFO for details)`).
    func message(for result: UInt32) -> String {
        guard let text = getErrorString(result) else { return "NCCL error \(result)" }
        return String(cString: text)
    }

    /// Throws a ``DistributedError`` naming `function` when `result` is not `ncclSuccess`.
    func check(_ result: UInt32, _ function: String) throws {
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
