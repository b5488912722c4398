import Foundation
@testable import SNNData
import Testing

/// The two data errors: a file's (path once, then record and byte offset only where a byte is
/// meant, then a hint) and a folder's (path, problem, layout expected).
@Suite("data errors")
struct DataErrorsTests {
    @Test("a file error names the path once and the offset only where a byte is meant")
    func fileError() {
        #expect("\(DataFileError(path: "a.bin", reason: "no such file"))" == "a.bin: no such file")
        #expect("\(DataFileError(path: "a.bin", record: 3, reason: "label 12 is outside 0..<10"))" == "a.bin: label 12 is outside 0..<10 (record 3)")
        let truncated = DataFileError(path: "a.bin", record: 200, offset: 1000, reason: "truncated")
        #expect("\(truncated)" == "a.bin: truncated (record 200, byte offset 1000)")
        #expect("\(truncated.hinted("pass --skip-corrupt to skip unreadable files"))"
                == "a.bin: truncated (record 200, byte offset 1000); pass --skip-corrupt to skip unreadable files")
    }

    @Test("a layout error names the folder, the problem and the layout expected")
    func layoutError() throws {
        let root = try TestFiles.temporaryRoot("layout")
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("file").path
        try Data().write(to: URL(fileURLWithPath: file))
        let cases = [("\(root.path)/none", "\(root.path)/none: no such folder; expected X/"), (file, "\(file): is a file, not a folder; expected X/")]
        for (path, message) in cases {
            #expect { try DataLayoutError.requireFolder(path, expected: "X/") } throws: { "\($0)" == message }
        }
        #expect(throws: Never.self) { try DataLayoutError.requireFolder(root.path, expected: "X/") }
        #expect { try DataLayoutError.requireFile(root.path, expected: nil) } throws: { "\($0)" == "\(root.path): is a folder, not a file" }
    }

    @Test("readers name a whole-file problem without a byte offset")
    func wholeFileProblems() throws {
        #expect { try EventFiles.readATIS("/nonexistent/a.bin", width: 34, height: 34) } throws: { "\($0)" == "/nonexistent/a.bin: no such file" }
        let cases: [() throws -> Void] = [
            { _ = try EventFiles.decodeAEDAT2(Data("plain text, no header".utf8), path: "x.aedat") },
            { _ = try JPEG.decode(Data([0, 1, 2, 3, 4]), path: "x.jpg") },
            { _ = try CIFARPython.decode(Data([0x80, 0x02, 0x7D, 0x2E]), path: "x", variant: .cifar10) },
        ]
        for read in cases {
            #expect { try read() } throws: { !"\($0)".contains("byte offset") }
        }
    }
}
