import Foundation
import SNNTensor

/// Where an event data set's frames are cached, chosen once per data set before any frame is
/// made, by trying to write there.
///
/// In order: the folder asked for (`cacheRoot`: `snn data prepare --cache-dir`); else the data
/// folder's own `<root>/.snn-frames`; else, when that cannot be created or written (a read-only
/// data folder), a per-user folder, `$XDG_CACHE_HOME` (or `~/.cache`) +
/// `/swiftsnn/frames/<name>`, where `<name>` is the data folder's name and a hash of its absolute
/// path (``userFolderName(root:)``). Each holds one subfolder per set of frame options
/// (``EventFolderDataset/cacheFolder(kind:timesteps:size:dvsFrames:)``). When no folder can be
/// written, frames are computed every time; ``notice`` says so, as it says when the per-user
/// folder is used, so a cache never silently goes missing.
public struct FrameCache: Sendable, Equatable {
    /// The folder cache files are read from and written to; nil when none can be written.
    public let directory: String?
    /// The data folder's own cache when it exists but cannot be written: frames made there
    /// earlier are still read from it, before ``directory``.
    public let readOnly: String?
    /// One line for the user when frames are not cached in the data folder or not at all.
    public let notice: String?

    /// The folders to look for a cached sample in, in order.
    var readable: [String] { [readOnly, directory].compactMap { $0 } }

    /// Chooses the cache folder for frames of the options named `folder` of the data set at `root`.
    ///
    /// - Parameters:
    ///   - cacheRoot: a folder asked for by the user; frames go to `cacheRoot/folder`.
    ///   - environment: where `XDG_CACHE_HOME` and `HOME` are read from.
    /// - Throws: ``FrameCacheError`` when `cacheRoot` is given and cannot be written: the user
    ///   asked for that folder, so falling back would hide the mistake.
    public static func choose(root: String, folder: String, cacheRoot: String? = nil,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FrameCache {
        if let cacheRoot {
            let directory = "\(cacheRoot)/\(folder)"
            if let why = unwritable(directory) {
                throw FrameCacheError(path: cacheRoot, reason: why)
            }
            return FrameCache(directory: directory, readOnly: nil, notice: nil)
        }
        let own = "\(root)/.snn-frames"
        guard let why = unwritable("\(own)/\(folder)") else {
            return FrameCache(directory: "\(own)/\(folder)", readOnly: nil, notice: nil)
        }
        var isFolder: ObjCBool = false
        let readOnly = FileManager.default.fileExists(atPath: "\(own)/\(folder)", isDirectory: &isFolder) && isFolder.boolValue
            ? "\(own)/\(folder)" : nil
        guard let base = userCacheBase(environment) else {
            return FrameCache(directory: nil, readOnly: readOnly,
                              notice: "cannot write a frame cache in \(own) (\(why)), and neither XDG_CACHE_HOME nor HOME names a per-user cache; frames are computed again on every run")
        }
        let user = "\(base)/swiftsnn/frames/\(userFolderName(root: root))"
        if let userWhy = unwritable("\(user)/\(folder)") {
            return FrameCache(directory: nil, readOnly: readOnly,
                              notice: "cannot write a frame cache in \(own) (\(why)) nor in \(user) (\(userWhy)); frames are computed again on every run")
        }
        return FrameCache(directory: "\(user)/\(folder)", readOnly: readOnly,
                          notice: "cannot write a frame cache in \(own) (\(why)); caching frames in \(user) instead")
    }

    /// `$XDG_CACHE_HOME` when it is an absolute path (the XDG rule), else `$HOME/.cache`.
    static func userCacheBase(_ environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg }
        if let home = environment["HOME"], !home.isEmpty { return "\(home)/.cache" }
        return nil
    }

    /// The per-user cache's name for the data folder at `root`: its last path component (letters,
    /// digits, `.`, `_`, `-`; at most 40 characters), a dash and the 64-bit FNV-1a hash of its
    /// absolute, symlink-resolved path in hex, so two data folders of the same name never share
    /// a cache and the name is the same in every run.
    public static func userFolderName(root: String) -> String {
        let absolute = URL(fileURLWithPath: root).standardizedFileURL.resolvingSymlinksInPath().path
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in absolute.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let name = String(URL(fileURLWithPath: absolute).lastPathComponent.map { allowed.contains($0) ? $0 : "_" }.prefix(40))
        let hex = String(hash, radix: 16)
        return "\(name.isEmpty || name == "/" ? "root" : name)-\(String(repeating: "0", count: 16 - hex.count))\(hex)"
    }

    /// Nil when `folder` exists (or was created) and a file can be created in it; else why not,
    /// in the system's words ("Permission denied", "Not a directory", "Read-only file system").
    static func unwritable(_ folder: String) -> String? {
        do {
            try FileSystem.makeDirectory(folder)
            try FileSystem.checkWritable(folder)
            return nil
        } catch {
            return FileSystemError.reason(error)
        }
    }
}

/// A frame cache folder that was asked for and cannot be written.
public struct FrameCacheError: Error, CustomStringConvertible {
    public let path: String
    /// The system's words ("Permission denied").
    public let reason: String
    public var description: String { "cannot write the frame cache in \(path) (\(reason))" }
}
