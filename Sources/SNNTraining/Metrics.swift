import Foundation
import SNNTensor

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
            throw MetricsWriteError(path: path, reason: FileSystemError.reason(error))
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
/// `metrics.jsonl` (both kinds, tagged) and to a TensorBoard event file, whose tags carry the
/// kind (`step/lr`, `epoch/lr`) so per-step and per-epoch curves never share one tag.
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
        try FileSystem.makeDirectory(directory)
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
        attempt { try tensorBoard?.scalars(values.map { (tag: "\(kind)/\($0.0)", value: $0.1) }, step: step) }
    }

    /// Records the Fisher information per timestep measured after `epoch`: rows `epoch,t,fisher_information`
    /// in `fisher.csv`, one `fisher` object in `metrics.jsonl` and, in TensorBoard, the curve over
    /// t under `fisher/epoch_<epoch>` (as the reference's `fisher_trace_info_curve_<epoch>`).
    public func recordFisher(epoch: Int, perTimestep: [Double], centroid: Double, estimator: String) {
        let object: [String: Any] = ["kind": "fisher", "step": epoch, "estimator": estimator,
                                     "fisher_information": perTimestep.map { $0.isFinite ? $0 : 0 },
                                     "information_centroid": centroid.isFinite ? centroid : NSNull()]
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            attempt { try jsonl?.append(data + Data("\n".utf8)) }
        }
        attempt {
            let path = "\(directory)/fisher.csv"
            let exists = FileManager.default.fileExists(atPath: path)
            guard let file = RecordAppender.open(path) else { throw MetricsWriteError(path: path, reason: "cannot open it") }
            var text = exists ? "" : "epoch,t,fisher_information\n"
            for (t, value) in perTimestep.enumerated() { text += "\(epoch),\(t + 1),\(value)\n" }
            try file.append(Data(text.utf8))
        }
        for (t, value) in perTimestep.enumerated() {
            attempt { try tensorBoard?.scalars([(tag: "fisher/epoch_\(epoch)", value: value)], step: t + 1) }
        }
    }

    /// Drops the rows a resumed run is about to redo: step rows past `steps` and epoch rows
    /// past `epochs` (written after the checkpoint by a run that was then killed). Each file is
    /// rewritten atomically, and only when it holds such rows; returns how many were dropped.
    /// TensorBoard's event files are left as they are (a new one is started beside them).
    public func rewind(steps: Int, epochs: Int) throws -> Int {
        var dropped = 0
        func keep(_ path: String, header: Bool, _ isKept: (Substring) -> Bool) throws {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            let kept = lines.enumerated().filter { (header && $0.offset == 0) || isKept($0.element) }.map(\.element)
            guard kept.count < lines.count else { return }
            dropped += lines.count - kept.count
            try AtomicFile.write(Data((kept.joined(separator: "\n") + "\n").utf8), to: path)
        }
        func firstNumber(_ row: Substring) -> Int { Int(row.prefix { $0 != "," }) ?? Int.max }
        try keep("\(directory)/steps.csv", header: true) { firstNumber($0) <= steps }
        try keep("\(directory)/metrics.csv", header: true) { firstNumber($0) <= epochs }
        try keep("\(directory)/fisher.csv", header: true) { firstNumber($0) <= epochs }
        try keep("\(directory)/metrics.jsonl", header: false) { row in
            guard let object = try? JSONSerialization.jsonObject(with: Data(row.utf8)) as? [String: Any],
                  let step = object["step"] as? Int else { return false }
            return step <= (object["kind"] as? String == "step" ? steps : epochs)
        }
        // The appenders opened before the rewrite point at the replaced file: reopen.
        jsonl = RecordAppender.open("\(directory)/metrics.jsonl")
        tables = [:]
        return dropped
    }

    /// One CSV row; the first row of a new file writes the header. A resumed run appends under
    /// the header the file already has (a column it lacks is left out of the CSV; the JSON lines
    /// and TensorBoard keep every value).
    private func appendRow(kind: String, step: Int, _ values: [(String, Double)]) throws {
        let index = kind == "epoch" ? "epoch" : "step"
        if tables[kind] == nil {
            let path = "\(directory)/\(kind == "epoch" ? "metrics" : "steps").csv"
            let existing = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").first
            let file = RecordAppender.open(path)
            let columns = existing.map { $0.split(separator: ",").map(String.init) } ?? [index] + values.map(\.0)
            tables[kind] = (file, columns)
            if existing == nil { try file?.append(Data((columns.joined(separator: ",") + "\n").utf8)) }
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
