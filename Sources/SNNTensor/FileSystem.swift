import Foundation

/// A file-system operation that failed: one line naming the path and the cause, as the system
/// says it (`cannot create folder runs/result: Permission denied`), never Foundation's error dump.
public struct FileSystemError: Error, CustomStringConvertible {
    /// What was being done, as a verb phrase: "create folder", "write", "read".
    public let action: String
    public let path: String
    /// The system's reason (strerror), e.g. "Permission denied".
    public let reason: String

    public init(_ action: String, _ path: String, reason: String) {
        (self.action, self.path, self.reason) = (action, path, reason)
    }

    /// The failure of `action` on `path` that `errno` describes.
    public init(_ action: String, _ path: String, errno code: Int32 = errno) {
        self.init(action, path, reason: String(cString: strerror(code)))
    }

    public var description: String { "cannot \(action) \(path): \(reason)" }

    /// The system's reason inside a Foundation error: its POSIX error's text where it has one
    /// (`NSUnderlyingErrorKey`), else its failure reason, else its description.
    public static func reason(_ error: Error) -> String {
        if let e = error as? FileSystemError { return e.reason }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedFailureReason ?? ns.localizedDescription
    }
}

public enum FileSystem {
    /// The folder holding `path`, as written: `a/b/c` → `a/b`, `c` → `.`, `/c` → `/`, trailing
    /// slashes ignored. (Foundation's `deletingLastPathComponent` traps on some one-character
    /// relative paths such as `r`, so paths are split here.)
    public static func parent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        var folder = trimmed[..<slash]
        while folder.count > 1 && folder.hasSuffix("/") { folder = folder.dropLast() }
        return String(folder)
    }

    /// The last component of `path` (`a/b/c` → `c`), trailing slashes ignored.
    public static func lastComponent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return String(trimmed.split(separator: "/").last ?? trimmed)
    }

    /// Creates the folder `path` and any missing parents (`mkdir -p`); an existing folder is fine.
    /// Throws a ``FileSystemError`` naming the first folder that could not be created and why
    /// (a file in the way says "Not a directory").
    public static func makeDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw FileSystemError("create folder", path, errno: ENOTDIR) }
            return
        }
        let parent = parent(path)
        if parent != path { try makeDirectory(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw FileSystemError("create folder", path) }
    }

    /// Checks, creating nothing, that ``makeDirectory(_:)`` can create `path`: its nearest
    /// existing ancestor (or `path` itself) is a folder in which entries can be created.
    public static func checkCreatable(_ path: String) throws {
        var existing = path
        var isDirectory: ObjCBool = false
        while !FileManager.default.fileExists(atPath: existing, isDirectory: &isDirectory) {
            existing = parent(existing)
        }
        guard isDirectory.boolValue else {
            throw FileSystemError("create folder", path, reason: existing == path ? "a file of that name exists" : "\(existing) is a file")
        }
        do { try checkWritable(existing) } catch let error as FileSystemError {
            throw existing == path ? error : FileSystemError("create folder", path, reason: "\(existing): \(error.reason)")
        }
    }

    /// Whether a file can be created in the folder `path` (which must exist): `access(W_OK)`
    /// says yes for root on a read-only mount, so a probe file is created and removed.
    public static func checkWritable(_ path: String) throws {
        let probe = "\(path)/.snn-write-test-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw FileSystemError("write in", path) }
        close(fd)
        unlink(probe)
    }
}
