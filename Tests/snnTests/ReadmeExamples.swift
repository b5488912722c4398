import Foundation
import Testing

/// One `$ ` command of a README example and the output the README shows after it.
struct ReadmeCommand: Sendable {
    /// The README line (1-based) the command starts on.
    let line: Int
    /// The command as `/bin/sh` gets it; continuation lines (after a trailing `\`) stay as written.
    let text: String
    /// The lines after the command up to the next `$ ` line or the block's end.
    let expected: [String]
}

/// A fenced README block with `$ ` commands, or several when later blocks carry `readme-test: continue`.
struct ReadmeExample: Sendable, CustomTestStringConvertible {
    /// The README line of the block's opening fence.
    let line: Int
    /// The commands in the order they run, in one working directory.
    var commands: [ReadmeCommand]
    /// Why the block is not run (its `readme-test: skip REASON` marker), or nil when it runs.
    let skipReason: String?

    var testDescription: String {
        "README.md:\(line): \(commands.first?.text.split(separator: "\n").first ?? "")"
    }
}

/// Reads README.md into its example blocks (see ReadmeExamplesTests.swift for the rules).
enum ReadmeExamples {
    /// The marker prefix, inside an HTML comment on one of the two lines before a fence.
    static let markerPrefix = "<!-- readme-test:"

    /// The examples of `text`, and a line for every malformed marker or block (these fail the test).
    static func parse(_ text: String) -> (examples: [ReadmeExample], problems: [String]) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var examples: [ReadmeExample] = []
        var problems: [String] = []
        var markers: [(line: Int, directive: String)] = []  // not yet attached to a fence
        var index = 0
        while index < lines.count {
            let line = lines[index]
            if line.hasPrefix(markerPrefix) {
                markers.append((index + 1, directive(of: line)))
                index += 1
                continue
            }
            guard line.hasPrefix("```") else {
                problems += dangling(&markers, before: index + 1)
                index += 1
                continue
            }
            let open = index + 1
            var close = index + 1
            while close < lines.count && lines[close].trimmingCharacters(in: .whitespaces) != "```" { close += 1 }
            let attached = markers.filter { open - $0.line <= 2 }
            problems += dangling(&markers, before: open)
            markers.removeAll()
            let body = Array(lines[(index + 1)..<close])
            attach(block: body, fenceLine: open, markers: attached, to: &examples, problems: &problems)
            index = close + 1
        }
        problems += dangling(&markers, before: lines.count + 10)
        return (examples, problems)
    }

    /// The text after `readme-test:` up to `-->`, trimmed.
    private static func directive(of line: String) -> String {
        var rest = line.dropFirst(markerPrefix.count)
        if let end = rest.range(of: "-->") { rest = rest[..<end.lowerBound] }
        return rest.trimmingCharacters(in: .whitespaces)
    }

    /// Problems for the markers more than two lines above `line` (they belong to no fence); removes them.
    private static func dangling(_ markers: inout [(line: Int, directive: String)], before line: Int) -> [String] {
        let stale = markers.filter { line - $0.line > 2 }
        markers.removeAll { line - $0.line > 2 }
        return stale.map { "README.md:\($0.line): marker is not within the 2 lines before a code fence" }
    }

    /// Turns one block into an example (or extends the previous one) according to its markers.
    private static func attach(block: [String], fenceLine: Int, markers: [(line: Int, directive: String)],
                               to examples: inout [ReadmeExample], problems: inout [String]) {
        var skipReason: String?
        var continues = false
        for marker in markers {
            let words = marker.directive.split(separator: " ", maxSplits: 1).map(String.init)
            switch words.first {
            case "skip" where words.count == 2: skipReason = words[1]
            case "skip": problems.append("README.md:\(marker.line): `readme-test: skip` needs a reason")
            case "continue" where words.count == 1: continues = true
            default:
                problems.append("README.md:\(marker.line): unknown marker `\(marker.directive)` (skip REASON, continue)")
            }
        }
        let (commands, blockProblems) = parseCommands(block, firstLine: fenceLine + 1)
        guard !commands.isEmpty else {
            if !markers.isEmpty { problems.append("README.md:\(fenceLine): marker on a block without `$ ` commands") }
            return
        }
        if skipReason == nil { problems += blockProblems }
        if continues {
            guard skipReason == nil, let previous = examples.indices.last else {
                problems.append("README.md:\(fenceLine): `continue` needs an earlier example and cannot be skipped")
                return
            }
            examples[previous].commands += commands
        } else {
            examples.append(ReadmeExample(line: fenceLine, commands: commands, skipReason: skipReason))
        }
    }

    /// The `$ ` commands of a block's lines with their expected output; problems for what cannot run.
    static func parseCommands(_ block: [String], firstLine: Int) -> (commands: [ReadmeCommand], problems: [String]) {
        var commands: [ReadmeCommand] = []
        var problems: [String] = []
        var index = 0
        while index < block.count && !block[index].hasPrefix("$ ") { index += 1 }
        guard index < block.count else { return ([], []) }
        if index > 0 { problems.append("README.md:\(firstLine): output before the block's first `$ ` command") }
        while index < block.count {
            let start = index
            var text = String(block[index].dropFirst(2))
            while block[index].hasSuffix("\\") && index + 1 < block.count {
                index += 1
                text += "\n" + block[index]
            }
            index += 1
            var expected: [String] = []
            while index < block.count && !block[index].hasPrefix("$ ") {
                expected.append(block[index])
                index += 1
            }
            if text.contains("...") {
                problems.append("README.md:\(firstLine + start): incomplete command (`...`); write it out so it runs")
            }
            commands.append(ReadmeCommand(line: firstLine + start, text: text, expected: expected))
        }
        return (commands, problems)
    }
}

/// A throwaway folder laid out like the repository's parent: `repo/` (the working directory) holds a
/// symbolic link to each top-level entry of the repository, and `shared` links to the real `../shared`,
/// so the README's relative paths resolve as they do from the repository root while everything a
/// command writes (`runs/`, `nm/`, `out.safetensors`) stays in the throwaway folder.
struct ReadmeSandbox {
    /// The throwaway folder.
    let root: URL
    /// Where the commands run: `root/repo`.
    var workingDirectory: URL { root.appendingPathComponent("repo") }

    /// Lays out a fresh folder for `repository`; hidden entries and the root-anchored entries of its
    /// `.gitignore` (`/runs/`, `/out/`: what commands write) are not linked.
    init(repository: URL) throws {
        let files = FileManager.default
        root = files.temporaryDirectory.appendingPathComponent("snn-readme-\(getpid())-\(UUID().uuidString.prefix(8))")
        try files.createDirectory(at: root.appendingPathComponent("repo"), withIntermediateDirectories: true)
        let shared = repository.deletingLastPathComponent().appendingPathComponent("shared")
        try files.createSymbolicLink(at: root.appendingPathComponent("shared"), withDestinationURL: shared)
        let ignored = Self.rootIgnores(repository)
        for entry in try files.contentsOfDirectory(atPath: repository.path).sorted()
        where !entry.hasPrefix(".") && !ignored.contains(entry) {
            try files.createSymbolicLink(at: workingDirectory.appendingPathComponent(entry),
                                         withDestinationURL: repository.appendingPathComponent(entry))
        }
    }

    /// The names `.gitignore` anchors at the repository root (`/runs/` gives `runs`).
    private static func rootIgnores(_ repository: URL) -> Set<String> {
        let text = (try? String(contentsOf: repository.appendingPathComponent(".gitignore"), encoding: .utf8)) ?? ""
        return Set(text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("/") else { return nil }
            let name = line.dropFirst().trimmingCharacters(in: CharacterSet(charactersIn: "/ "))
            return name.isEmpty || name.contains("/") ? nil : name
        })
    }

    /// Deletes the folder (the links only, never what they point to).
    func remove() { try? FileManager.default.removeItem(at: root) }

    /// Runs `command` with `/bin/sh -c` in the working directory, the built `snn` first on PATH, stdin
    /// empty, under coreutils' `timeout` (which stops the whole process group); returns the exit status
    /// (124 on a timeout) and stdout and stderr merged, as lines.
    func run(_ command: String, timeoutSeconds: Int) throws -> (status: Int32, lines: [String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["timeout", "-k", "5", String(timeoutSeconds), "/bin/sh", "-c", command]
        process.currentDirectoryURL = workingDirectory
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = SNNBinary.directory.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        if lines.last == "" { lines.removeLast() }
        return (process.terminationStatus, lines)
    }
}
