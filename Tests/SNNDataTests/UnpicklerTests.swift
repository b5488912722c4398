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
}
