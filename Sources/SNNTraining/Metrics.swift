import Foundation

/// Appends metric rows to CSV files (`metrics.csv` per epoch, `steps.csv` per step), to
/// `metrics.jsonl` (both kinds, tagged) and to a TensorBoard event file.
public final class MetricsLog {
    public let directory: String
    private var tables: [String: (handle: FileHandle?, columns: [String])] = [:]
    private var jsonl: FileHandle?
    private let tensorBoard: TensorBoardWriter?

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        tensorBoard = try TensorBoardWriter(directory: directory)
        jsonl = MetricsLog.open("\(directory)/metrics.jsonl")
    }

    private static func open(_ path: String) -> FileHandle? {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let h = FileHandle(forWritingAtPath: path)
        _ = try? h?.seekToEnd()
        return h
    }

    /// Records one row (`kind` is `step` or `epoch`); numbers go to all three outputs.
    public func record(kind: String, step: Int, _ values: [(String, Double)]) {
        var object: [String: Any] = ["kind": kind, "step": step]
        for (k, v) in values { object[k] = v.isFinite ? v : nil }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            jsonl?.write(data + Data("\n".utf8))
        }
        appendRow(kind: kind, step: step, values)
        tensorBoard?.scalars(values.map { (tag: $0.0, value: $0.1) }, step: step)
    }

    /// One CSV row; the first row of a new file writes the header (a resumed run appends).
    private func appendRow(kind: String, step: Int, _ values: [(String, Double)]) {
        let index = kind == "epoch" ? "epoch" : "step"
        if tables[kind] == nil {
            let path = "\(directory)/\(kind == "epoch" ? "metrics" : "steps").csv"
            let exists = FileManager.default.fileExists(atPath: path)
            let handle = MetricsLog.open(path)
            let columns = [index] + values.map(\.0)
            if !exists { handle?.write(Data((columns.joined(separator: ",") + "\n").utf8)) }
            tables[kind] = (handle, columns)
        }
        guard let table = tables[kind] else { return }
        let byName = Dictionary(values, uniquingKeysWith: { a, _ in a })
        let row = [String(step)] + table.columns.dropFirst().map { byName[$0].map { "\($0)" } ?? "" }
        table.handle?.write(Data((row.joined(separator: ",") + "\n").utf8))
    }

    public func flush() {
        for t in tables.values { try? t.handle?.synchronize() }
        try? jsonl?.synchronize()
        tensorBoard?.flush()
    }
}
