import Foundation

/// Appends metric rows to `metrics.csv` and `metrics.jsonl` and scalars to TensorBoard.
public final class MetricsLog {
    public let directory: String
    private var csv: FileHandle?
    private var jsonl: FileHandle?
    private var columns: [String]?
    private let tensorBoard: TensorBoardWriter?

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        tensorBoard = try TensorBoardWriter(directory: directory)
        jsonl = MetricsLog.open("\(directory)/metrics.jsonl")
    }

    private static func open(_ path: String) -> FileHandle? {
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
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
        if kind == "epoch" {
            if csv == nil {
                let path = "\(directory)/metrics.csv"
                let exists = FileManager.default.fileExists(atPath: path)
                csv = MetricsLog.open(path)
                columns = ["epoch"] + values.map(\.0)
                if !exists { csv?.write(Data((columns!.joined(separator: ",") + "\n").utf8)) }  // set just above
            }
            let byName = Dictionary(values, uniquingKeysWith: { a, _ in a })
            let row = [String(step)] + (columns ?? []).dropFirst().map { byName[$0].map { "\($0)" } ?? "" }
            csv?.write(Data((row.joined(separator: ",") + "\n").utf8))
        }
        tensorBoard?.scalars(values.map { (tag: $0.0, value: $0.1) }, step: step)
    }

    public func flush() {
        try? csv?.synchronize()
        try? jsonl?.synchronize()
        tensorBoard?.flush()
    }
}
