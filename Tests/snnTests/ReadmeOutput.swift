import Foundation

/// Compares the output a README shows with what a command printed (rules: ReadmeExamplesTests.swift).
enum ReadmeOutput {
    /// `line` without trailing blanks and with timings masked: date-times, rates (`81 samples/s`,
    /// `2.1 GB/s`), durations in seconds (`331 s` or `12 ms` at the end of the line or before `,` `)` `:` `;`),
    /// and what follows `ETA`.
    static func normalised(_ line: String) -> String {
        var s = String(line.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        s = s.replacing(#/\d{4}-\d{2}-\d{2}[_T ]\d{2}[-:]\d{2}[-:]\d{2}/#, with: "<date-time>")
        s = s.replacing(#/\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?<unit>\s?[A-Za-z]*/s)\b/#) { "<rate>" + $0.output.unit }
        s = s.replacing(#/\b\d+(?:\.\d+)?(?<unit> m?s)(?=$|[,):;])/#) { "<duration>" + $0.output.unit }
        s = s.replacing(#/ETA \S+/#, with: "ETA <eta>")
        return s
    }

    /// A piece of a line: literal text, or a number as printed.
    enum Token: Equatable {
        case text(String)
        case number(String)
    }

    /// `line` split into text and unsigned decimal numbers (`12`, `0.5`, `1.00e-03`); a sign stays in the text.
    static func tokens(_ line: String) -> [Token] {
        var tokens: [Token] = []
        var rest = Substring(line)
        while let match = rest.firstMatch(of: #/\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/#) {
            let before = rest[..<match.range.lowerBound]
            if !before.isEmpty { tokens.append(.text(String(before))) }
            tokens.append(.number(String(match.output)))
            rest = rest[match.range.upperBound...]
        }
        if !rest.isEmpty { tokens.append(.text(String(rest))) }
        return tokens
    }

    /// Whether an actual line matches an expected one (both normalised). Text must be equal; integers
    /// equal; a decimal within max(1e-3 relative, one unit of its last printed digit). On training lines
    /// (`epoch ` or `best test accuracy`) a percentage may move by 3 points and other decimals by 3 %.
    /// An expected line ending in `...` matches an actual line that starts the same way.
    static func lineMatches(expected: String, actual: String) -> Bool {
        let prefixOnly = expected.hasSuffix("...")
        let e = tokens(prefixOnly ? String(expected.dropLast(3)) : expected)
        let a = tokens(actual)
        guard prefixOnly ? a.count >= e.count : a.count == e.count else { return false }
        let training = expected.hasPrefix("epoch ") || expected.hasPrefix("best test accuracy")
        for (i, (x, y)) in zip(e, a).enumerated() {
            switch (x, y) {
            case (.text(let t), .text(let u)):
                guard t == u || (prefixOnly && i == e.count - 1 && u.hasPrefix(t)) else { return false }
            case (.number(let m), .number(let n)):
                let percent = i + 1 < e.count && startsWithPercent(e[i + 1])
                guard numberMatches(expected: m, actual: n, training: training, percent: percent) else { return false }
            default:
                return false
            }
        }
        return true
    }

    private static func startsWithPercent(_ token: Token) -> Bool {
        if case .text(let t) = token { return t.hasPrefix("%") }
        return false
    }

    /// The tolerance rule for one number (see `lineMatches`).
    static func numberMatches(expected: String, actual: String, training: Bool, percent: Bool) -> Bool {
        guard expected.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else { return expected == actual }
        guard let x = Double(expected), let y = Double(actual) else { return false }
        let slack = training ? (percent ? 3 : 0.03 * abs(x)) : 1e-3 * abs(x)
        return abs(x - y) <= max(slack, lastDigit(expected)) * (1 + 1e-9)
    }

    /// One unit of the last printed digit: 0.01 for `2.50`, 1e-5 for `1.00e-03`, 1 for `3e2`.
    static func lastDigit(_ number: String) -> Double {
        let parts = number.lowercased().split(separator: "e", maxSplits: 1)
        let decimals = parts[0].split(separator: ".", maxSplits: 1).dropFirst().first?.count ?? 0
        let exponent = parts.count == 2 ? Int(parts[1]) ?? 0 : 0
        return pow(10, Double(exponent - decimals))
    }

    /// One line of a diff: `" "` both sides, `"-"` expected only, `"+"` actual only.
    struct DiffLine: Equatable {
        let mark: Character
        let text: String
    }

    /// `lines` without the step lines of `snn train` that a clock prints (`epoch 2 step 9/16 ...`
    /// every `--log-interval` seconds when stdout is not a terminal): only the first, printed at the
    /// first step of every run, is always there.
    static func withoutTimedProgress(_ lines: [String]) -> [String] {
        var seenStepLine = false
        return lines.filter { line in
            guard line.wholeMatch(of: #/epoch \d+ step \d+/\d+ .*/#) != nil else { return true }
            defer { seenStepLine = true }
            return !seenStepLine
        }
    }

    /// Nil when `actual` matches `expected` (both normalised here; an expected line that is exactly
    /// `...` stands for any number of actual lines); otherwise the diff with the fewest `-`/`+` lines.
    static func diff(expected: [String], actual: [String]) -> [DiffLine]? {
        let e = expected.map(normalised), a = withoutTimedProgress(actual).map(normalised)
        let (m, n) = (e.count, a.count)
        // cost[i][j]: the fewest unmatched lines aligning e[i...] with a[j...].
        var cost = Array(repeating: Array(repeating: 0, count: n + 1), count: m + 1)
        for i in stride(from: m, through: 0, by: -1) {
            for j in stride(from: n, through: 0, by: -1) {
                if i == m { cost[i][j] = n - j; continue }
                if e[i] == "..." {
                    cost[i][j] = min(cost[i + 1][j], j < n ? cost[i][j + 1] : Int.max)
                    continue
                }
                var best = 1 + cost[i + 1][j]
                if j < n {
                    best = min(best, 1 + cost[i][j + 1])
                    if lineMatches(expected: e[i], actual: a[j]) { best = min(best, cost[i + 1][j + 1]) }
                }
                cost[i][j] = best
            }
        }
        guard cost[0][0] > 0 else { return nil }
        var lines: [DiffLine] = []
        var (i, j) = (0, 0)
        while i < m || j < n {
            if i < m && e[i] == "..." {
                if cost[i][j] == cost[i + 1][j] { lines.append(DiffLine(mark: " ", text: "...")); i += 1 }
                else { lines.append(DiffLine(mark: " ", text: a[j])); j += 1 }
            } else if i < m && j < n && lineMatches(expected: e[i], actual: a[j]) && cost[i][j] == cost[i + 1][j + 1] {
                lines.append(DiffLine(mark: " ", text: a[j])); i += 1; j += 1
            } else if i < m && cost[i][j] == 1 + cost[i + 1][j] {
                lines.append(DiffLine(mark: "-", text: e[i])); i += 1
            } else {
                lines.append(DiffLine(mark: "+", text: a[j])); j += 1
            }
        }
        return lines
    }
}
