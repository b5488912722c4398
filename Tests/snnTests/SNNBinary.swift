import Foundation
import SNNTestSupport

/// The `snn` executable built beside the test bundle, and ../shared/data.
enum SNNBinary {
    /// Runs `snn` with `arguments`; returns its exit status and its stdout and stderr together.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try Subprocess.run(executable, arguments, environment: environment)
    }

    /// The folder holding the built `snn`: the test bundle's folder or the nearest one above it.
    static let directory: URL = {
        var dir = Bundle.main.bundleURL
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("snn").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    /// The built `snn` executable.
    static var executable: URL { directory.appendingPathComponent("snn") }

    /// The repository's root folder (where README.md is).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// `../shared/data` beside the repository.
    static let sharedData = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data").path
}
