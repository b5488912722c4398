import Foundation
import SNNCPU
@testable import SNNData
import Testing

/// Where frames are cached: the data folder, a folder asked for, the per-user folder, or nowhere,
/// and never silently elsewhere.
@Suite("frame cache location")
struct FrameCacheTests {
    init() { CPUBackend.register() }

    @Test("the data folder's .snn-frames when it can be written; the folder asked for when one is")
    func ownFolder() throws {
        let root = try TestFiles.temporaryRoot("cache-own")
        defer { try? FileManager.default.removeItem(at: root) }
        let own = try FrameCache.choose(root: root.path, folder: "opts", environment: [:])
        #expect(own == FrameCache(directory: "\(root.path)/.snn-frames/opts", readOnly: nil, notice: nil))
        let asked = try FrameCache.choose(root: root.path, folder: "opts", cacheRoot: "\(root.path)/elsewhere", environment: [:])
        #expect(asked.directory == "\(root.path)/elsewhere/opts" && asked.notice == nil)
        #expect(FileManager.default.fileExists(atPath: "\(root.path)/elsewhere/opts"))
        // Asked for and unwritable: an error, not a fallback.
        try Data().write(to: root.appendingPathComponent("file"))
        #expect { try FrameCache.choose(root: root.path, folder: "opts", cacheRoot: "\(root.path)/file", environment: [:]) } throws: {
            "\($0)" == "cannot write the frame cache in \(root.path)/file (Not a directory)"
        }
    }

    @Test("an unwritable data folder falls back to $XDG_CACHE_HOME, then ~/.cache, then nowhere, saying which")
    func fallbacks() throws {
        let root = try TestFiles.temporaryRoot("cache-fallback")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = "\(root.path)/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: "\(data)/.snn-frames"))  // stops writes even for root
        let name = FrameCache.userFolderName(root: data)
        let xdg = try FrameCache.choose(root: data, folder: "opts", environment: ["XDG_CACHE_HOME": "\(root.path)/xdg", "HOME": "\(root.path)/home"])
        #expect(xdg.directory == "\(root.path)/xdg/swiftsnn/frames/\(name)/opts")
        #expect(xdg.notice == "cannot write a frame cache in \(data)/.snn-frames (Not a directory); caching frames in \(root.path)/xdg/swiftsnn/frames/\(name) instead")
        let home = try FrameCache.choose(root: data, folder: "opts", environment: ["XDG_CACHE_HOME": "relative", "HOME": "\(root.path)/home"])
        #expect(home.directory == "\(root.path)/home/.cache/swiftsnn/frames/\(name)/opts")
        let none = try FrameCache.choose(root: data, folder: "opts", environment: ["HOME": "\(data)/.snn-frames"])
        #expect(none.directory == nil && none.notice?.hasSuffix("frames are computed again on every run") == true)
        let nothing = try FrameCache.choose(root: data, folder: "opts", environment: [:])
        #expect(nothing.directory == nil && nothing.notice?.contains("neither XDG_CACHE_HOME nor HOME") == true)
    }

    @Test("the per-user folder's name is the data folder's name and a hash of its absolute path")
    func userFolderName() {
        let a = FrameCache.userFolderName(root: "/data/one/nmnist"), b = FrameCache.userFolderName(root: "/data/two/nmnist")
        #expect(a.hasPrefix("nmnist-") && b.hasPrefix("nmnist-") && a != b && a.count == "nmnist-".count + 16)
        #expect(a == FrameCache.userFolderName(root: "/data/one/./nmnist"), "the same folder, spelt differently")
        #expect(FrameCache.userFolderName(root: "/data/my data*").hasPrefix("my_data_-"))
    }

    @Test("a data set caches where it is asked to and reads its frames back from there")
    func datasetUsesTheChoice() throws {
        let root = try TestFiles.temporaryRoot("cache-dataset")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("dvs")
        for c in ["airplane", "cat"] {
            try FileManager.default.createDirectory(at: data.appendingPathComponent(c), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(TestFiles.shared)/dvs128-aedat2/DVS128DataAnalysis/neal_walking.aedat",
                                             toPath: data.appendingPathComponent("\(c)/cifar10_\(c)_0.aedat").path)
        }
        try Data().write(to: data.appendingPathComponent(".snn-frames"))
        let asked = root.appendingPathComponent("asked").path
        let first = try EventFolderDataset(kind: .cifar10DVS, root: data.path, train: true, timesteps: 2, augment: false, seed: 0, cacheRoot: asked)
        #expect(first.cacheNotes.isEmpty && first.frameCache.directory?.hasPrefix(asked) == true)
        let cached = try FileManager.default.subpathsOfDirectory(atPath: asked).filter { $0.hasSuffix(".f32") }
        #expect(cached.count == 2)
        let again = try EventFolderDataset(kind: .cifar10DVS, root: data.path, train: true, timesteps: 2, augment: false, seed: 0, cacheRoot: asked)
        #expect(again.frames.toFloats() == first.frames.toFloats())
    }

    @Test("frames cached in a data folder that has since become read-only are still read",
          .enabled(if: getuid() != 0, "permissions do not stop root's writes"))
    func readOnlyCacheIsRead() throws {
        let root = try TestFiles.temporaryRoot("cache-readonly")
        let data = root.appendingPathComponent("dvs")
        defer {
            chmod(data.path, 0o755)
            try? FileManager.default.removeItem(at: root)
        }
        for c in ["airplane", "cat"] {
            try FileManager.default.createDirectory(at: data.appendingPathComponent(c), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(TestFiles.shared)/dvs128-aedat2/DVS128DataAnalysis/neal_walking.aedat",
                                             toPath: data.appendingPathComponent("\(c)/cifar10_\(c)_0.aedat").path)
        }
        let made = try EventFolderDataset(kind: .cifar10DVS, root: data.path, train: true, timesteps: 2, augment: false, seed: 0)
        let own = try #require(made.frameCache.directory)
        for path in [own, "\(own)/airplane", "\(own)/cat", "\(data.path)/.snn-frames"] { chmod(path, 0o555) }
        defer { for path in [own, "\(own)/airplane", "\(own)/cat", "\(data.path)/.snn-frames"] { chmod(path, 0o755) } }
        let previous = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"]
        setenv("XDG_CACHE_HOME", root.appendingPathComponent("xdg").path, 1)
        defer { if let previous { setenv("XDG_CACHE_HOME", previous, 1) } else { unsetenv("XDG_CACHE_HOME") } }
        let read = try EventFolderDataset(kind: .cifar10DVS, root: data.path, train: true, timesteps: 2, augment: false, seed: 0)
        #expect(read.frameCache.readOnly == own && read.frames.toFloats() == made.frames.toFloats())
        let written = (try? FileManager.default.subpathsOfDirectory(atPath: root.appendingPathComponent("xdg").path)) ?? []
        #expect(!written.contains { $0.hasSuffix(".f32") }, "read from the read-only cache, not made again")
    }
}
