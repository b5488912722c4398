import Foundation

/// A file that is not what its format says: names the file once, then why, then where in it.
///
/// `record` and `offset` appear only when the problem sits at a record or a byte of the file
/// (a truncated event, a bad label); a file that cannot be read at all, or is of the wrong kind,
/// has neither. `hint` says what the user can do about it and comes last:
/// `a.bin: the file has 1003 bytes, ... (record 200, byte offset 1000); pass --skip-corrupt ...`.
public struct DataFileError: Error, CustomStringConvertible {
    public let path: String
    public let record: Int?
    /// The byte the problem is at, or nil when no single byte is meant.
    public let offset: Int?
    public let reason: String
    /// What to do about it (a flag to pass, a tool to run), or nil.
    public var hint: String?

    public init(path: String, record: Int? = nil, offset: Int? = nil, reason: String, hint: String? = nil) {
        (self.path, self.record, self.offset, self.reason, self.hint) = (path, record, offset, reason, hint)
    }

    public var description: String {
        let position = [record.map { "record \($0)" }, offset.map { "byte offset \($0)" }].compactMap { $0 }
        return "\(path): \(reason)" + (position.isEmpty ? "" : " (\(position.joined(separator: ", ")))") + (hint.map { "; \($0)" } ?? "")
    }

    /// This error with `hint` in place of its own.
    public func hinted(_ hint: String) -> DataFileError {
        var copy = self
        copy.hint = hint
        return copy
    }
}

/// A data folder that does not hold the layout its data set is read from: names the folder or
/// file at fault, what is wrong there, and the layout expected, on one line:
/// `/data/nmnist: no such folder; expected N-MNIST as distributed: Train/<digit>/*.bin ...`.
public struct DataLayoutError: Error, CustomStringConvertible {
    /// The folder or file at fault.
    public let path: String
    /// What is wrong there ("no such folder", "holds no .bin files", ...), with what was found.
    public let problem: String
    /// The layout the data set is read from; callers may replace it with their own wording.
    public var expected: String?

    public init(path: String, problem: String, expected: String? = nil) {
        (self.path, self.problem, self.expected) = (path, problem, expected)
    }

    public var description: String { "\(path): \(problem)" + (expected.map { "; expected \($0)" } ?? "") }

    /// Throws unless `path` is a folder that can be listed: names it as missing, as a file, or
    /// as unreadable (with the system's reason).
    static func requireFolder(_ path: String, expected: String?) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw DataLayoutError(path: path, problem: "no such folder", expected: expected)
        }
        guard isFolder.boolValue else { throw DataLayoutError(path: path, problem: "is a file, not a folder", expected: expected) }
        guard let handle = opendir(path) else {
            throw DataLayoutError(path: path, problem: "cannot list the folder (\(String(cString: strerror(errno))))", expected: expected)
        }
        closedir(handle)
    }

    /// Throws unless `path` is a file (not a folder) that exists.
    static func requireFile(_ path: String, expected: String?) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw DataLayoutError(path: path, problem: "no such file", expected: expected)
        }
        guard !isFolder.boolValue else { throw DataLayoutError(path: path, problem: "is a folder, not a file", expected: expected) }
    }
}
