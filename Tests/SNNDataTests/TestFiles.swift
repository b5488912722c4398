import Foundation

/// Where the tests find ../shared/data, and fresh temporary folders.
enum TestFiles {
    /// `../shared/data` beside the repository.
    static let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data").path

    /// A new empty folder under the temporary directory; the caller removes it.
    static func temporaryRoot(_ name: String) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("snn-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root
    }
}
