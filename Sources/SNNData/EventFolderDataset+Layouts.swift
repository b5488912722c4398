import Foundation

/// The folder layouts the event data sets are distributed in, and how a split is found in them.
/// Every layout problem is a one-line ``DataLayoutError`` naming the folder or file at fault.
extension EventFolderDataset.Kind {
    /// What the data set's folder must hold, as a phrase that follows "expected".
    public var layout: String {
        switch self {
        case .cifar10DVS: return "one folder of .aedat files per class (airplane/cifar10_airplane_0.aedat, ...)"
        case .ncaltech101: return "one folder of .bin files per Caltech101 class (BACKGROUND_Google/, Faces_easy/, ...)"
        case .nmnist: return "Train/ and Test/, each with digit folders 0-9 of .bin files"
        case .dvsGesture: return "user*.aedat with user*_labels.csv beside each, trials_to_train.txt and trials_to_test.txt (the DvsGesture folder)"
        }
    }
}

extension EventFolderDataset {
    /// Sub-folders of `path`, sorted case-sensitively like Python's `sorted()`.
    static func folders(_ path: String) -> [String] {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: path)) ?? [])
            .filter { !$0.hasPrefix(".") && (try? fm.attributesOfItem(atPath: "\(path)/\($0)")[.type] as? FileAttributeType) == .typeDirectory }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// The files of `folder` ending in `.ext` (any case), unsorted.
    static func files(_ folder: String, ext: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.lowercased().hasSuffix(".\(ext)") }
    }

    /// The class names and the samples of one split.
    static func recordings(_ kind: Kind, root: String, train: Bool) throws -> ([String], [Recording]) {
        try DataLayoutError.requireFolder(root, expected: kind.layout)
        switch kind {
        case .cifar10DVS, .ncaltech101: return try classFolderRecordings(kind, root: root, train: train)
        case .nmnist: return try nmnistRecordings(root: root, train: train)
        case .dvsGesture: return try gestureRecordings(root: root, train: train)
        }
    }

    /// CIFAR10-DVS and N-Caltech101: class folders, each split by file order.
    private static func classFolderRecordings(_ kind: Kind, root: String, train: Bool) throws -> ([String], [Recording]) {
        let ext = kind == .cifar10DVS ? "aedat" : "bin"
        let classes = folders(root)
        guard !classes.isEmpty else { throw DataLayoutError(path: root, problem: "holds no class folders", expected: kind.layout) }
        var out: [Recording] = []
        for (label, name) in classes.enumerated() {
            let all = files("\(root)/\(name)", ext: ext)
            guard !all.isEmpty else { throw DataLayoutError(path: "\(root)/\(name)", problem: "holds no .\(ext) files", expected: kind.layout) }
            let ordered = kind == .cifar10DVS ? all.sorted { index($0) < index($1) } : all.sorted()
            let split = kind == .cifar10DVS && ordered.count == 1000 ? 900 : Int((0.9 * Double(ordered.count)).rounded(.up))
            for f in (train ? ordered[..<split] : ordered[split...]) {
                out.append(Recording(path: "\(root)/\(name)/\(f)", label: label, window: nil, cacheName: "\(name)/\(f).f32"))
            }
        }
        return (classes, out)
    }

    /// N-MNIST: `Train/<digit>/*.bin` and `Test/<digit>/*.bin` (the split folder in any case).
    private static func nmnistRecordings(root: String, train: Bool) throws -> ([String], [Recording]) {
        let layout = Kind.nmnist.layout
        let wanted = train ? "Train" : "Test"
        guard let split = folders(root).first(where: { $0.lowercased() == wanted.lowercased() }) else {
            throw DataLayoutError(path: "\(root)/\(wanted)", problem: "no such folder", expected: layout)
        }
        let digits = folders("\(root)/\(split)")
        guard digits == (0...9).map(String.init) else {
            throw DataLayoutError(path: "\(root)/\(split)", problem: digits.isEmpty ? "holds no digit folders"
                                    : "holds the folders \(digits.joined(separator: ", ")), not the digits 0-9", expected: layout)
        }
        let perDigit = digits.map { files("\(root)/\(split)/\($0)", ext: "bin").sorted() }
        if perDigit.allSatisfy(\.isEmpty) {
            throw DataLayoutError(path: "\(root)/\(split)", problem: "its digit folders 0-9 hold no .bin files", expected: layout)
        }
        if let empty = perDigit.firstIndex(where: \.isEmpty) {
            throw DataLayoutError(path: "\(root)/\(split)/\(digits[empty])", problem: "holds no .bin files", expected: layout)
        }
        var out: [Recording] = []
        for (label, d) in digits.enumerated() {
            for f in perDigit[label] {
                out.append(Recording(path: "\(root)/\(split)/\(d)/\(f)", label: label, window: nil, cacheName: "\(split)/\(d)/\(f).f32"))
            }
        }
        return (digits, out)
    }

    /// DVS128 Gesture: the recordings a trial list names, one sample per labelled interval.
    private static func gestureRecordings(root: String, train: Bool) throws -> ([String], [Recording]) {
        let layout = Kind.dvsGesture.layout
        let list = "\(root)/trials_to_\(train ? "train" : "test").txt"
        try DataLayoutError.requireFile(list, expected: layout)
        var out: [Recording] = []
        for (row, offset, line) in try TextLines.read(list, what: "the trial list") {
            let name = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if name.isEmpty { continue }
            // A name from a data file may not leave the data directory (nor put its cache
            // file outside the cache folder).
            guard !name.hasPrefix("/"), !name.split(separator: "/").contains(".."), !name.contains("\0") else {
                throw DataFileError(path: list, record: row, offset: offset,
                                    reason: "'\(name)' is not a path inside the data directory (absolute, or with '..')")
            }
            let path = "\(root)/\(name)"
            let labelsPath = path.replacingOccurrences(of: ".aedat", with: "") + "_labels.csv"
            // A missing recording shows when its frames are made (and --skip-corrupt can skip it);
            // without its labels it has no samples.
            try DataLayoutError.requireFile(labelsPath, expected: layout)
            for (i, segment) in try gestureLabels(labelsPath).enumerated() {
                out.append(Recording(path: path, label: segment.label, window: segment.window, cacheName: "\(name)-\(i).f32"))
            }
        }
        guard !out.isEmpty else { throw DataLayoutError(path: list, problem: "names no recordings with labelled intervals", expected: layout) }
        return (gestureClasses, out)
    }

    /// The labelled intervals of a DVS128 Gesture recording: `class,startTime_usec,endTime_usec`
    /// rows after a header, classes 1-11.
    public static func gestureLabels(_ path: String) throws -> [(label: Int, window: Range<Int64>)] {
        var out: [(Int, Range<Int64>)] = []
        for (row, offset, line) in try TextLines.read(path, what: "the labels file") {
            let fields = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
            if fields.isEmpty || (row == 0 && fields.first == "class") { continue }
            guard fields.count == 3, let c = Int(fields[0]), let start = Int64(fields[1]), let end = Int64(fields[2]),
                  (1...11).contains(c), start < end else {
                throw DataFileError(path: path, record: row, offset: offset,
                                    reason: "expected 'class,startTime_usec,endTime_usec' with a class in 1-11 and start < end, got '\(line)'")
            }
            out.append((c - 1, start..<end))
        }
        return out
    }

    /// The recording index in a CIFAR10-DVS file name (`cifar10_airplane_123.aedat` → 123).
    static func index(_ name: String) -> Int {
        let stem = name.split(separator: ".").first.map(String.init) ?? name
        return Int(stem.split(separator: "_").last ?? "") ?? Int.max
    }
}
