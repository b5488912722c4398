import Foundation
import SNNData
import Testing

/// The safe unpickler reads what Python's pickle writes for data, and refuses code.
@Suite("safe unpickler")
struct UnpicklerTests {
    /// Pickles written by scripts/make_pickles.py into a fresh folder.
    private func pickles() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-pickles-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/make_pickles.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, dir.path]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 scripts/make_pickles.py failed (pip install numpy)")
        return dir
    }

    @Test("CIFAR-10 and CIFAR-100 python batches in protocols 2 and 4")
    func cifar() throws {
        let dir = try pickles()
        defer { try? FileManager.default.removeItem(at: dir) }
        let expected = (0..<(3 * 3072)).map { UInt8($0 % 251) }
        for p in [2, 4] {
            let ten = try CIFARPython.read(dir.appendingPathComponent("cifar10_p\(p)").path, variant: .cifar10)
            #expect(ten.labels == [6, 9, 0] && ten.pixels == expected, "protocol \(p)")
            let hundred = try CIFARPython.read(dir.appendingPathComponent("cifar100_p\(p)").path, variant: .cifar100)
            #expect(hundred.labels == [99, 0, 42] && hundred.coarseLabels == [19, 0, 7] && hundred.pixels == expected)
        }
        let int64 = try CIFARPython.read(dir.appendingPathComponent("labels_i8").path, variant: .cifar10)
        #expect(int64.labels == [1, 2, 3])
    }

    @Test("a pickle that asks for os.system is refused by name, nothing runs")
    func refusesCode() throws {
        let dir = try pickles()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { try SafeUnpickler.load(dir.appendingPathComponent("evil").path) } throws: {
            let s = "\($0)"
            return s.contains("evil") && s.contains("refuses to load") && s.contains("system") && s.contains("byte offset")
        }
    }

    @Test("truncated pickles and unknown opcodes are errors with offsets", arguments: [
        ([0x80, 0x02, 0x7D, 0x71, 0x00], "ends without STOP"),
        ([0x80, 0x02, 0x58, 0xFF, 0x00, 0x00, 0x00, 0x41], "ends inside"),
        ([0x80, 0x02, 0x7D, 0x73, 0x2E], "stack underflow"),
        ([0x80, 0x02, 0x70, 0x2E], "opcode 0x70 is not allowed"),
    ] as [([UInt8], String)])
    func corrupt(_ c: ([UInt8], String)) {
        #expect { try SafeUnpickler(Data(c.0), path: "bad.pkl").value() } throws: { "\($0)".contains(c.1) && "\($0)".contains("bad.pkl") }
    }

    @Test("deeply nested containers are refused (fuzzing found a stack overflow here)")
    func deepNesting() {
        // ((((...)))): 10,000 TUPLE1 opcodes around an empty tuple.
        let tuples: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 10_000) + [0x2E]
        #expect { try SafeUnpickler(Data(tuples), path: "deep.pkl").value() } throws: { "\($0)".contains("nested deeper than 100") }
        // [[[[...]]]]: lists appended into lists, through the memo.
        var lists: [UInt8] = [0x80, 0x02]
        for _ in 0..<200 { lists += [0x5D] }
        for _ in 0..<199 { lists += [0x61] }
        lists += [0x2E]
        #expect { try SafeUnpickler(Data(lists), path: "deep.pkl").value() } throws: { "\($0)".contains("nested deeper than 100") }
    }

    @Test("self-referential containers are refused (fuzzing found them leaking)")
    func cycles() {
        // d = {}; d['a'] = d  →  PROTO 2, EMPTY_DICT, BINPUT 0, SHORT_BINUNICODE 'a', BINGET 0, SETITEM, STOP
        let pickle: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x8C, 0x01, 0x61, 0x68, 0x00, 0x73, 0x2E]
        #expect { try SafeUnpickler(Data(pickle), path: "cycle.pkl").value() } throws: { "\($0)".contains("would contain itself") }
    }

    /// Whether `bytes` are refused with an error naming `file`, an offset and `reason`.
    private func refused(_ bytes: [UInt8], _ reason: String, file: String = "hostile.pkl") -> Bool {
        do {
            let v = try SafeUnpickler(Data(bytes), path: file).value()
            Issue.record("accepted \(v), expected '\(reason)'")
            return false
        } catch {
            let s = "\(error)"
            #expect(s.contains(reason) && s.contains(file) && s.contains("byte offset"), "\(s)")
            return s.contains(reason)
        }
    }

    /// LONG_BINGET `k`.
    private func get(_ k: Int) -> [UInt8] { [0x6A] + Crafted.le(UInt64(k), 4) }

    @Test("exactly 100 levels of nesting are read, 101 are refused")
    func depthBoundary() throws {
        let ok: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 99) + [0x2E]
        guard case .tuple(_, let depth) = try SafeUnpickler(Data(ok), path: "ok.pkl").value() else { Issue.record("not a tuple"); return }
        #expect(depth == 100)
        #expect(refused([0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 100) + [0x2E], "nested deeper than 100"))
    }

    @Test("a list or dict cannot be filled after another container holds it (nesting limit bypassed, 30,000 levels crashed when freed)")
    func fillAfterStoring() {
        // l0 = []; repeat: l = []; parent.append(l) (l is empty then: depth 2), then fill l.
        // PROTO, EMPTY_LIST, MEMOIZE, then per level: EMPTY_LIST, MEMOIZE, APPEND, LONG_BINGET k.
        var lists: [UInt8] = [0x80, 0x02, 0x5D, 0x94]
        for k in 1..<30_000 { lists += [0x5D, 0x94, 0x61] + get(k) }
        lists += [0x2E]
        #expect(refused(lists, "APPEND changes a list that another container already holds"))
        // The same with dicts: d[k] = {} then fill it through the memo.
        var dicts: [UInt8] = [0x80, 0x02, 0x7D, 0x94]
        for k in 1..<30_000 { dicts += [0x8C, 0x01, 0x61, 0x7D, 0x94, 0x73] + get(k) }
        dicts += [0x2E]
        #expect(refused(dicts, "SETITEM changes a dict that another container already holds"))
        // A list put in a tuple, then filled (APPENDS); a dict put in a list, then filled (SETITEMS).
        #expect(refused([0x80, 0x02, 0x5D, 0x94, 0x85, 0x68, 0x00, 0x28, 0x4E, 0x65, 0x2E], "APPENDS changes a list"))
        #expect(refused([0x80, 0x02, 0x5D, 0x7D, 0x94, 0x61, 0x68, 0x00, 0x28, 0x4E, 0x4E, 0x75, 0x2E], "SETITEMS changes a dict"))
    }

    @Test("BUILD on a dict counts its attributes towards the nesting limit and takes only a dict")
    func buildOnDict() {
        // Each level: d = {}; d.__dict__ = {'a': previous}; 30,000 levels used to nest unchecked.
        // PROTO, EMPTY_DICT, MEMOIZE, then per level: EMPTY_DICT, EMPTY_DICT, 'a', LONG_BINGET k-1, SETITEM, BUILD, MEMOIZE.
        var chain: [UInt8] = [0x80, 0x02, 0x7D, 0x94]
        for k in 1..<30_000 { chain += [0x7D, 0x7D, 0x8C, 0x01, 0x61] + get(k - 1) + [0x73, 0x62, 0x94] }
        chain += [0x2E]
        #expect(refused(chain, "nested deeper than 100"))
        // BUILD with another state used to drop it (a POP).
        #expect(refused([0x80, 0x02, 0x7D, 0x5D, 0x62, 0x2E], "BUILD on a dict needs a dict of attributes"))
        // d.__dict__ = {'a': d}: the state holds d, so d no longer changes (no cycle can form).
        #expect(refused([0x80, 0x02, 0x7D, 0x94, 0x7D, 0x8C, 0x01, 0x61, 0x68, 0x00, 0x73, 0x62, 0x2E], "BUILD changes a dict that another container already holds"))
        // Attributes of a dict already held by a list are not changed either.
        #expect(refused([0x80, 0x02, 0x5D, 0x7D, 0x94, 0x61, 0x68, 0x00, 0x7D, 0x62, 0x2E], "BUILD changes a dict that another container already holds"))
    }

    @Test("a DAG of tuples that each hold the previous one twice is read at once (the cycle check took 2^60 steps)",
          .timeLimit(.minutes(1)))
    func tupleDAG() throws {
        // t = (); 60 times: t = (t, t) (BINPUT 0, BINGET 0, TUPLE2); then [t] and {t: t}.
        var dag: [UInt8] = [0x29]
        for _ in 0..<60 { dag += [0x71, 0x00, 0x68, 0x00, 0x86] }
        let list: [UInt8] = [0x80, 0x02, 0x5D] + dag + [0x61, 0x2E]
        guard case .list(let l) = try SafeUnpickler(Data(list), path: "dag.pkl").value(), case .tuple(_, let depth)? = l.items.first else {
            Issue.record("not a list of a tuple"); return
        }
        #expect(depth == 61)
        let dict: [UInt8] = [0x80, 0x02, 0x7D] + dag + [0x71, 0x01, 0x68, 0x01, 0x73, 0x2E]
        guard case .dict(let d) = try SafeUnpickler(Data(dict), path: "dag.pkl").value() else { Issue.record("not a dict"); return }
        #expect(d.items.count == 1)
    }

    /// Lengths at the 32-bit and 64-bit boundaries, as 8-byte fields (2^63 and up read as negative).
    static let lengths: [UInt64] = [1 << 31, 1 << 32, (1 << 63) - 8, (1 << 63) - 1, 1 << 63, UInt64.max]

    @Test("every length-prefixed opcode refuses lengths past the end, at 2^31, 2^32 and near 2^63, without overflow",
          arguments: [(0x58, 4), (0x54, 4), (0x42, 4), (0x8D, 8), (0x8E, 8), (0x96, 8), (0x95, 8)] as [(UInt8, Int)])
    func lengthPrefixes(_ c: (UInt8, Int)) {
        for n in Self.lengths {
            guard c.1 == 8 || n < 1 << 32 else { continue }
            #expect(refused([0x80, 0x02, c.0] + Crafted.le(n, c.1) + Array("abc.".utf8), "it needs \(n) bytes, 4 are left"), "opcode \(c.0) length \(n)")
        }
        if c.1 == 4 { #expect(refused([0x80, 0x02, c.0] + Crafted.le(0xFFFF_FFFF, 4) + Array("abc.".utf8), "it needs 4294967295 bytes")) }
        // One byte short of the end, and a length field cut short.
        #expect(refused([0x80, 0x02, c.0] + Crafted.le(5, c.1) + Array("abc.".utf8), "it needs 5 bytes, 4 are left"))
        #expect(refused([0x80, 0x02, c.0, 0x01], "ends inside the argument"))
        // 1-byte lengths: SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE at 255.
        for op: UInt8 in [0x55, 0x43, 0x8C] { #expect(refused([0x80, 0x02, op, 0xFF, 0x2E], "it needs 255 bytes, 1 are left")) }
        // LONG1 and LONG4 refuse more than 8 bytes before reading them.
        for n in [9, 1 << 31, (1 << 32) - 1] as [UInt64] { #expect(refused([0x80, 0x02, 0x8B] + Crafted.le(n, 4) + [0x2E], "integer of \(n) bytes is too large")) }
        #expect(refused([0x80, 0x02, 0x8A, 0xFF, 0x2E], "integer of 255 bytes is too large"))
    }

    @Test("the fuzzed BINBYTES8 of length 2^63 - 8 is an error naming the file when read as a CIFAR batch")
    func fuzzedCIFARPython() throws {
        let root = try TestFiles.temporaryRoot("pickle-len")
        defer { try? FileManager.default.removeItem(at: root) }
        let path = root.appendingPathComponent("data_batch_1").path
        try Data([0x80, 0x02, 0x8E, 0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F] + Array("abc.".utf8)).write(to: URL(fileURLWithPath: path))
        #expect { try CIFARPython.read(path, variant: .cifar10) } throws: {
            "\($0)".contains(path) && "\($0)".contains("BINBYTES8") && "\($0)".contains("9223372036854775800 bytes") && "\($0)".contains("byte offset 2")
        }
    }

    /// `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` built with `shape` of `code`
    /// (`numpy.dtype(code)`) and `data`.
    private func ndarray(shape: [Int], code: String, data: [UInt8]) -> [UInt8] {
        var p = Crafted.Pickle()
        p.global("numpy.core.multiarray", "_reconstruct")
        p.mark(); p.global("numpy", "ndarray"); p.ints([0]); p.binBytes(Array("b".utf8)); p.tuple()
        p.op(0x52)                                                    // REDUCE
        p.mark(); p.int(1); p.ints(shape)
        p.global("numpy", "dtype"); p.mark(); p.string(code); p.op(0x89, 0x88); p.tuple(); p.op(0x52)
        p.mark(); p.int(3); p.string("|"); p.tuple(); p.op(0x62)      // the dtype's BUILD
        p.op(0x89); p.binBytes(data); p.tuple()
        p.op(0x62)                                                    // BUILD
        p.stop()
        return p.bytes
    }

    @Test("a NumPy array whose shape product overflows is refused, a right one is read")
    func ndarrayOverflow() throws {
        guard case .array(let a) = try SafeUnpickler(Data(ndarray(shape: [2, 3], code: "u1", data: Array(0..<6))), path: "ok.pkl").value() else {
            Issue.record("not an array"); return
        }
        #expect(a.shape == [2, 3] && a.integers() == [0, 1, 2, 3, 4, 5])
        // Products that wrap to 0 (or to the data's size) once matched empty data.
        for (shape, code) in [([1 << 32, 1 << 32], "u1"), ([1 << 62, 4], "u1"), ([1 << 61], "f8"), ([1 << 31, 1 << 31, 4], "i4"),
                              ([Int.max, 2], "u1"), ([Int.max - 7], "f8")] as [([Int], String)] {
            #expect(refused(ndarray(shape: shape, code: code, data: []), "has more bytes than an Int counts"), "\(shape) \(code)")
        }
        #expect(refused(ndarray(shape: [1 << 31], code: "u1", data: [1, 2]), "array data has 2 bytes"))
        #expect(refused(ndarray(shape: [1 << 32, 0], code: "f8", data: [1]), "array data has 1 bytes"))
    }

    @Test("a NumPy dtype code that is not byte order, kind and size is refused: '12u1' once counted 21 bytes per element")
    func malformedDTypeCode() throws {
        // The element size was read from every digit after the first character, so '12u1' (a
        // CIFAR 'data' array, since it ends in 'u1') took 21 bytes per pixel: a batch of N labels
        // came back with 21 × N × 3072 pixel bytes, and the images after the first were shifted.
        for code in ["12u1", "u1u1", "x9", "<<f4", "f4 ", "", "u-1"] {
            #expect(refused(ndarray(shape: [2], code: code, data: []), "NumPy dtype"), "'\(code)'")
        }
        var dict = Crafted.Pickle()
        dict.op(0x7D); dict.string("labels"); dict.op(0x5D); dict.mark(); dict.int(0); dict.op(0x65)
        dict.string("data"); dict.bytes += ndarray(shape: [1, 3072], code: "12u1", data: [UInt8](repeating: 7, count: 21 * 3072)).dropFirst(2).dropLast()
        dict.op(0x73, 0x73); dict.stop()
        #expect { try CIFARPython.decode(dict.data, path: "data_batch_1", variant: .cifar10) } throws: {
            "\($0)".contains("data_batch_1") && "\($0)".contains("NumPy dtype '12u1'")
        }
        // The codes NumPy writes are read: byte order, kind, size.
        for (code, size) in [("u1", 1), ("<f4", 4), ("|b1", 1), ("=i8", 8), (">f8", 8), ("c16", 16), ("?", 1)] {
            #expect(throws: Never.self, "'\(code)'") { try SafeUnpickler(Data(ndarray(shape: [2], code: code, data: Array(repeating: 0, count: 2 * size))), path: "ok.pkl").value() }
        }
    }

    @Test("one string converted to bytes again and again cannot expand a small pickle without bound")
    func latin1Expansion() throws {
        // s = 'x' * 100_000; then 10,000 times _codecs.encode(s, 'latin1') (GLOBAL once, then BINGET).
        var p = Crafted.Pickle()
        p.op(0x5D)                                                    // EMPTY_LIST
        p.global("_codecs", "encode"); p.op(0x71, 0x00)               // BINPUT 0
        p.string(String(repeating: "x", count: 100_000)); p.op(0x71, 0x01)
        p.op(0x85, 0x52, 0x61)                                        // TUPLE1, REDUCE, APPEND
        for _ in 0..<10_000 { p.op(0x68, 0x00, 0x68, 0x01, 0x85, 0x52, 0x61) }
        p.stop()
        #expect(refused(p.bytes, "text converted to bytes would exceed twice the pickle's"))
        // Once, it is read.
        var once = Crafted.Pickle()
        once.global("_codecs", "encode"); once.string("\u{e9}t\u{e9}"); once.op(0x85, 0x52); once.stop()
        guard case .bytes(let b) = try SafeUnpickler(once.data, path: "once.pkl").value() else { Issue.record("not bytes"); return }
        #expect(b == [0xE9, 0x74, 0xE9])
    }
}
