import Foundation

/// A value rebuilt by ``SafeUnpickler``: plain data only.
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    case array(PickleArray)
    /// A NumPy dtype while it is being rebuilt.
    case dtype(PickleDType)
    /// An allowed callable before it is applied.
    case global(String, String)
    /// A value a ``PickleVocabulary`` rebuilt (a PyTorch tensor, a storage reference).
    case object(PickleObject)

    public var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let f): return String(f)
        case .string(let s): return "'\(s)'"
        case .bytes(let b): return "bytes(\(b.count))"
        case .tuple(let t, _): return "tuple(\(t.count))"
        case .list(let l): return "list(\(l.items.count))"
        case .dict(let d): return "dict(\(d.items.count))"
        case .array(let a): return "ndarray(\(a.dtype) \(a.shape))"
        case .dtype(let d): return "dtype(\(d.code))"
        case .global(let m, let n): return "\(m).\(n)"
        case .object(let o): return o.description
        }
    }

    /// The value for a string or bytes key in a dict (`b'data'` and `'data'` both match).
    public subscript(key: String) -> PickleValue? {
        guard case .dict(let d) = self else { return nil }
        return d.items.first { k, _ in
            if case .string(let s) = k { return s == key }
            if case .bytes(let b) = k { return b == Array(key.utf8) }
            return false
        }?.1
    }
}

public final class PickleList {
    public var items: [PickleValue] = []
    /// How deeply containers nest inside this list, itself included; exact, because a list
    /// stops changing once another container holds it (see ``held``).
    var depth = 1
    /// Whether a list, dict or tuple holds this list: the unpickler then refuses to change it,
    /// so the depth its holders computed from it stays true and no cycle can close through it.
    var held = false
}
public final class PickleDict {
    public var items: [(PickleValue, PickleValue)] = []
    /// Instance attributes set by BUILD (an `OrderedDict`'s `_metadata`), kept apart from the items.
    public var attributes: [(PickleValue, PickleValue)] = []
    /// As ``PickleList/depth``; counts the attributes too.
    var depth = 1
    /// As ``PickleList/held``.
    var held = false
}

/// A value rebuilt by a ``PickleVocabulary``; the unpickler treats it as an opaque leaf.
public protocol PickleObject: AnyObject, CustomStringConvertible {}

/// What a kind of pickle may hold beyond plain data: the extra globals it may name, how an
/// allowed callable is rebuilt from its arguments (never by calling Python code), and how
/// persistent ids (BINPERSID) are resolved. Anything else is still refused by name and offset.
public struct PickleVocabulary {
    /// Extra allowed globals, `module.name`.
    public var globals: Set<String>
    /// Rebuilds `module.name(*arguments)` for a global of ``globals``; throw to refuse (the
    /// unpickler adds the file and offset to the message).
    public var reduce: (_ module: String, _ name: String, _ arguments: [PickleValue]) throws -> PickleValue
    /// Resolves a persistent id; `nil` refuses them.
    public var persistentLoad: ((PickleValue) throws -> PickleValue)?

    public init(globals: Set<String>, reduce: @escaping (String, String, [PickleValue]) throws -> PickleValue,
                persistentLoad: ((PickleValue) throws -> PickleValue)? = nil) {
        (self.globals, self.reduce, self.persistentLoad) = (globals, reduce, persistentLoad)
    }
}

/// A refusal from a ``PickleVocabulary``'s closures.
public struct PickleRefusal: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension PickleValue {
    /// How deeply containers nest inside this value (0 for scalars).
    var depth: Int {
        switch self {
        case .tuple(_, let d): return d
        case .list(let l): return l.depth
        case .dict(let d): return d.depth
        default: return 0
        }
    }

    /// The list or dict object this value is, if it is one.
    var container: AnyObject? {
        switch self {
        case .list(let l): return l
        case .dict(let d): return d
        default: return nil
        }
    }

    /// Marks a list or dict as held by another container, so that it no longer changes.
    func hold() {
        if case .list(let l) = self { l.held = true }
        if case .dict(let d) = self { d.held = true }
    }

    /// A tuple of `items`, one level deeper than its deepest item.
    static func makeTuple(_ items: [PickleValue]) -> PickleValue {
        .tuple(items, depth: 1 + (items.map(\.depth).max() ?? 0))
    }
}
public final class PickleDType { public var code: String; public var byteOrder = "|"; init(_ c: String) { code = c } }

/// A NumPy array: dtype code (`u1`, `<i8`, `<f4`, ...), shape and raw little-endian bytes.
public final class PickleArray {
    public var dtype = ""
    public var shape: [Int] = []
    public var data: [UInt8] = []
    /// The elements as integers (integer dtypes) for labels.
    public func integers() -> [Int]? {
        switch dtype {
        case "u1", "|u1": return data.map(Int.init)
        case "<i8", "i8":
            guard data.count % 8 == 0 else { return nil }
            return stride(from: 0, to: data.count, by: 8).map { o in
            data[o..<o + 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } }
        default: return nil
        }
    }
}

/// An unpickler that rebuilds only dicts, lists, tuples, strings, bytes, numbers and NumPy
/// arrays, and refuses every other class or callable by name and byte offset — unlike Python's,
/// it cannot run code. Protocols 0–5 opcodes that plain data uses are supported.
///
/// Every input ends in a value or a thrown ``DataFileError`` naming the file, the opcode and its
/// byte offset, after work and memory linear in the input: a length, count or size read from the
/// file is compared with what is left (or multiplied with overflow checks) before it is used,
/// containers nest at most ``maximumDepth`` levels however they are built, and no step walks a
/// value (all found by fuzzing).
public struct SafeUnpickler {
    /// The callables a data pickle may name; each is rebuilt, never called.
    static let allowed: Set<String> = [
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
        "_codecs.encode", "collections.OrderedDict", "builtins.bytearray", "__builtin__.bytearray",
    ]

    let bytes: [UInt8]
    let path: String
    let vocabulary: PickleVocabulary?
    /// Deeper nesting is refused: data never needs it, and freeing (or printing) a value nested
    /// a million levels deep would overflow the stack (found by fuzzing). The limit holds for
    /// every way of building containers because a list or dict can no longer change once another
    /// container holds it, so the depth recorded in each container object is exact.
    static let maximumDepth = 100

    /// - Parameter vocabulary: what this kind of pickle may hold beyond plain data.
    public init(_ data: Data, path: String, vocabulary: PickleVocabulary? = nil) {
        bytes = [UInt8](data)
        self.path = path
        self.vocabulary = vocabulary
    }

    /// Reads a pickle file.
    public static func load(_ path: String) throws -> PickleValue {
        try SafeUnpickler(try EventFiles.contents(path), path: path).value()
    }

    private func fail(_ at: Int, _ why: String) -> DataFileError { DataFileError(path: path, record: nil, offset: at, reason: why) }

    /// Names of the opcodes whose arguments are read, for errors.
    static let names: [UInt8: String] = [
        0x80: "PROTO", 0x95: "FRAME", 0x4A: "BININT", 0x4B: "BININT1", 0x4D: "BININT2", 0x8A: "LONG1", 0x8B: "LONG4",
        0x49: "INT", 0x47: "BINFLOAT", 0x58: "BINUNICODE", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8",
        0x55: "SHORT_BINSTRING", 0x54: "BINSTRING", 0x43: "SHORT_BINBYTES", 0x42: "BINBYTES", 0x8E: "BINBYTES8",
        0x96: "BYTEARRAY8", 0x71: "BINPUT", 0x72: "LONG_BINPUT", 0x68: "BINGET", 0x6A: "LONG_BINGET",
        0x63: "GLOBAL",
    ]

    /// `NAME (0xNN)` for the opcode at `at`.
    private func opcode(_ at: Int) -> String {
        let op = bytes[at]
        return (SafeUnpickler.names[op].map { "\($0) " } ?? "") + String(format: "(0x%02X)", op)
    }

    /// The pickled object.
    public func value() throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var i = 0
        var converted = 0
        /// Checks that `n` bytes (read from the file, so anything, negative when a 64-bit length
        /// has its top bit set) follow `i`: compared with what is left, never added to `i`.
        func need(_ n: Int, _ at: Int) throws {
            guard n >= 0, n <= bytes.count - i else {
                throw fail(at, "the pickle ends inside the argument of \(opcode(at)): it needs \(UInt64(bitPattern: Int64(n))) bytes, \(bytes.count - i) are left")
            }
        }
        func uint(_ n: Int, _ at: Int) throws -> Int {
            try need(n, at)
            var v = 0
            for k in 0..<n { v |= Int(bytes[i + k]) << (8 * k) }
            i += n
            return v
        }
        func take(_ n: Int, _ at: Int) throws -> [UInt8] {
            try need(n, at)
            defer { i += n }
            return Array(bytes[i..<i + n])
        }
        func line(_ at: Int) throws -> String {
            guard let end = bytes[i...].firstIndex(of: 10) else { throw fail(at, "unterminated text argument of \(opcode(at))") }
            defer { i = end + 1 }
            return String(decoding: bytes[i..<end], as: UTF8.self)
        }
        func pop(_ at: Int) throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail(at, "stack underflow") }
            return v
        }
        func popMark(_ at: Int) throws -> [PickleValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail(at, "no MARK before this opcode") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        /// A little-endian two's-complement integer of `n` bytes (LONG1, LONG4).
        func long(_ n: Int, _ at: Int) throws -> PickleValue {
            guard n <= 8 else { throw fail(at, "integer of \(n) bytes is too large") }
            let b = try take(n, at)
            var v: Int64 = 0
            for (k, x) in b.enumerated() { v |= Int64(x) << (8 * Int64(k)) }
            if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
            return .int(Int(v))
        }
        /// The list on top of the stack, which no other container holds yet.
        func openList(_ at: Int, _ name: String) throws -> PickleList {
            guard case .list(let l)? = stack.last else { throw fail(at, "\(name) needs a list") }
            guard !l.held else { throw fail(at, "\(name) changes a list that another container already holds") }
            return l
        }
        /// The dict on top of the stack, which no other container holds yet.
        func openDict(_ at: Int, _ name: String) throws -> PickleDict {
            guard case .dict(let d)? = stack.last else { throw fail(at, "\(name) needs a dict") }
            guard !d.held else { throw fail(at, "\(name) changes a dict that another container already holds") }
            return d
        }
        while i < bytes.count {
            let at = i
            let op = bytes[i]
            i += 1
            switch op {
            case 0x80: _ = try uint(1, at)                                   // PROTO
            case 0x95: try need(try uint(8, at), at)                         // FRAME: its bytes must be in the file
            case 0x2E: return try pop(at)                                    // STOP
            case 0x28: marks.append(stack.count)                             // MARK
            case 0x7D: stack.append(.dict(PickleDict()))                     // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                     // EMPTY_LIST
            case 0x29: stack.append(.makeTuple([]))                          // EMPTY_TUPLE
            case 0x74: stack.append(try tuple(try popMark(at), at))          // TUPLE
            case 0x85, 0x86, 0x87:                                           // TUPLE1-3
                let n = Int(op - 0x84)
                guard stack.count >= n else { throw fail(at, "stack underflow") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                stack.append(try tuple(items, at))
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4, at)))))   // BININT
            case 0x4B: stack.append(.int(try uint(1, at)))                   // BININT1
            case 0x4D: stack.append(.int(try uint(2, at)))                   // BININT2
            case 0x8A: stack.append(try long(try uint(1, at), at))           // LONG1
            case 0x8B: stack.append(try long(try uint(4, at), at))           // LONG4
            case 0x49:                                                       // INT (text)
                let s = try line(at)
                if s == "00" || s == "01" { stack.append(.bool(s == "01")) } else {
                    guard let v = Int(s) else { throw fail(at, "bad integer '\(s)'") }
                    stack.append(.int(v))
                }
            case 0x47:                                                       // BINFLOAT (big-endian)
                let b = try take(8, at)
                stack.append(.float(Double(bitPattern: b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(.string(String(decoding: try take(try uint(4, at), at), as: UTF8.self)))   // BINUNICODE
            case 0x8C: stack.append(.string(String(decoding: try take(try uint(1, at), at), as: UTF8.self)))   // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(String(decoding: try take(try uint(8, at), at), as: UTF8.self)))   // BINUNICODE8
            // Python 2 str: bytes (CIFAR's python pickles come from Python 2).
            case 0x55: stack.append(.bytes(try take(try uint(1, at), at)))   // SHORT_BINSTRING
            case 0x54: stack.append(.bytes(try take(try uint(4, at), at)))   // BINSTRING
            case 0x43: stack.append(.bytes(try take(try uint(1, at), at)))   // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(try take(try uint(4, at), at)))   // BINBYTES
            case 0x8E: stack.append(.bytes(try take(try uint(8, at), at)))   // BINBYTES8
            case 0x96: stack.append(.bytes(try take(try uint(8, at), at)))   // BYTEARRAY8
            case 0x71: memo[try uint(1, at)] = stack.last                    // BINPUT
            case 0x72: memo[try uint(4, at)] = stack.last                    // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                         // MEMOIZE
            case 0x68, 0x6A:                                                 // BINGET, LONG_BINGET
                let k = try uint(op == 0x68 ? 1 : 4, at)
                guard let v = memo[k] else { throw fail(at, "memo \(k) was never stored") }
                stack.append(v)
            case 0x61:                                                       // APPEND
                let v = try pop(at)
                let l = try openList(at, "APPEND")
                try store(v, in: l, depth: &l.depth, at)
                l.items.append(v)
            case 0x65:                                                       // APPENDS
                let items = try popMark(at)
                let l = try openList(at, "APPENDS")
                for v in items { try store(v, in: l, depth: &l.depth, at) }
                l.items += items
            case 0x73:                                                       // SETITEM
                let v = try pop(at), k = try pop(at)
                let d = try openDict(at, "SETITEM")
                try store(k, in: d, depth: &d.depth, at)
                try store(v, in: d, depth: &d.depth, at)
                d.items.append((k, v))
            case 0x75:                                                       // SETITEMS
                let items = try popMark(at)
                guard items.count % 2 == 0 else { throw fail(at, "SETITEMS needs a dict and pairs") }
                let d = try openDict(at, "SETITEMS")
                for k in stride(from: 0, to: items.count, by: 2) {
                    try store(items[k], in: d, depth: &d.depth, at)
                    try store(items[k + 1], in: d, depth: &d.depth, at)
                    d.items.append((items[k], items[k + 1]))
                }
            case 0x63:                                                       // GLOBAL
                let module = try line(at), name = try line(at)
                stack.append(try global(module, name, at))
            case 0x93:                                                       // STACK_GLOBAL
                let n = try pop(at), m = try pop(at)
                guard case .string(let module) = m, case .string(let name) = n else { throw fail(at, "STACK_GLOBAL needs two strings") }
                stack.append(try global(module, name, at))
            case 0x52, 0x81:                                                 // REDUCE, NEWOBJ
                let args = try pop(at), callable = try pop(at)
                stack.append(try apply(callable, args, converted: &converted, at))
            case 0x51:                                                       // BINPERSID
                let pid = try pop(at)
                guard let resolve = vocabulary?.persistentLoad else { throw fail(at, "persistent ids are not allowed in a data pickle") }
                pid.hold()   // what it resolves to may keep it
                do { stack.append(try resolve(pid)) } catch { throw fail(at, "\(error)") }
            case 0x62:                                                       // BUILD
                let state = try pop(at)
                guard let target = stack.last else { throw fail(at, "stack underflow") }
                try build(target, state, converted: &converted, at)
            default:
                throw fail(at, String(format: "opcode 0x%02X is not allowed in a data pickle", op))
            }
        }
        throw fail(bytes.count, "the pickle ends without STOP")
    }

    /// A tuple of `items`, if it does not nest too deeply; its list and dict items are held.
    private func tuple(_ items: [PickleValue], _ at: Int) throws -> PickleValue {
        let value = PickleValue.makeTuple(items)
        guard value.depth <= SafeUnpickler.maximumDepth else {
            throw fail(at, "containers nested deeper than \(SafeUnpickler.maximumDepth) levels")
        }
        for item in items { item.hold() }
        return value
    }

    /// Lets `container` (a list or dict that no other container holds, so nothing but itself
    /// can reach it) hold `value`: refuses a cycle (data never has one, and it would leak) and
    /// nesting deeper than ``maximumDepth``, raises `depth`, and marks `value` held. Because
    /// held containers never change, this needs no walk over `value` (a walk of a DAG of
    /// tuples took 2^60 steps, found by fuzzing).
    private func store(_ value: PickleValue, in container: AnyObject, depth: inout Int, _ at: Int) throws {
        if let object = value.container, object === container { throw fail(at, "a container would contain itself") }
        let d = value.depth + 1
        guard d <= SafeUnpickler.maximumDepth else { throw fail(at, "containers nested deeper than \(SafeUnpickler.maximumDepth) levels") }
        depth = max(depth, d)
        value.hold()
    }

    private func global(_ module: String, _ name: String, _ at: Int) throws -> PickleValue {
        guard SafeUnpickler.allowed.contains("\(module).\(name)") || vocabulary?.globals.contains("\(module).\(name)") == true else {
            throw fail(at, "refuses to load '\(module).\(name)': only plain data (dicts, lists, strings, numbers, NumPy arrays) is rebuilt")
        }
        return .global(module, name)
    }

    /// The bytes a latin-1 string stands for (how protocol 2 spells bytes from Python 3). This
    /// makes new bytes, so one long string named again and again through the memo could expand
    /// a small pickle without bound: all conversions together may make at most twice the
    /// pickle's size in bytes, `converted` counting them.
    private func latin1(_ text: String, converted: inout Int, _ at: Int) throws -> [UInt8] {
        let n = text.utf8.count
        guard n <= 2 * bytes.count - converted else {
            throw fail(at, "text converted to bytes would exceed twice the pickle's \(bytes.count) bytes (a string reused to expand it)")
        }
        converted += n
        return text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
    }

    private func apply(_ callable: PickleValue, _ args: PickleValue, converted: inout Int, _ at: Int) throws -> PickleValue {
        guard case .global(let module, let name) = callable, case .tuple(let a, _) = args else { throw fail(at, "REDUCE needs an allowed callable and a tuple") }
        if let vocabulary, vocabulary.globals.contains("\(module).\(name)") {
            do { return try vocabulary.reduce(module, name, a) } catch { throw fail(at, "\(error)") }
        }
        switch name {
        case "_reconstruct", "ndarray": return .array(PickleArray())
        case "dtype":
            guard case .string(let code)? = a.first else { throw fail(at, "numpy.dtype needs a type code") }
            guard SafeUnpickler.elementSize(code) != nil else {
                throw fail(at, "unsupported NumPy dtype '\(code)': expected an optional byte order, a kind and a size, like 'u1' or '<f4'")
            }
            return .dtype(PickleDType(code))
        case "OrderedDict": return .dict(PickleDict())
        case "encode", "bytearray":
            // _codecs.encode(text, 'latin1'): how protocol 2 spells bytes from Python 3.
            if case .string(let s)? = a.first { return .bytes(try latin1(s, converted: &converted, at)) }
            if case .bytes(let b)? = a.first { return .bytes(b) }
            return .bytes([])
        default: throw fail(at, "refuses to call '\(module).\(name)'")
        }
    }

    /// The bytes per element of a NumPy dtype code as NumPy pickles it (`u1`, `f4`, `b1`,
    /// `c16`, `?`; a byte order first is accepted), or `nil` for anything else. The size was
    /// once read from every digit after the first character, so `12u1`, which a CIFAR reader
    /// takes for `u1`, counted 21 bytes an element.
    static func elementSize(_ code: String) -> Int? {
        var rest = Substring(code)
        if let first = rest.first, "<>|=".contains(first) { rest = rest.dropFirst() }
        guard let kind = rest.first, "biufcmMOSUV?".contains(kind) else { return nil }
        let digits = rest.dropFirst()
        if digits.isEmpty { return 1 }
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let size = Int(digits), size > 0 else { return nil }
        return size
    }

    private func build(_ target: PickleValue, _ state: PickleValue, converted: inout Int, _ at: Int) throws {
        switch target {
        case .dtype(let d):
            guard case .tuple(let s, _) = state else { throw fail(at, "BUILD on a NumPy dtype needs a tuple, not \(state)") }
            if s.count > 1, case .string(let order) = s[1] { d.byteOrder = order }
        case .array(let arr):
            // State: (version, shape, dtype, is_fortran, raw bytes).
            guard case .tuple(let s, _) = state, s.count == 5, case .tuple(let shape, _) = s[1], case .dtype(let dt) = s[2] else {
                throw fail(at, "unexpected NumPy array state")
            }
            if case .bool(true) = s[3] { throw fail(at, "Fortran-ordered arrays are not supported") }
            arr.shape = try shape.map { v -> Int in
                guard case .int(let n) = v, n >= 0 else { throw fail(at, "bad array dimension \(v)") }
                return n
            }
            arr.dtype = (dt.byteOrder == "|" || dt.byteOrder == "=" ? "" : dt.byteOrder) + dt.code
            // Checked: the shape comes from the file, and a product that wraps could match the data.
            guard var needed = SafeUnpickler.elementSize(dt.code) else { throw fail(at, "unsupported NumPy dtype '\(dt.code)'") }
            for n in arr.shape {
                let (product, overflow) = needed.multipliedReportingOverflow(by: n)
                guard !overflow else { throw fail(at, "array shape \(arr.shape) of \(dt.code) has more bytes than an Int counts") }
                needed = product
            }
            switch s[4] {
            case .bytes(let b): arr.data = b
            case .string(let t): arr.data = try latin1(t, converted: &converted, at)
            default: throw fail(at, "NumPy array data must be raw bytes")
            }
            guard arr.data.count == needed else {
                throw fail(at, "array data has \(arr.data.count) bytes, shape \(arr.shape) of \(dt.code) needs \(needed)")
            }
        case .dict(let d):
            // An OrderedDict's instance attributes (a state dict's `_metadata`), not items; they
            // count towards its depth like items (BUILD once dropped any other state, nesting
            // attributes unchecked).
            guard case .dict(let extra) = state else { throw fail(at, "BUILD on a dict needs a dict of attributes, not \(state)") }
            guard !d.held else { throw fail(at, "BUILD changes a dict that another container already holds") }
            for (k, v) in extra.items {
                try store(k, in: d, depth: &d.depth, at)
                try store(v, in: d, depth: &d.depth, at)
                d.attributes.append((k, v))
            }
        default:
            throw fail(at, "BUILD on \(target) is not allowed")
        }
    }
}
