import CCUDA
import Foundation
import SNNLibraries

#if canImport(Glibc)
import Glibc
#endif

/// NVRTC, CUDA's run-time compiler: turns SwiftSNN's CUDA C++ kernels into machine code (CUBIN)
/// for the GPU found, so that no CUDA SDK is needed to build `snn` and nothing is compiled at
/// install time. NVRTC itself needs no GPU: it runs on any Linux x86_64 machine, which is how
/// CI checks that every kernel compiles for every architecture.
///
/// Compiled kernels are kept on disk (``KernelCache``), keyed by everything that changes the
/// result: the source, the options, the architecture and NVRTC's version.
public final class NVRTC: @unchecked Sendable {
    /// The library opened and its version (`13.0`).
    public let library: CUDAToolkit.Library

    let getErrorString: snn_nvrtcGetErrorString_t
    let createProgram: snn_nvrtcCreateProgram_t
    let destroyProgram: snn_nvrtcDestroyProgram_t
    let compileProgram: snn_nvrtcCompileProgram_t
    let getCUBINSize: snn_nvrtcGetCUBINSize_t
    let getCUBIN: snn_nvrtcGetCUBIN_t
    let getLogSize: snn_nvrtcGetProgramLogSize_t
    let getLog: snn_nvrtcGetProgramLog_t

    /// Opens NVRTC as ``CUDAToolkit/load(_:driverVersion:environment:)`` finds it (the newest CUDA
    /// the driver runs; without a driver, the newest found).
    ///
    /// - Throws: ``LibraryError`` listing the places tried, or naming a missing function.
    public init(driverVersion: Int32? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        library = try CUDAToolkit.load(.nvrtc, driverVersion: driverVersion, environment: environment)
        let symbols = library.symbols
        getErrorString = try symbols.function("nvrtcGetErrorString", snn_nvrtcGetErrorString_t.self)
        createProgram = try symbols.function("nvrtcCreateProgram", snn_nvrtcCreateProgram_t.self)
        destroyProgram = try symbols.function("nvrtcDestroyProgram", snn_nvrtcDestroyProgram_t.self)
        compileProgram = try symbols.function("nvrtcCompileProgram", snn_nvrtcCompileProgram_t.self)
        getCUBINSize = try symbols.function("nvrtcGetCUBINSize", snn_nvrtcGetCUBINSize_t.self)
        getCUBIN = try symbols.function("nvrtcGetCUBIN", snn_nvrtcGetCUBIN_t.self)
        getLogSize = try symbols.function("nvrtcGetProgramLogSize", snn_nvrtcGetProgramLogSize_t.self)
        getLog = try symbols.function("nvrtcGetProgramLog", snn_nvrtcGetProgramLog_t.self)
    }

    /// Throws a ``LibraryError`` naming `function` and NVRTC's message unless `result` is
    /// `NVRTC_SUCCESS`.
    func check(_ result: snn_nvrtcResult, _ function: String, _ detail: String = "") throws {
        guard result != 0 else { return }
        let text = getErrorString(result).map { String(cString: $0) } ?? "NVRTC error \(result)"
        throw LibraryError("[\(function)] \(text)\(detail)")
    }

    /// Compiles `source` (named `name` in messages, e.g. `neuron_scan.cu`) for `architecture`
    /// (`sm_90`) and returns the CUBIN.
    ///
    /// - Throws: ``LibraryError`` with NVRTC's log (file, line and message of each error) when
    ///   the source does not compile.
    public func compile(_ source: String, name: String, architecture: String, options: [String] = []) throws -> [UInt8] {
        try compileWithLog(source, name: name, architecture: architecture, options: options).cubin
    }

    /// ``compile(_:name:architecture:options:)``, also returning NVRTC's log (with
    /// `--ptxas-options=-v` among the options, each kernel's registers, stack and spills: see
    /// ``KernelResources``).
    public func compileWithLog(_ source: String, name: String, architecture: String, options: [String] = []) throws
        -> (cubin: [UInt8], log: String) {
        var program: snn_nvrtcProgram?
        try check(createProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = destroyProgram(&program) }
        let arguments = ["--gpu-architecture=\(architecture)"] + options
        let pointers = arguments.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        let compiled = pointers.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
            compileProgram(program, Int32(buffer.count), buffer.baseAddress)
        }
        if compiled != 0 {
            try check(compiled, "nvrtcCompileProgram", " compiling \(name) for \(architecture) with NVRTC \(library.version):\n"
                      + log(program))
        }
        var size = 0
        try check(getCUBINSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [UInt8](repeating: 0, count: size)
        try cubin.withUnsafeMutableBufferPointer { buffer in
            try buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: size) {
                try check(getCUBIN(program, $0), "nvrtcGetCUBIN")
            }
        }
        return (cubin, log(program))
    }

    private func log(_ program: snn_nvrtcProgram?) -> String {
        var size = 0
        guard getLogSize(program, &size) == 0, size > 1 else { return "" }
        var text = [CChar](repeating: 0, count: size)
        guard getLog(program, &text) == 0 else { return "" }
        return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// What ptxas reports about one compiled kernel (`--ptxas-options=-v` in NVRTC's log).
public struct KernelResources: Sendable, Equatable {
    public var name: String
    public var registers = 0, stackBytes = 0, spillStoreBytes = 0, spillLoadBytes = 0, sharedBytes = 0

    /// Each kernel of a log, in order. Lines look like:
    ///
    ///     ptxas info    : Compiling entry function 'snn_bn_statistics' for 'sm_90'
    ///     ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    ///     ptxas info    : Used 36 registers, used 1 barriers, 2048 bytes smem
    public static func parse(log: String) -> [KernelResources] {
        var kernels: [KernelResources] = []
        func number(before word: String, in line: Substring) -> Int? {
            guard let range = line.range(of: " \(word)") else { return nil }
            return Int(line[..<range.lowerBound].split(separator: " ").last ?? "")
        }
        for line in log.split(separator: "\n") {
            if let start = line.range(of: "Compiling entry function '") {
                let rest = line[start.upperBound...]
                kernels.append(KernelResources(name: String(rest.prefix { $0 != "'" })))
            } else if !kernels.isEmpty, line.contains("bytes stack frame") {
                kernels[kernels.count - 1].stackBytes = number(before: "bytes stack frame", in: line) ?? -1
                kernels[kernels.count - 1].spillStoreBytes = number(before: "bytes spill stores", in: line) ?? -1
                kernels[kernels.count - 1].spillLoadBytes = number(before: "bytes spill loads", in: line) ?? -1
            } else if !kernels.isEmpty, line.contains("Used ") {
                kernels[kernels.count - 1].registers = number(before: "registers", in: line) ?? -1
                kernels[kernels.count - 1].sharedBytes = number(before: "bytes smem", in: line) ?? 0
            }
        }
        return kernels
    }
}

/// Compiled kernels on disk: one file per source, options, architecture and NVRTC version, in
/// `SNN_KERNEL_CACHE`, else `$XDG_CACHE_HOME/swiftsnn/kernels`, else `~/.cache/swiftsnn/kernels`.
///
/// A file holds the whole key (its length, then its text), then the CUBIN's length and checksum,
/// then the CUBIN; it is used only when the key matches exactly and the CUBIN is whole, so
/// neither a hash collision nor a truncated or foreign file can load the wrong code: such a
/// file is compiled again and replaced. Files are written to a
/// temporary name and renamed, so processes sharing the cache never see half a file.
public struct KernelCache: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// The cache folder the environment names (see the type's description).
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["SNN_KERNEL_CACHE"], !explicit.isEmpty { return explicit }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return "\(xdg)/swiftsnn/kernels" }
        return "\(environment["HOME"] ?? NSTemporaryDirectory())/.cache/swiftsnn/kernels"
    }

    /// The key's text: everything the CUBIN depends on.
    static func key(source: String, name: String, architecture: String, options: [String], compiler: String) -> String {
        ([compiler, architecture, name] + options + [source]).joined(separator: "\u{0}")
    }

    /// The file for a key: its name says what it is; two 64-bit FNV-1a hashes tell keys apart.
    func path(name: String, architecture: String, key: String) -> String {
        let bytes = Array(key.utf8)
        let hash = String(Self.checksum(bytes), radix: 16) + String(Self.checksum(bytes, seed: 0x8422_2325_cbf2_9ce4), radix: 16)
        let stem = name.replacingOccurrences(of: "/", with: "_")
        return "\(directory)/\(stem)-\(architecture)-\(hash).cubin"
    }

    /// The CUBIN for `source`, from the cache or compiled by `nvrtc` (and then stored).
    ///
    /// - Returns: the CUBIN and whether it came from the cache.
    /// - Throws: what compiling throws; a cache that cannot be written is not an error (the
    ///   kernel is compiled again next time).
    public func cubin(for source: String, name: String, architecture: String, options: [String] = [],
                      nvrtc: NVRTC) throws -> (cubin: [UInt8], cached: Bool) {
        let key = Self.key(source: source, name: name, architecture: architecture, options: options,
                           compiler: "NVRTC \(nvrtc.library.version)")
        let file = path(name: name, architecture: architecture, key: key)
        if let stored = Self.read(file, key: key) { return (stored, true) }
        let cubin = try nvrtc.compile(source, name: name, architecture: architecture, options: options)
        Self.write(file, key: key, cubin: cubin)
        return (cubin, false)
    }

    /// The CUBIN of a file whose key is `key` and whose CUBIN is whole (its length and checksum
    /// match), or nil.
    static func read(_ file: String, key: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        let bytes = [UInt8](data)
        func integer(at offset: Int) -> Int? {
            guard offset + 8 <= bytes.count else { return nil }
            return bytes[offset..<(offset + 8)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        }
        let keyBytes = Array(key.utf8)
        guard let length = integer(at: 0), length == keyBytes.count, bytes.count >= 8 + length + 16,
              Array(bytes[8..<(8 + length)]) == keyBytes,
              let size = integer(at: 8 + length), let sum = integer(at: 16 + length) else { return nil }
        let cubin = Array(bytes[(24 + length)...])
        guard cubin.count == size, UInt64(bitPattern: Int64(sum)) == checksum(cubin) else { return nil }
        return cubin
    }

    /// 64-bit FNV-1a.
    static func checksum(_ bytes: [UInt8], seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        bytes.reduce(seed) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    /// Eight little-endian bytes.
    static func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// Stores a CUBIN under its key, atomically (temporary file, then rename); failures are ignored.
    static func write(_ file: String, key: String, cubin: [UInt8]) {
        let directory = (file as NSString).deletingLastPathComponent
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil else {
            return
        }
        let keyBytes = Array(key.utf8)
        let contents = littleEndian(UInt64(keyBytes.count)) + keyBytes + littleEndian(UInt64(cubin.count))
            + littleEndian(checksum(cubin)) + cubin
        let temporary = "\(file).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(contents)) else { return }
        if rename(temporary, file) != 0 { unlink(temporary) }
    }
}
