import Foundation

/// Appends whole records to a file: a record that cannot be written in full (a full disk) is
/// cut back off, so the file stays parseable, and the failure is thrown.
struct RecordAppender {
    let handle: FileHandle
    let path: String

    func append(_ data: Data) throws {
        let start = try handle.offset()
        do {
            try handle.write(contentsOf: data)
        } catch {
            try? handle.truncate(atOffset: start)
            throw MetricsWriteError(path: path, reason: (error as NSError).localizedFailureReason ?? "\(error)")
        }
    }

    /// Opens `path` for appending, creating it when missing.
    static func open(_ path: String) -> RecordAppender? {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { return nil }
        _ = try? h.seekToEnd()
        return RecordAppender(handle: h, path: path)
    }
}

/// A log record that could not be written.
public struct MetricsWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot write \(path): \(reason)" }
}

/// Appends metric rows to CSV files (`metrics.csv` per epoch, `steps.csv` per step), to
/// `metrics.jsonl` (both kinds, tagged) and to a TensorBoard event file.
///
/// Writing never crashes the run: the first failure (a full disk) is kept in ``failure``, no
/// further rows are written, and every file keeps only whole records.
public final class MetricsLog {
    public let directory: String
    private var tables: [String: (file: RecordAppender?, columns: [String])] = [:]
    private var jsonl: RecordAppender?
    private let tensorBoard: TensorBoardWriter?
    /// The first write that failed; nothing is written after it.
    public private(set) var failure: Error?

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        tensorBoard = try TensorBoardWriter(directory: directory)
        jsonl = RecordAppender.open("\(directory)/metrics.jsonl")
    }

    /// Runs `body` unless a write already failed; keeps the first failure.
    private func attempt(_ body: () throws -> Void) {
        guard failure == nil else { return }
        do { try body() } catch { failure = error }
    }

    /// Records one row (`kind` is `step` or `epoch`); numbers go to all three outputs.
    public func record(kind: String, step: Int, _ values: [(String, Double)]) {
        var object: [String: Any] = ["kind": kind, "step": step]
        for (k, v) in values { object[k] = v.isFinite ? v : nil }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            attempt { try jsonl?.append(data + Data("\n".utf8)) }
        }
        attempt { try appendRow(kind: kind, step: step, values) }
        attempt { try tensorBoard?.scalars(values.map { (tag: $0.0, value: $0.1) }, step: step) }
    }

    /// One CSV row; the first row of a new file writes the header (a resumed run appends).
    private func appendRow(kind: String, step: Int, _ values: [(String, Double)]) throws {
        let index = kind == "epoch" ? "epoch" : "step"
        if tables[kind] == nil {
            let path = "\(directory)/\(kind == "epoch" ? "metrics" : "steps").csv"
            let exists = FileManager.default.fileExists(atPath: path)
            let file = RecordAppender.open(path)
            let columns = [index] + values.map(\.0)
            tables[kind] = (file, columns)
            if !exists { try file?.append(Data((columns.joined(separator: ",") + "\n").utf8)) }
        }
        guard let table = tables[kind] else { return }
        let byName = Dictionary(values, uniquingKeysWith: { a, _ in a })
        let row = [String(step)] + table.columns.dropFirst().map { byName[$0].map { "\($0)" } ?? "" }
        try table.file?.append(Data((row.joined(separator: ",") + "\n").utf8))
    }

    public func flush() {
        for t in tables.values { try? t.file?.handle.synchronize() }
        try? jsonl?.handle.synchronize()
        tensorBoard?.flush()
    }
}
