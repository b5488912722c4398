import Foundation
import SNNTensor

/// SLAYER's N-MNIST sample (`<id>.bs2` files with the label lists `train*.txt` and `test*.txt`)
/// arranged into the layout N-MNIST is distributed in, `Train/<digit>/<id>.bin` and
/// `Test/<digit>/<id>.bin`, as symbolic links to the `.bs2` files (absolute targets) or copies.
///
/// A label list has a `#` header line, then one `id<TAB>label` row per sample (CRLF or LF line
/// ends); ids listed without a `.bs2` file are counted and left out. Nothing is written until
/// the whole output has been checked: an output holding anything but an earlier arrangement of
/// the same files in the same mode is refused. Each link or copy is made under a temporary name
/// and renamed into place, so an interrupted run leaves whole samples and re-running completes it.
public struct NMNISTArrangement {
    /// One sample: its split folder (`Train` or `Test`), id, digit, `.bs2` file and place in the output.
    public struct Sample: Sendable {
        public let split: String
        public let id: Int
        public let label: Int
        public let source: String
        public let destination: String
    }

    /// What the source folder must hold, as a phrase that follows "expected".
    public static let sourceLayout = "SLAYER's N-MNIST sample: <id>.bs2 files and the label lists train*.txt and test*.txt (a # header, then id<TAB>label rows)"

    /// The absolute path of the source folder.
    public let source: String
    public let output: String
    /// The label lists read, training first.
    public let lists: [String]
    /// Listed samples whose `.bs2` file is present.
    public let samples: [Sample]
    /// Per list (same order as ``lists``): ids listed, and ids without a `.bs2` file.
    public let listed: [Int]
    public let missing: [Int]

    /// Reads the label lists in `source` and plans the arrangement into `output`.
    ///
    /// - Throws: ``DataLayoutError`` when `source` has no (or several) train/test lists;
    ///   ``DataFileError`` naming the row and byte offset of a malformed or repeated row.
    public init(source: String, output: String) throws {
        try DataLayoutError.requireFolder(source, expected: Self.sourceLayout)
        let absolute = URL(fileURLWithPath: source).standardizedFileURL.path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []
        var lists: [String] = [], samples: [Sample] = [], listed: [Int] = [], missing: [Int] = []
        var seen: [Int: String] = [:]
        for (prefix, split) in [("train", "Train"), ("test", "Test")] {
            let found = names.filter { $0.lowercased().hasPrefix(prefix) && $0.lowercased().hasSuffix(".txt") }.sorted()
            guard found.count == 1 else {
                throw DataLayoutError(path: source, problem: found.isEmpty ? "holds no \(prefix)*.txt label list"
                                        : "holds several \(prefix)*.txt label lists (\(found.joined(separator: ", ")))", expected: Self.sourceLayout)
            }
            let list = "\(source)/\(found[0])"
            let rows = try Self.labelList(list)
            var absent = 0
            for row in rows {
                if let other = seen[row.id] {
                    throw DataFileError(path: list, record: row.line, offset: row.offset, reason: "id \(row.id) is listed again (first in \(other))")
                }
                seen[row.id] = found[0]
                let file = "\(absolute)/\(row.id).bs2"
                guard FileManager.default.fileExists(atPath: file) else {
                    absent += 1
                    continue
                }
                samples.append(Sample(split: split, id: row.id, label: row.label, source: file,
                                      destination: "\(output)/\(split)/\(row.label)/\(row.id).bin"))
            }
            lists.append(found[0])
            listed.append(rows.count)
            missing.append(absent)
        }
        (self.source, self.output, self.lists, self.samples, self.listed, self.missing) = (absolute, output, lists, samples, listed, missing)
    }

    /// The rows of a label list: id, digit, and the line and byte offset they were read from.
    static func labelList(_ path: String) throws -> [(id: Int, label: Int, line: Int, offset: Int)] {
        var rows: [(Int, Int, Int, Int)] = []
        for (line, offset, text) in try TextLines.read(path, what: "the label list") {
            let row = text.trimmingCharacters(in: .whitespaces)
            if row.isEmpty || row.hasPrefix("#") { continue }
            let fields = row.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count == 2, let id = Int(fields[0]), id >= 0, let label = Int(fields[1]), (0...9).contains(label) else {
                throw DataFileError(path: path, record: line, offset: offset, reason: "expected 'id<TAB>label' with a label 0-9, got '\(row)'")
            }
            rows.append((id, label, line, offset))
        }
        return rows
    }

    /// How the samples are put in the output.
    public enum Mode: Sendable { case link, copy }

    /// Checks the output, then makes every sample not there yet.
    ///
    /// - Returns: the samples made now per split (`Train`, `Test`); zero when the output was complete.
    /// - Throws: ``DataLayoutError`` naming the first thing in the output that this arrangement
    ///   would not have made (before anything is written), or a link or copy that failed.
    public func apply(_ mode: Mode) throws -> [String: Int] {
        let todo = try pending(mode)
        // Every digit folder of both splits, so the layout is whole even where a digit has no sample.
        for folder in ["Train", "Test"].flatMap({ split in (0...9).map { "\(output)/\(split)/\($0)" } }) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw DataLayoutError(path: folder, problem: "cannot create the folder (\((error as NSError).localizedFailureReason ?? "\(error)"))")
            }
        }
        var made: [String: Int] = [:]
        for sample in todo {
            try Self.place(sample, mode)
            made[sample.split, default: 0] += 1
        }
        return made
    }

    /// The samples not in the output yet; throws for anything there that does not belong.
    func pending(_ mode: Mode) throws -> [Sample] {
        let fm = FileManager.default
        let expected = "a new or empty folder, or one this command arranged from the same files\(mode == .copy ? " with --copy" : " without --copy")"
        func foreign(_ path: String, _ why: String) -> DataLayoutError { DataLayoutError(path: path, problem: why, expected: expected) }
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: output, isDirectory: &isFolder) else { return samples }
        guard isFolder.boolValue else { throw foreign(output, "is a file, not a folder") }
        let planned = Dictionary(samples.map { ($0.destination, $0) }, uniquingKeysWith: { a, _ in a })
        // Hidden entries (the frame cache .snn-frames, temporary files) are not part of the layout.
        func entries(_ folder: String) -> [String] { ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted() }
        for split in entries(output) {
            guard split == "Train" || split == "Test" else { throw foreign("\(output)/\(split)", "is not part of the N-MNIST layout (Train/, Test/)") }
            for digit in entries("\(output)/\(split)") {
                guard digit.count == 1, digit.first?.isNumber == true else {
                    throw foreign("\(output)/\(split)/\(digit)", "is not a digit folder 0-9")
                }
                for name in entries("\(output)/\(split)/\(digit)") {
                    let path = "\(output)/\(split)/\(digit)/\(name)"
                    guard let sample = planned[path] else { throw foreign(path, "is not one of the samples the label lists name here") }
                    guard Self.holds(path, sample.source, mode) else {
                        throw foreign(path, mode == .link ? "is not a symbolic link to \(sample.source)" : "is not a copy of \(sample.source)")
                    }
                }
            }
        }
        return samples.filter { (try? fm.attributesOfItem(atPath: $0.destination)) == nil }
    }

    /// Whether `path` already is `source`'s link (mode `.link`) or an identical copy (`.copy`).
    static func holds(_ path: String, _ source: String, _ mode: Mode) -> Bool {
        let fm = FileManager.default
        let link = try? fm.destinationOfSymbolicLink(atPath: path)
        switch mode {
        case .link: return link == source
        case .copy:
            guard link == nil, let have = fm.contents(atPath: path), let want = fm.contents(atPath: source) else { return false }
            return have == want
        }
    }

    /// Makes one sample under a temporary name in its (existing) folder, then renames it into place.
    static func place(_ sample: Sample, _ mode: Mode) throws {
        let folder = FileSystem.parent(sample.destination)
        switch mode {
        case .copy:
            let data = try EventFiles.contents(sample.source)
            do { try AtomicFile.write(data, to: sample.destination, durable: false) } catch {
                throw DataLayoutError(path: sample.destination, problem: "cannot write the copy (\(error))")
            }
        case .link:
            let temporary = "\(folder)/.\(sample.id).bin.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            guard symlink(sample.source, temporary) == 0 else {
                throw DataLayoutError(path: sample.destination, problem: "cannot make the link (\(String(cString: strerror(errno))))")
            }
            guard rename(temporary, sample.destination) == 0 else {
                let why = String(cString: strerror(errno))
                unlink(temporary)
                throw DataLayoutError(path: sample.destination, problem: "cannot rename the link into place (\(why))")
            }
        }
    }
}
