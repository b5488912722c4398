import Foundation

/// The lines of a small text file (label lists, trial lists, label CSVs) with their exact byte
/// offsets, for errors that point at a row.
///
/// Lines are split at LF bytes, and a CR before the LF is dropped: Swift's `String` treats
/// "\r\n" as one `Character`, so splitting a CRLF file's `String` at "\n" finds no lines at all.
enum TextLines {
    /// `(row, byte offset, text)` of each line of `path`, empty lines included.
    ///
    /// - Throws: ``DataFileError`` for an unreadable file or a line that is not UTF-8.
    static func read(_ path: String, what: String) throws -> [(row: Int, offset: Int, text: String)] {
        let bytes = [UInt8](try EventFiles.contents(path))
        var lines: [(Int, Int, String)] = []
        var start = 0
        for (row, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            defer { start += line.count + 1 }
            let body = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            guard let text = String(bytes: body, encoding: .utf8) else {
                throw DataFileError(path: path, record: row, offset: start, reason: "\(what) is not UTF-8 text")
            }
            lines.append((row, start, text))
        }
        return lines
    }
}
