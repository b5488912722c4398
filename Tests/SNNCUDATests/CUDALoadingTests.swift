import Foundation
@testable import SNNCUDA
import SNNLibraries
import SNNTestSupport
import Testing

/// Finding and binding the CUDA driver, NVRTC, cuBLAS and cuDNN, against stand-ins compiled by
/// the test (`CUDAStubLibraries`) and against a machine without them.
@Suite("CUDA libraries")
struct CUDALoadingTests {
    @Test("a driver with two GPUs: versions, names, memory, SM versions, multiprocessors")
    func driverDevices() throws {
        let folder = try CUDAStubLibraries.folder(["libcuda.so.1": CUDAStubLibraries.driverSource(initResult: 0)])
        let driver = try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent:\(folder)"])
        #expect(driver.path == "\(folder)/libcuda.so.1")
        #expect(driver.version == "13.0")
        let devices = try driver.devices()
        #expect(devices.map(\.name) == ["SwiftSNN stub GPU 0", "SwiftSNN stub GPU 1"])
        #expect(devices.map(\.memoryBytes) == [80 << 30, 81 << 30])
        #expect(devices.map(\.architecture) == ["sm_90", "sm_91"])
        #expect(devices.map(\.multiprocessors) == [132, 132])
    }

    @Test("no GPU is an empty list; a failing driver call is named with the driver's message")
    func driverFailures() throws {
        let none = try CUDAStubLibraries.folder(["libcuda.so.1": CUDAStubLibraries.driverSource(initResult: 100)])
        let failing = try CUDAStubLibraries.folder(["libcuda.so.1": CUDAStubLibraries.driverSource(initResult: 999)])
        let broken = try CUDAStubLibraries.folder(["libcuda.so.1": CUDAStubLibraries.notADriverSource])
        #expect(try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": none]).devices().isEmpty)
        #expect(throws: LibraryError("[cuInit] CUDA_ERROR_UNKNOWN: unknown error")) {
            try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": failing]).devices()
        }
        #expect(throws: LibraryError("[CUDA] \(broken)/libcuda.so.1 has no cuInit: not the CUDA driver library")) {
            try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": broken])
        }
    }

    @Test("no driver: one error listing every place tried")
    func noDriver() throws {
        do {
            let driver = try CUDADriver.load(environment: ["SNN_CUDA_LIBRARY_PATH": "/nonexistent/a"])
            // A machine with a driver (a GPU host): then it must report a version.
            #expect(driver.versionCode >= 12000)
        } catch {
            #expect("\(error)".hasPrefix("[CUDA] no NVIDIA driver found: libcuda.so.1 is not in /nonexistent/a/libcuda.so.1, "
                                         + "libcuda.so.1 (loader path), /usr/local/nvidia/lib64/libcuda.so.1, "))
            #expect("\(error)".hasSuffix("or set SNN_CUDA_LIBRARY_PATH to the folder that holds libcuda.so.1)"))
        }
    }

    @Test("NVRTC, cuBLAS and cuDNN: found in SNN_CUDA_LIBRARY_PATH, versions read")
    func toolkitVersions() throws {
        let folder = try CUDAStubLibraries.folder(["libnvrtc.so.13": CUDAStubLibraries.nvrtcSource,
                                               "libcublas.so.13": CUDAStubLibraries.cublasSource,
                                               "libcudnn.so.9": CUDAStubLibraries.cudnnSource])
        let environment = ["SNN_CUDA_LIBRARY_PATH": folder]
        let found = try CUDAToolkit.Component.allCases.map { try CUDAToolkit.load($0, driverVersion: 13000, environment: environment) }
        #expect(found.map(\.version) == ["13.0", "13.1.0", "9.13.0"])
        #expect(found.map(\.path) == ["\(folder)/libnvrtc.so.13", "\(folder)/libcublas.so.13", "\(folder)/libcudnn.so.9"])
        // A CUDA 12 driver cannot run CUDA 13's libraries: they are not even tried.
        #expect(throws: (any Error).self) { try CUDAToolkit.load(.nvrtc, driverVersion: 12080, environment: environment) }
    }

    @Test("the places tried: the driver's CUDA versions newest first, wheels of both layouts, the toolkit")
    func toolkitCandidates() throws {
        let venv = NSTemporaryDirectory() + "snn-venv-\(UUID().uuidString)"
        let cu13 = "\(venv)/lib/python3.12/site-packages/nvidia/cu13/lib"
        try FileManager.default.createDirectory(atPath: cu13, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: venv) }
        _ = FileManager.default.createFile(atPath: "\(cu13)/libnvrtc.so.13", contents: Data())
        let environment = ["VIRTUAL_ENV": venv, "HOME": "/nonexistent", "PATH": "/usr/bin"]
        let places = CUDAToolkit.candidates(.nvrtc, driverVersion: 13000, environment: environment)
        let descriptions = places.map(\.description)
        #expect(descriptions.first == "libnvrtc.so.13 (loader path)")
        #expect(descriptions.contains("\(cu13)/libnvrtc.so.13"))
        #expect(descriptions.contains("\(venv)/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"))
        #expect(descriptions.contains("/usr/local/cuda/lib64/libnvrtc.so.12"))
        // 13's places all come before 12's; only existing files are opened.
        let firstTwelve = try #require(descriptions.firstIndex { $0.hasSuffix(".so.12") || $0.contains(".so.12 ") })
        #expect(descriptions[..<firstTwelve].allSatisfy { $0.contains(".so.13") })
        #expect(places.first { $0.description == "\(cu13)/libnvrtc.so.13" }?.file == "\(cu13)/libnvrtc.so.13")
        #expect(places.first { $0.description.hasSuffix("cuda_nvrtc/lib/libnvrtc.so.12") }?.file == nil)
        #expect(!CUDAToolkit.candidates(.cublas, driverVersion: 12020, environment: environment).contains { $0.description.contains(".so.13") })
        #expect(CUDAToolkit.candidates(.cudnn, driverVersion: 13000, environment: environment).map(\.description)
            .contains("\(venv)/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9"))
    }

    @Test("a virtual environment used without activating it: the python3 first on PATH")
    func pythonOnPath() throws {
        let venv = NSTemporaryDirectory() + "snn-venv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(venv)/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(venv)/lib/python3.12/site-packages", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: venv) }
        _ = FileManager.default.createFile(atPath: "\(venv)/bin/python3", contents: Data(), attributes: [.posixPermissions: 0o755])
        let sites = LibrarySearch.pythonSitePackages(environment: ["PATH": "\(venv)/bin:/usr/bin", "HOME": "/nonexistent"])
        #expect(sites.first?.directory == "\(venv)/lib/python3.12/site-packages")
        // The system's python3 adds nothing beyond the system folders.
        let system = LibrarySearch.pythonSitePackages(environment: ["PATH": "/usr/bin", "HOME": "/nonexistent"])
        #expect(!system.contains { $0.directory?.hasPrefix("/usr/lib/python3.") == true || $0.pattern.hasPrefix("/usr/lib/python3*") })
    }
}

extension LibraryError: Equatable {
    public static func == (a: LibraryError, b: LibraryError) -> Bool { a.description == b.description }
}
