import CCUDA
import Foundation
import SNNLibraries

#if canImport(Glibc)
import Glibc
#endif

/// The CUDA driver API (`libcuda.so.1`, installed with the NVIDIA driver), opened at run time so
/// that `snn` builds without a CUDA SDK and runs on machines without a GPU.
///
/// The function types are `CCUDA`'s (`Sources/CCUDA/snn_cuda.h`), written from the driver API's
/// `cuda.h` and checked against it at compile time by the tests. Every call goes through
/// ``check(_:_:)``, which names the function and the driver's error name and text.
public struct CUDADriver: @unchecked Sendable {
    /// The file opened.
    public let path: String
    /// Its `dlopen` handle (kept open): ``CUDADevice`` binds the functions that compute from it.
    let handle: UnsafeMutableRawPointer
    /// `cuDriverGetVersion`'s integer: `13000` for CUDA 13.0.
    public let versionCode: Int32

    /// `13.0`: the newest CUDA version this driver runs.
    public var version: String { CUDAToolkit.versionString(code: versionCode) }

    /// `CUdevice_attribute` values used here (cuda.h).
    enum Attribute: UInt32 {
        case multiprocessorCount = 16
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
        case cooperativeLaunch = 95
    }

    /// `CUDA_ERROR_NO_DEVICE`: `cuInit` fails with it where the driver sees no GPU.
    static let noDevice: snn_CUresult = 100

    let initialize: snn_cuInit_t
    let driverGetVersion: snn_cuDriverGetVersion_t
    let deviceGetCount: snn_cuDeviceGetCount_t
    let deviceGet: snn_cuDeviceGet_t
    let deviceGetName: snn_cuDeviceGetName_t
    let deviceTotalMem: snn_cuDeviceTotalMem_v2_t
    let deviceGetAttribute: snn_cuDeviceGetAttribute_t
    let getErrorName: snn_cuGetErrorName_t
    let getErrorString: snn_cuGetErrorString_t

    /// The places `libcuda.so.1` is looked for: each directory of `SNN_CUDA_LIBRARY_PATH`, the
    /// loader's path, then where drivers put it (`/usr/local/nvidia` in containers, the
    /// distribution's library folders, WSL's).
    static func candidates(environment: [String: String]) -> [LibrarySearch.Place] {
        let name = "libcuda.so.1"
        return CUDAToolkit.explicitDirectories(environment).map { .path("\($0)/\(name)") } + [.loader(name)]
            + ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib"]
            .map { .path("\($0)/\(name)") }
    }

    /// Opens the driver.
    ///
    /// - Throws: ``LibraryError`` listing every place tried when no driver is found, or naming
    ///   the missing function of a file that is not the driver.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> CUDADriver {
        let (opened, tried) = LibrarySearch.open(candidates(environment: environment))
        if let opened { return try CUDADriver(handle: opened.handle, path: opened.file) }
        throw LibraryError("[CUDA] no NVIDIA driver found: libcuda.so.1 is not in \(tried.joined(separator: ", ")) "
                           + "(install the NVIDIA driver, or set SNN_CUDA_LIBRARY_PATH to the folder that holds libcuda.so.1)")
    }

    private init(handle: UnsafeMutableRawPointer, path: String) throws {
        let symbols = Symbols(handle: handle, path: path, library: "CUDA", expected: "the CUDA driver library")
        func function<T>(_ name: String, _ type: T.Type) throws -> T { try symbols.function(name, type) }
        self.path = path
        self.handle = handle
        initialize = try function("cuInit", snn_cuInit_t.self)
        driverGetVersion = try function("cuDriverGetVersion", snn_cuDriverGetVersion_t.self)
        deviceGetCount = try function("cuDeviceGetCount", snn_cuDeviceGetCount_t.self)
        deviceGet = try function("cuDeviceGet", snn_cuDeviceGet_t.self)
        deviceGetName = try function("cuDeviceGetName", snn_cuDeviceGetName_t.self)
        deviceTotalMem = try function("cuDeviceTotalMem_v2", snn_cuDeviceTotalMem_v2_t.self)
        deviceGetAttribute = try function("cuDeviceGetAttribute", snn_cuDeviceGetAttribute_t.self)
        getErrorName = try function("cuGetErrorName", snn_cuGetErrorName_t.self)
        getErrorString = try function("cuGetErrorString", snn_cuGetErrorString_t.self)
        var code: Int32 = 0
        let result = driverGetVersion(&code)
        versionCode = code
        try check(result, "cuDriverGetVersion")
    }

    /// The driver's name and text for a result (`CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected`).
    public func message(for result: snn_CUresult) -> String {
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = getErrorName(result, &name)
        _ = getErrorString(result, &text)
        let parts = [name, text].compactMap { $0.map { String(cString: $0) } }
        return parts.isEmpty ? "CUDA error \(result)" : parts.joined(separator: ": ")
    }

    /// Throws a ``LibraryError`` naming `function` and the driver's message unless `result` is
    /// `CUDA_SUCCESS`.
    public func check(_ result: snn_CUresult, _ function: String) throws {
        guard result != 0 else { return }
        throw LibraryError("[\(function)] \(message(for: result))")
    }

    /// One GPU as the driver describes it.
    public struct Device: Sendable, Equatable {
        public let ordinal: Int
        public let name: String
        public let memoryBytes: Int
        public let computeCapability: (major: Int, minor: Int)
        public let multiprocessors: Int

        /// `sm_90`.
        public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }

        public static func == (a: Device, b: Device) -> Bool {
            a.ordinal == b.ordinal && a.name == b.name && a.memoryBytes == b.memoryBytes
                && a.computeCapability == b.computeCapability && a.multiprocessors == b.multiprocessors
        }
    }

    /// Every GPU the driver sees; none (not an error) when `cuInit` reports no device.
    ///
    /// - Throws: ``LibraryError`` naming the call that failed otherwise.
    public func devices() throws -> [Device] {
        let result = initialize(0)
        if result == Self.noDevice { return [] }
        try check(result, "cuInit")
        var count: Int32 = 0
        try check(deviceGetCount(&count), "cuDeviceGetCount")
        return try (0..<Int(count)).map { ordinal in
            var device: Int32 = 0
            try check(deviceGet(&device, Int32(ordinal)), "cuDeviceGet")
            var name = [CChar](repeating: 0, count: 256)
            try check(deviceGetName(&name, Int32(name.count - 1), device), "cuDeviceGetName")
            var bytes = 0
            try check(deviceTotalMem(&bytes, device), "cuDeviceTotalMem_v2")
            func attribute(_ a: Attribute) throws -> Int {
                var value: Int32 = 0
                try check(deviceGetAttribute(&value, a.rawValue, device), "cuDeviceGetAttribute")
                return Int(value)
            }
            return Device(ordinal: ordinal, name: String(cString: name), memoryBytes: bytes,
                          computeCapability: (try attribute(.computeCapabilityMajor), try attribute(.computeCapabilityMinor)),
                          multiprocessors: try attribute(.multiprocessorCount))
        }
    }
}
