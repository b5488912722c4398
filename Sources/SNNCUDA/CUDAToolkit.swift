import CCUDA
import Foundation
import SNNLibraries

#if canImport(Glibc)
import Glibc
#endif

/// The CUDA libraries the GPU backend computes with besides the driver: NVRTC (our kernels,
/// compiled at run time), cuBLAS and cuDNN, each found and opened at run time.
///
/// They come from a CUDA toolkit (`/usr/local/cuda/lib64`) or from NVIDIA's PyPI wheels, which
/// machines with PyTorch have: CUDA 12's put each library in its own folder
/// (`site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12`, `nvidia/cublas/lib/libcublas.so.12`),
/// CUDA 13's put them together (`nvidia/cu13/lib/libnvrtc.so.13`); cuDNN 9's wheels use
/// `nvidia/cudnn/lib/libcudnn.so.9` for both. A library of a newer CUDA than the driver runs is
/// skipped: the newest major version the driver supports is tried first.
///
/// Their function types are `CCUDA`'s (`Sources/CCUDA/snn_cuda.h`).
public enum CUDAToolkit {
    /// One library of the toolkit.
    public enum Component: String, CaseIterable, Sendable {
        case nvrtc = "NVRTC", cublas = "cuBLAS", cudnn = "cuDNN"

        /// The file name for a CUDA major version (cuDNN's is its own: 9).
        func fileName(cudaMajor: Int) -> String {
            switch self {
            case .nvrtc: "libnvrtc.so.\(cudaMajor)"
            case .cublas: "libcublas.so.\(cudaMajor)"
            case .cudnn: "libcudnn.so.9"
            }
        }

        /// Where the wheels of a CUDA major version put it, relative to `site-packages`.
        func wheelPaths(cudaMajor: Int) -> [String] {
            let file = fileName(cudaMajor: cudaMajor)
            switch self {
            case .nvrtc: return cudaMajor >= 13 ? ["nvidia/cu\(cudaMajor)/lib/\(file)"] : ["nvidia/cuda_nvrtc/lib/\(file)"]
            case .cublas: return cudaMajor >= 13 ? ["nvidia/cu\(cudaMajor)/lib/\(file)"] : ["nvidia/cublas/lib/\(file)"]
            case .cudnn: return ["nvidia/cudnn/lib/\(file)"]
            }
        }

        /// What to install when it is missing.
        var install: String {
            switch self {
            case .nvrtc: "pip install nvidia-cuda-nvrtc (CUDA 13) or nvidia-cuda-nvrtc-cu12"
            case .cublas: "pip install nvidia-cublas (CUDA 13) or nvidia-cublas-cu12"
            case .cudnn: "pip install nvidia-cudnn-cu13 or nvidia-cudnn-cu12"
            }
        }
    }

    /// A library found and opened (it stays open), with the version it reports.
    public struct Library: @unchecked Sendable {
        public let component: Component
        public let path: String
        public let version: String
        /// Its functions, for the code that binds more of them (``NVRTC``).
        let symbols: Symbols
    }

    /// The CUDA majors to try for a driver (`13000` → 13, then 12), newest first; both when the
    /// driver is unknown.
    static func cudaMajors(driverVersion: Int32?) -> [Int] {
        let supported = [13, 12]
        guard let driverVersion else { return supported }
        return supported.filter { $0 <= Int(driverVersion) / 1000 }
    }

    /// The places tried for a component, in order: `SNN_CUDA_LIBRARY_PATH`'s folders, the loader's
    /// path, the Python wheels (``LibrarySearch/pythonSitePackages(environment:)``), then
    /// `/usr/local/cuda/lib64`; each for every CUDA major the driver supports, newest first.
    static func candidates(_ component: Component, driverVersion: Int32?, environment: [String: String])
        -> [LibrarySearch.Place] {
        var places: [LibrarySearch.Place] = []
        var seen = Set<String>()
        func add(_ place: LibrarySearch.Place) { if seen.insert(place.description).inserted { places.append(place) } }
        for major in cudaMajors(driverVersion: driverVersion) {
            let file = component.fileName(cudaMajor: major)
            explicitDirectories(environment).forEach { add(.path("\($0)/\(file)")) }
            add(.loader(file))
            LibrarySearch.wheelPlaces(component.wheelPaths(cudaMajor: major), environment: environment).forEach(add)
            add(.path("/usr/local/cuda/lib64/\(file)"))
        }
        return places
    }

    /// The folders of `SNN_CUDA_LIBRARY_PATH` (colon-separated), tried before anything else.
    static func explicitDirectories(_ environment: [String: String]) -> [String] {
        (environment["SNN_CUDA_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    /// Opens the first place of ``candidates(_:driverVersion:environment:)`` that loads and asks
    /// its version.
    ///
    /// - Throws: ``LibraryError`` listing every place tried and what to install, or naming the
    ///   missing version function of a file that is not the library.
    public static func load(_ component: Component, driverVersion: Int32?,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Library {
        let (opened, tried) = LibrarySearch.open(candidates(component, driverVersion: driverVersion, environment: environment))
        if let opened {
            let symbols = Symbols(handle: opened.handle, path: opened.file, library: component.rawValue,
                                  expected: "\(component.rawValue)")
            return Library(component: component, path: opened.file, version: try version(component, symbols), symbols: symbols)
        }
        throw LibraryError("[\(component.rawValue)] not found (tried \(tried.joined(separator: ", "))): \(component.install), "
                           + "or set SNN_CUDA_LIBRARY_PATH")
    }

    private static func version(_ component: Component, _ symbols: Symbols) throws -> String {
        switch component {
        case .nvrtc:
            let query = try symbols.function("nvrtcVersion", snn_nvrtcVersion_t.self)
            var (major, minor): (Int32, Int32) = (0, 0)
            let result = query(&major, &minor)
            guard result == 0 else { throw LibraryError("[nvrtcVersion] \(symbols.path): NVRTC error \(result)") }
            return "\(major).\(minor)"
        case .cublas:
            let query = try symbols.function("cublasGetProperty", snn_cublasGetProperty_t.self)
            let parts = try (0..<3).map { property -> Int32 in
                var value: Int32 = 0
                let result = query(snn_libraryPropertyType(property), &value)
                guard result == 0 else { throw LibraryError("[cublasGetProperty] \(symbols.path): cuBLAS status \(result)") }
                return value
            }
            return parts.map(String.init).joined(separator: ".")
        case .cudnn:
            let code = try symbols.function("cudnnGetVersion", snn_cudnnGetVersion_t.self)()
            return "\(code / 10_000).\((code % 10_000) / 100).\(code % 100)"
        }
    }

    /// `13.0` from `13000`, `12.8` from `12080`.
    public static func versionString(code: Int32) -> String { "\(code / 1000).\((code % 1000) / 10)" }
}
