import Foundation
import SNNTensor

/// Reads the tensors of a PyTorch `torch.save` file (`.pth`, `.pt`) without Python.
///
/// The format (torch ≥ 1.6) is a ZIP archive of stored entries: `<name>/data.pkl` (a pickle of
/// the saved object, whose tensors refer to storages by persistent id), `<name>/data/<key>` (the
/// raw little-endian bytes of each storage) and `<name>/byteorder`. The pickle is read by
/// ``SafeUnpickler`` with a vocabulary that rebuilds tensors, parameters, ordered dicts and plain
/// values only; any other class or callable is refused by name, file and byte offset. The legacy
/// format of torch < 1.6 is refused with a hint.
public enum TorchCheckpoint {
    /// A state dict read from a file, with what was done to find it.
    public struct StateDict {
        /// Tensors keyed by the saved names (after removing a DataParallel `module.` prefix).
        public let tensors: [String: Tensor]
        /// Human-readable notes: where in a checkpoint the state dict was found, prefixes removed.
        public let notes: [String]
    }

    /// Keys under which training scripts commonly store a model's state dict in a checkpoint,
    /// tried in this order (the reference saves `model_state_dict`).
    public static let wrapperKeys = ["state_dict", "model_state_dict", "model", "net", "network", "module", "weights"]

    /// The tensors read from one file may take at most this many times the file's size (plus
    /// ``expansionAllowance``): a view of a storage copies at most the storage, unless its
    /// strides repeat elements, and a few bytes of pickle can name a storage many times, so
    /// without a bound a 537-byte file asked for 6.3 GB (found by fuzzing).
    nonisolated(unsafe) public static var expansionFactor = 4
    /// Bytes of tensors any file may produce beyond ``expansionFactor`` times its size (64 MiB).
    public static let expansionAllowance = 64 << 20
    /// A view with more elements than its storage (zero or overlapping strides: an expanded
    /// tensor) is refused past this many elements.
    public static let maximumRepeatedViewElements = 1 << 24

    /// How many bytes of tensors a file of `fileSize` bytes may produce.
    static func materialisationLimit(fileSize: Int) -> Int {
        let (scaled, overflow) = fileSize.multipliedReportingOverflow(by: expansionFactor)
        return overflow ? Int.max : scaled.addingReportingOverflow(expansionAllowance).overflow ? Int.max : scaled + expansionAllowance
    }

    /// Reads the model state dict of a `.pth` file: a plain state dict, or a checkpoint dict that
    /// holds one (see ``wrapperKeys``; otherwise the only entry that is a dict of tensors).
    /// A `module.` prefix on every key (`nn.DataParallel`) is removed.
    ///
    /// - Throws: ``DataFileError`` naming the file, the entry or key, and the byte offset.
    public static func stateDict(_ path: String) throws -> StateDict {
        try stateDict(contents: try EventFiles.contents(path), path: path)
    }

    /// Reads the model state dict of `.pth` bytes; `path` labels errors.
    public static func stateDict(contents data: Data, path: String) throws -> StateDict {
        let archive = try open(data, path: path)
        let root = try archive.pickle()
        var notes: [String] = []
        let found: [(String, TorchTensorReference)]
        if let direct = tensorDict(root) {
            found = direct
        } else if case .dict(let d) = root {
            let entries = d.items.compactMap { k, v -> (String, [(String, TorchTensorReference)])? in
                guard case .string(let key) = k, let t = tensorDict(v) else { return nil }
                return (key, t)
            }
            if let preferred = wrapperKeys.lazy.compactMap({ key in entries.first { $0.0 == key } }).first {
                found = preferred.1
                notes.append("state dict read from the checkpoint's '\(preferred.0)' entry")
            } else if entries.count == 1 {
                found = entries[0].1
                notes.append("state dict read from the checkpoint's '\(entries[0].0)' entry")
            } else {
                let keys = d.items.map { "\($0.0)" }.joined(separator: ", ")
                throw DataFileError(path: path,
                                    reason: entries.isEmpty ? "holds no dict of tensors (top-level keys: \(keys))"
                                        : "holds several dicts of tensors (\(entries.map(\.0).joined(separator: ", "))); none is under \(wrapperKeys.joined(separator: ", "))")
            }
        } else {
            throw DataFileError(path: path, reason: "holds \(root), not a state dict")
        }
        let (names, stripped) = withoutDataParallelPrefix(found.map(\.0))
        if let stripped { notes.append(stripped) }
        var tensors: [String: Tensor] = [:]
        var budget = materialisationLimit(fileSize: data.count)
        for (name, (original, reference)) in zip(names, found) {
            guard tensors[name] == nil else {
                throw DataFileError(path: path, reason: "key '\(name)' appears twice")
            }
            tensors[name] = try archive.tensor(reference, key: original, budget: &budget)
        }
        return StateDict(tensors: tensors, notes: notes)
    }

    /// `names` without the `module.` prefix `nn.DataParallel` puts on every key, and a note when
    /// it was there.
    public static func withoutDataParallelPrefix(_ names: [String]) -> (names: [String], note: String?) {
        guard !names.isEmpty && names.allSatisfy({ $0.hasPrefix("module.") }) else { return (names, nil) }
        return (names.map { String($0.dropFirst("module.".count)) }, "removed the DataParallel prefix 'module.' from every key")
    }

    /// The unpickled object of a `.pth` file, tensors left as ``TorchTensorReference``s.
    public static func object(_ path: String) throws -> PickleValue { try open(try EventFiles.contents(path), path: path).pickle() }

    /// A dict whose keys are all strings and whose values are all tensors, in order.
    static func tensorDict(_ value: PickleValue) -> [(String, TorchTensorReference)]? {
        guard case .dict(let d) = value, !d.items.isEmpty else { return nil }
        var out: [(String, TorchTensorReference)] = []
        for (k, v) in d.items {
            guard case .string(let key) = k, case .object(let o) = v, let t = o as? TorchTensorReference else { return nil }
            out.append((key, t))
        }
        return out
    }

    static func open(_ data: Data, path: String) throws -> TorchArchive {
        guard ZipArchive.isZip(data) else {
            let legacy = data.first == 0x80 || (data.count > 262 && data[data.startIndex + 257..<data.startIndex + 262].elementsEqual(Array("ustar".utf8)))
            throw DataFileError(path: path, reason: legacy
                ? "is in PyTorch's legacy format (torch < 1.6), which SwiftSNN does not read; re-save it with torch >= 1.6: torch.save(torch.load(path), 'new.pth')"
                : "is not a PyTorch file (torch.save writes a ZIP archive) nor safetensors")
        }
        return try TorchArchive(ZipArchive(data, path: path))
    }
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
public final class TorchStorageReference: PickleObject {
    public let key: String
    /// The storage class name (`FloatStorage`).
    public let kind: String
    public let count: Int
    init(key: String, kind: String, count: Int) { (self.key, self.kind, self.count) = (key, kind, count) }
    public var description: String { "torch.\(kind)(key \(key), \(count) elements)" }

    /// The element type of a storage class, or `nil` when SwiftSNN holds no such dtype.
    var dtype: DType? {
        switch kind {
        case "FloatStorage": return .float32
        case "DoubleStorage": return .float64
        case "HalfStorage": return .float16
        case "BFloat16Storage": return .bfloat16
        case "LongStorage": return .int64
        case "IntStorage": return .int32
        case "ByteStorage", "BoolStorage": return .uint8
        default: return nil
        }
    }
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a strided view of a storage.
public final class TorchTensorReference: PickleObject {
    public let storage: TorchStorageReference
    public let offset: Int
    public let shape: [Int]
    public let strides: [Int]
    init(storage: TorchStorageReference, offset: Int, shape: [Int], strides: [Int]) {
        (self.storage, self.offset, self.shape, self.strides) = (storage, offset, shape, strides)
    }
    public var description: String { "tensor(\(storage.kind), shape \(shape))" }
}

/// An opened `torch.save` archive.
struct TorchArchive {
    let zip: ZipArchive
    /// The folder every entry sits in (`archive/`, or the file's stem).
    let prefix: String
    let pickleEntry: ZipArchive.Entry
    /// Storage entries whose CRC-32 was checked: many tensors may view one storage, and it is
    /// checked once, not once per tensor.
    private let verified = Verified()
    private final class Verified { var names: Set<String> = [] }

    init(_ zip: ZipArchive) throws {
        self.zip = zip
        guard let entry = zip.entries.first(where: { $0.name.hasSuffix("data.pkl") && $0.name.split(separator: "/").count <= 2 }) else {
            throw DataFileError(path: zip.path, reason: "is a ZIP archive without data.pkl: not a torch.save file")
        }
        pickleEntry = entry
        prefix = String(entry.name.dropLast("data.pkl".count))
        if let order = zip.entry(prefix + "byteorder") {
            let text = String(decoding: try zip.data(order), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text == "little" else {
                throw DataFileError(path: zip.path, record: nil, offset: order.headerOffset, reason: "storages are \(text)-endian; only little-endian files are read")
            }
        }
    }

    /// The pickled object.
    func pickle() throws -> PickleValue {
        let unpickler = SafeUnpickler(try zip.data(pickleEntry), path: "\(zip.path) (\(pickleEntry.name))", vocabulary: TorchArchive.vocabulary)
        return try unpickler.value()
    }

    static let storageKinds = ["FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                               "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage"]

    /// Tensors, parameters and storage classes; nothing is ever called.
    static let vocabulary = PickleVocabulary(
        globals: Set(["torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"] + storageKinds.map { "torch.\($0)" }),
        reduce: { module, name, a in
            switch name {
            case "_rebuild_tensor_v2":
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                guard a.count >= 4, case .object(let s) = a[0], let storage = s as? TorchStorageReference, case .int(let offset) = a[1],
                      let shape = ints(a[2]), let strides = ints(a[3]), shape.count == strides.count else {
                    throw PickleRefusal("torch._utils._rebuild_tensor_v2 expects (storage, offset, size, stride, ...), got \(a.map(\.description))")
                }
                return .object(TorchTensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
            case "_rebuild_parameter":
                // (data, requires_grad, backward_hooks): the data tensor.
                guard let data = a.first, case .object(let t) = data, t is TorchTensorReference else {
                    throw PickleRefusal("torch._utils._rebuild_parameter expects a tensor")
                }
                return data
            default:
                throw PickleRefusal("refuses to call '\(module).\(name)'")
            }
        },
        persistentLoad: { pid in
            guard case .tuple(let t, _) = pid, t.count == 5, case .string("storage") = t[0], case .global("torch", let kind) = t[1],
                  case .string(let key) = t[2], case .int(let count) = t[4], count >= 0 else {
                throw PickleRefusal("expected a persistent id ('storage', torch.<Type>Storage, key, location, numel), got \(pid)")
            }
            return .object(TorchStorageReference(key: key, kind: kind, count: count))
        })

    private static func ints(_ v: PickleValue) -> [Int]? {
        guard case .tuple(let items, _) = v else { return nil }
        var out: [Int] = []
        for i in items {
            guard case .int(let n) = i else { return nil }
            out.append(n)
        }
        return out
    }

    /// Copies the view a reference describes out of its storage into a new contiguous tensor,
    /// spending its bytes from `budget` (what the file may still make us allocate).
    ///
    /// Every number here comes from the file: the view must lie inside its storage (offset plus
    /// the furthest element its sizes and strides reach, in checked arithmetic), the storage
    /// inside its entry, and the copy inside the budget.
    func tensor(_ r: TorchTensorReference, key: String, budget: inout Int) throws -> Tensor {
        let name = prefix + "data/" + r.storage.key
        func fail(_ at: Int, _ why: String) -> DataFileError { DataFileError(path: zip.path, record: nil, offset: at, reason: "key '\(key)': \(why)") }
        guard let entry = zip.entry(name) else { throw fail(0, "its storage '\(name)' is missing from the archive") }
        guard let dtype = r.storage.dtype else { throw fail(entry.headerOffset, "torch.\(r.storage.kind) tensors are not supported") }
        let size = dtype.size
        guard let storageBytes = checkedMultiply(r.storage.count)(size), storageBytes <= entry.size else {
            throw fail(entry.headerOffset, "storage '\(name)' has \(entry.size) bytes, \(r.storage.count) \(dtype) elements need more")
        }
        let view = "offset \(r.offset), size \(r.shape), stride \(r.strides)"
        guard r.shape.allSatisfy({ $0 >= 0 }), r.strides.allSatisfy({ $0 >= 0 }), r.offset >= 0 else {
            throw fail(entry.headerOffset, "bad view: \(view) (negative sizes, strides and offsets are refused)")
        }
        guard let count = r.shape.reduce(Optional(1), { p, n in p.flatMap(checkedMultiply(n)) }), let byteCount = checkedMultiply(count)(size) else {
            throw fail(entry.headerOffset, "size \(r.shape) of \(dtype) is too large to address (its bytes are more than an Int counts)")
        }
        if count > 0 {
            let last = zip_(r.shape, r.strides).reduce(Optional(r.offset)) { sum, d in
                guard let sum, let step = checkedMultiply(d.0 - 1)(d.1) else { return nil }
                let (v, overflow) = sum.addingReportingOverflow(step)
                return overflow ? nil : v
            }
            guard let last, last < r.storage.count else {
                throw fail(entry.headerOffset, "the view (\(view)) reaches past the end of a \(r.storage.count)-element storage")
            }
            // More elements than the storage holds: the strides repeat elements (an expanded tensor).
            guard count <= r.storage.count || count <= TorchCheckpoint.maximumRepeatedViewElements else {
                throw fail(entry.headerOffset, "the view (\(view)) repeats the elements of a \(r.storage.count)-element storage into \(count) elements, more than the \(TorchCheckpoint.maximumRepeatedViewElements) allowed for zero or overlapping strides (TorchCheckpoint.maximumRepeatedViewElements)")
            }
        }
        guard byteCount <= budget else {
            throw fail(entry.headerOffset, "its \(byteCount) bytes would take the tensors past the \(TorchCheckpoint.materialisationLimit(fileSize: zip.byteCount)) bytes this \(zip.byteCount)-byte file may produce (\(TorchCheckpoint.expansionFactor) times its size plus \(TorchCheckpoint.expansionAllowance); --max-checkpoint-expansion or TorchCheckpoint.expansionFactor raises it)")
        }
        budget -= byteCount
        let storage: Storage
        do { storage = try Storage(hostByteCount: byteCount, device: .cpu) } catch { throw fail(entry.headerOffset, "\(error)") }
        let out = Tensor(storage: storage, shape: r.shape, dtype: dtype, device: .cpu)
        let checked = verified.names.contains(name)
        try zip.withData(entry, verified: checked) { raw in
            guard let base = raw.baseAddress, count > 0 else { return }
            if r.strides == ShapeUtil.contiguousStrides(r.shape) {
                out.storage.data.copyMemory(from: base + r.offset * size, byteCount: byteCount)
                return
            }
            // A non-contiguous view (a transpose or a slice was saved): copy element by element,
            // moving the source index by one stride at a time.
            var index = [Int](repeating: 0, count: r.shape.count)
            var source = r.offset
            for i in 0..<count {
                (out.storage.data + i * size).copyMemory(from: base + source * size, byteCount: size)
                var d = r.shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    // Wrapping: past the last index of a dimension the sum may leave the view
                    // (even overflow, for a size-1 dimension's stride); it is taken back at once.
                    source &+= r.strides[d]
                    if index[d] < r.shape[d] { break }
                    source &-= r.strides[d] &* r.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        verified.names.insert(name)
        return out
    }
}

/// `a * b`, or `nil` on overflow.
private func checkedMultiply(_ a: Int) -> (Int) -> Int? {
    { b in
        let (v, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : v
    }
}

/// `zip` (the name is taken by the archive inside ``TorchArchive``).
private func zip_<A: Sequence, B: Sequence>(_ a: A, _ b: B) -> Zip2Sequence<A, B> { zip(a, b) }
