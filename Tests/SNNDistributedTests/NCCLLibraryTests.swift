import Foundation
import CNCCL
@testable import SNNDistributed
import Testing

/// Finding and binding NCCL. No NCCL is installed by `make test`; the test of a real library runs
/// when `SNN_TEST_NCCL_LIBRARY` names a `libnccl.so.2` (from `pip download nvidia-nccl-cu12`,
/// unzipped): `ncclGetVersion` and `ncclGetUniqueId` need no GPU.
@Suite("NCCL library")
struct NCCLLibraryTests {
    @Test("version codes: 2.9 and later, and the older encoding")
    func versions() {
        #expect(NCCLLibrary.versionNumber(code: 22105) == "2.21.5")
        #expect(NCCLLibrary.versionNumber(code: 23203) == "2.32.3")
        #expect(NCCLLibrary.versionNumber(code: 2708) == "2.7.8")
    }

    @Test("ncclUniqueId is 128 bytes, and bytes round-trip through it")
    func uniqueIDLayout() {
        #expect(MemoryLayout<snn_ncclUniqueId>.size == NCCLLibrary.uniqueIDByteCount)
        let bytes = (0..<128).map { UInt8(255 - $0) }
        var id = NCCLLibrary.uniqueID(bytes)
        #expect(withUnsafeBytes(of: &id) { Array($0) } == bytes)
    }

    @Test("no NCCL: one error listing every place tried")
    func missing() throws {
        let environment = ["VIRTUAL_ENV": "/nonexistent/venv", "CONDA_PREFIX": "/nonexistent/conda", "HOME": "/nonexistent/home"]
        do {
            let library = try NCCLLibrary.load(environment: environment)
            // An NCCL on the loader's path (a GPU host): then it must say what it is.
            #expect(library.version.hasPrefix("NCCL 2."))
            return
        } catch {
            let message = "\(error)"
            #expect(message.hasPrefix("[NCCL] no NCCL library found (tried libnccl.so.2 (loader path), "
                                      + "/nonexistent/venv/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2, "
                                      + "/nonexistent/conda/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2, "
                                      + "/nonexistent/home/.local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2, "))
            #expect(message.contains("/usr/local/lib/python3"))
            #expect(message.contains("/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2)"))
            #expect(message.hasSuffix("pip install nvidia-nccl-cu12 (or -cu13), or set SNN_NCCL_LIBRARY=/path/libnccl.so.2"))
        }
    }

    @Test("SNN_NCCL_LIBRARY that does not load is named, with the loader's reason")
    func explicitMissing() {
        do {
            _ = try NCCLLibrary.load(environment: ["SNN_NCCL_LIBRARY": "/nonexistent/libnccl.so.2"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".hasPrefix("[NCCL] SNN_NCCL_LIBRARY=/nonexistent/libnccl.so.2 could not be loaded "
                                         + "(tried /nonexistent/libnccl.so.2): "))
            #expect("\(error)".contains("No such file"))
        }
    }

    @Test("a library that is not NCCL is named")
    func notNCCL() {
        do {
            _ = try NCCLLibrary.load(environment: ["SNN_NCCL_LIBRARY": "libm.so.6"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "[NCCL] libm.so.6 has no ncclGetVersion: not an NCCL 2 library")
        }
    }

    @Test("a wheel's NCCL is found in a virtual environment, and reports its version (SNN_TEST_NCCL_LIBRARY)")
    func wheel() throws {
        guard let real = ProcessInfo.processInfo.environment["SNN_TEST_NCCL_LIBRARY"], !real.isEmpty else { return }
        let venv = FileManager.default.temporaryDirectory.appendingPathComponent("snn-nccl-venv-\(getpid())").path
        let lib = "\(venv)/lib/python3.12/site-packages/nvidia/nccl/lib"
        try FileManager.default.createDirectory(atPath: lib, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: venv) }
        try FileManager.default.createSymbolicLink(atPath: "\(lib)/libnccl.so.2", withDestinationPath: real)
        let library = try NCCLLibrary.load(environment: ["VIRTUAL_ENV": venv])
        #expect(library.path == "\(lib)/libnccl.so.2" || library.path == "libnccl.so.2")
        #expect(library.version.hasPrefix("NCCL 2."), "\(library.version)")
        print("[NCCLLibraryTests] \(library.version) from \(library.path)")
        let id = try library.uniqueID()
        #expect(id.count == 128 && id.contains { $0 != 0 })
    }
}
