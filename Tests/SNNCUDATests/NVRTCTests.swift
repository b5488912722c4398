import Foundation
@testable import SNNCUDA
import SNNLibraries
import SNNTestSupport
import Testing

/// The CUDA 13 wheels `make` installs (nvidia-cuda-nvrtc, nvidia-cuda-runtime): NVRTC, which runs
/// without a GPU, and the headers the C prototypes are checked against.
enum CUDAWheels {
    /// `.../site-packages/nvidia/cu13`, or nil when the wheels are not installed.
    static let folder: String? = LibrarySearch.wheelPlaces(["nvidia/cu13/include/nvrtc.h"],
                                                            environment: ProcessInfo.processInfo.environment)
        .compactMap(\.file).first.map { (($0 as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent }

    static let missing = "the CUDA 13 wheels are not installed: make deps (or pip install nvidia-cuda-nvrtc nvidia-cuda-runtime)"
}

@Suite("NVRTC and the CUDA headers")
struct NVRTCTests {
    static let kernel = """
        extern "C" __global__ void scale(float *x, float a, int n) {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n) x[i] *= a;
        }
        """

    /// cuBLAS's, cuDNN's and NCCL's headers, read out of their wheels by `make deps`.
    static let libraryHeaders = "\(EmulatedCUDADriver.root)/.build/library-headers/include"

    @Test("SwiftSNN's C prototypes match cuda.h, nvrtc.h, cublas_api.h, cudnn.h and nccl.h (and a prototype that drifts is caught)",
          arguments: [
              ("CCUDA/snn_cuda.h", "(snn_CUdevice *device, int ordinal)", "(snn_CUdevice *device, long ordinal)", "snn_cuDeviceGet_t"),
              ("CCUDA/snn_cuda.h", "int m, int n, int k, const float *alpha", "int m, int n, long k, const float *alpha",
               "snn_cublasSgemm_v2_t"),
              ("CCUDA/snn_cuda.h", "int k, int c, int h, int w);", "long k, int c, int h, int w);", "snn_cudnnSetFilter4dDescriptor_t"),
              ("CCUDA/snn_cuda.h", "    float time;", "    double time;", "cudnnConvolutionFwdAlgoPerf_t has snn_cudnnConvolutionAlgoPerf_t"),
              ("CNCCL/shim.h", "void *recvbuff, size_t count, unsigned int datatype,\n                                                unsigned int op",
               "void *recvbuff, int count, unsigned int datatype,\n                                                unsigned int op",
               "snn_ncclAllReduce_t"),
              ("CNCCL/shim.h", "int nranks, SNN_NCCL_UNIQUE_ID commId, int rank)", "int nranks, SNN_NCCL_UNIQUE_ID *commId, int rank)",
               "snn_ncclCommInitRank_t"),
          ])
    func prototypes(header path: String, original: String, drift: String, caught: String) throws {
        let folder = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
        for header in ["cudnn.h", "nccl.h"] {
            #expect(FileManager.default.fileExists(atPath: "\(Self.libraryHeaders)/\(header)"),
                    "\(header) is missing: make deps (scripts/fetch_library_headers.py)")
        }
        let sources = "\(EmulatedCUDADriver.root)/Sources"
        let check = "\(EmulatedCUDADriver.root)/Tests/SNNCUDATests/Prototypes/check_prototypes.c"
        let flags = ["-fsyntax-only", "-Werror=incompatible-pointer-types", "-DSNN_REQUIRE_LIBRARY_HEADERS", "-I\(folder)/include",
                     "-I\(Self.libraryHeaders)"]
        let headers = ["-I\(sources)/CCUDA", "-I\(sources)/CNCCL"]
        let good = try HostCompiler.run(["cc"] + flags + headers + [check])
        #expect(good.status == 0, "\(good.output)")
        // The check can fail: the same file against a header with one prototype or field changed,
        // found first.
        let drifted = FileManager.default.temporaryDirectory.appendingPathComponent("snn-drifted-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: drifted, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: drifted) }
        let header = try String(contentsOfFile: "\(sources)/\(path)", encoding: .utf8)
        let wrong = header.replacingOccurrences(of: original, with: drift)
        #expect(wrong != header)
        try wrong.write(to: drifted.appendingPathComponent((path as NSString).lastPathComponent), atomically: true, encoding: .utf8)
        let bad = try HostCompiler.run(["cc"] + flags + ["-I\(drifted.path)"] + headers + [check])
        #expect(bad.status != 0 && bad.output.contains(caught), "\(bad.output)")
    }

    /// What is wrong with the functions `source` binds by name (`function("X", snn_X_t.self)`): a
    /// name that is not its type's, or whose type `checked` (the `CHECK(X, …)` names of
    /// check_prototypes.c) does not check against the real header. Also returns how many it saw.
    static func bindingProblems(source: String, checked: Set<String>) throws -> (problems: [String], bound: Int) {
        let binding = try Regex(#"function\(\s*"([A-Za-z0-9_]+)"\s*,\s*(snn_[A-Za-z0-9_]+)\.self"#)
        var problems: [String] = [], bound = 0
        for match in source.matches(of: binding) {
            guard let name = match.output[1].substring.map(String.init),
                  let type = match.output[2].substring.map(String.init) else { continue }
            bound += 1
            if type != "snn_\(name)_t" { problems.append("\(name) is bound with \(type)") }
            if !checked.contains(name) { problems.append("\(name) has no CHECK line in check_prototypes.c") }
        }
        return (problems, bound)
    }

    @Test("every CUDA function bound by name has its own prototype type, checked against the real header")
    func boundNamesAreChecked() throws {
        // The prototype check above proves each snn_X_t matches X in the header; this proves the
        // string dlsym looks up is that X, so a misspelt name cannot first fail on a GPU.
        let root = EmulatedCUDADriver.root
        let prototypes = try String(contentsOfFile: "\(root)/Tests/SNNCUDATests/Prototypes/check_prototypes.c", encoding: .utf8)
        let checked = Set(prototypes.matches(of: try Regex(#"CHECK\(([A-Za-z0-9_]+),"#)).compactMap {
            $0.output[1].substring.map(String.init)
        })
        let folder = "\(root)/Sources/SNNCUDA"
        var total = 0
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted().filter { $0.hasSuffix(".swift") }
            .map { "\(folder)/\($0)" } + ["\(root)/Sources/SNNDistributed/NCCLLibrary.swift"]
        for file in files {
            let (problems, bound) = try Self.bindingProblems(source: try String(contentsOfFile: file, encoding: .utf8), checked: checked)
            #expect(problems.isEmpty, "\(file): \(problems)")
            total += bound
        }
        #expect(total >= 69, "only \(total) bindings found: has the binding call changed shape?")
        // The scan can fail: a misspelt name, a borrowed type, a function nobody checks.
        let drifted = #"""
            let a = try s.function("cudnnSetConvolutionGroupCnt", snn_cudnnSetConvolutionGroupCount_t.self)
            let b = try s.function(
                "cuMemAlloc_v2", snn_cuMemAllocAsync_t.self)
            """#
        let (problems, bound) = try Self.bindingProblems(source: drifted, checked: checked)
        #expect(bound == 2)
        #expect(problems.count == 4, "\(problems)")
    }

    @Test("a kernel compiles to a CUBIN for sm_80, sm_90 and sm_100")
    func compiles() throws {
        _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
        let nvrtc = try NVRTC()
        #expect(nvrtc.library.version.hasPrefix("13."))
        for architecture in ["sm_80", "sm_90", "sm_100"] {
            let cubin = try nvrtc.compile(Self.kernel, name: "scale.cu", architecture: architecture)
            #expect(Array(cubin.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], "\(architecture): not an ELF file")
        }
    }

    @Test("a kernel that does not compile: NVRTC's log names the file and line")
    func compileError() throws {
        _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
        let nvrtc = try NVRTC()
        do {
            _ = try nvrtc.compile("extern \"C\" __global__ void f(float *x) {\n  x[0] = undefined_name;\n}\n",
                                  name: "broken.cu", architecture: "sm_90")
            Issue.record("expected a compile error")
        } catch {
            let message = "\(error)"
            #expect(message.hasPrefix("[nvrtcCompileProgram] NVRTC_ERROR_COMPILATION compiling broken.cu for sm_90 with NVRTC 13."),
                    "\(message)")
            #expect(message.contains("broken.cu(2)") && message.contains("undefined_name"), "\(message)")
        }
    }

    @Test("the kernel cache: a hit, a miss for other options, a damaged file compiled again")
    func cache() throws {
        _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
        let nvrtc = try NVRTC()
        let directory = NSTemporaryDirectory() + "snn-kernel-cache-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = KernelCache(directory: directory)
        let first = try cache.cubin(for: Self.kernel, name: "scale.cu", architecture: "sm_90", nvrtc: nvrtc)
        let second = try cache.cubin(for: Self.kernel, name: "scale.cu", architecture: "sm_90", nvrtc: nvrtc)
        #expect(!first.cached && second.cached && first.cubin == second.cubin)
        let other = try cache.cubin(for: Self.kernel, name: "scale.cu", architecture: "sm_90", options: ["--use_fast_math"],
                                    nvrtc: nvrtc)
        #expect(!other.cached)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(files.count == 2 && files.allSatisfy { $0.hasPrefix("scale.cu-sm_90-") && $0.hasSuffix(".cubin") }, "\(files)")
        // A damaged file (cut short) is not used: compiled again and replaced.
        for file in files {
            let path = "\(directory)/\(file)"
            let data = try #require(FileManager.default.contents(atPath: path))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        }
        let again = try cache.cubin(for: Self.kernel, name: "scale.cu", architecture: "sm_90", nvrtc: nvrtc)
        #expect(!again.cached && again.cubin == first.cubin)
        #expect(try cache.cubin(for: Self.kernel, name: "scale.cu", architecture: "sm_90", nvrtc: nvrtc).cached)
    }

    @Test("crafted cache files are not used: huge or overflowing lengths, a wrong checksum, a foreign key, an empty file")
    func craftedCacheFiles() throws {
        let directory = NSTemporaryDirectory() + "snn-kernel-cache-crafted-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = "NVRTC 13.0\u{0}sm_90\u{0}k.cu\u{0}source"
        let file = "\(directory)/k.cubin"
        let cubin: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]
        KernelCache.write(file, key: key, cubin: cubin)
        #expect(KernelCache.read(file, key: key) == cubin)
        let good = [UInt8](try #require(FileManager.default.contents(atPath: file)))
        let keyLength = Array(key.utf8).count
        func crafted(_ change: (inout [UInt8]) -> Void) throws -> [UInt8]? {
            var bytes = good
            change(&bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            return KernelCache.read(file, key: key)
        }
        let huge = KernelCache.littleEndian(UInt64.max), large = KernelCache.littleEndian(1 << 62)
        #expect(try crafted { $0.replaceSubrange(0..<8, with: huge) } == nil, "key length of 2^64 − 1")
        #expect(try crafted { $0.replaceSubrange(0..<8, with: large) } == nil, "key length of 2^62")
        #expect(try crafted { $0.replaceSubrange((8 + keyLength)..<(16 + keyLength), with: huge) } == nil, "CUBIN length 2^64 − 1")
        #expect(try crafted { $0[$0.count - 1] ^= 1 } == nil, "a changed CUBIN byte")
        #expect(try crafted { $0.append(0) } == nil, "a byte too many")
        #expect(try crafted { $0 = Array($0.prefix(5)) } == nil, "cut inside the key length")
        #expect(try crafted { $0 = [] } == nil, "an empty file")
        #expect(try crafted { _ in } == cubin)
        #expect(KernelCache.read(file, key: key + "x") == nil, "another key")
        #expect(KernelCache.read("\(directory)/missing.cubin", key: key) == nil)
    }

    @Test("the cache folder: SNN_KERNEL_CACHE, then XDG_CACHE_HOME, then ~/.cache")
    func cacheFolder() {
        #expect(KernelCache.defaultDirectory(environment: ["SNN_KERNEL_CACHE": "/k", "XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/k")
        #expect(KernelCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/swiftsnn/kernels")
        #expect(KernelCache.defaultDirectory(environment: ["HOME": "/h"]) == "/h/.cache/swiftsnn/kernels")
    }
}
