import Foundation
import SNNTensor
import Testing

@Suite("file-system helpers")
struct FileSystemTests {
    @Test("parent and last component of paths as written, one-character names included (Foundation traps on `r`)", arguments: [
        ("r", ".", "r"), ("r/result", "r", "result"), ("a/b/c", "a/b", "c"), ("/c", "/", "c"), ("/", "/", "/"),
        ("runs/result/", "runs", "result"), ("a//b", "a", "b"), ("./x", ".", "x"), ("..", ".", ".."),
    ])
    func paths(_ c: (String, String, String)) {
        #expect(FileSystem.parent(c.0) == c.1)
        #expect(FileSystem.lastComponent(c.0) == c.2)
    }

    @Test("checkCreatable walks up to the nearest folder without creating anything; a file in the way is named")
    func creatable() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("snn-fs-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileSystem.checkCreatable("\(root)/a/b/c")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/a"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(root)/file"))
        #expect(throws: FileSystemError.self) { try FileSystem.checkCreatable("\(root)/file/x") }
        try FileSystem.makeDirectory("\(root)/a/b")
        #expect(FileManager.default.fileExists(atPath: "\(root)/a/b"))
    }
}
