import Foundation

/// Helpers every subcommand shares: one-object JSON output and median timings.
enum Output {
    /// Prints `object` as one line of JSON with sorted keys.
    static func printJSON(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }

    /// The median of `values` (the mean of the middle two for an even count).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// The median wall time of `body` in seconds over `repeats` runs after `warmup` untimed runs.
    static func medianSeconds(repeats: Int, warmup: Int = 0, _ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<warmup { try body() }
        var samples: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return samples.sorted()[samples.count / 2]
    }
}

/// A flag value refused by a command's own rule (thrown from `validate()`): printed as one line,
/// `Error: --lr must be positive, got -1.0`, without the usage block the argument parser adds
/// to its own parse errors, and exit status 1.
struct FlagError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// A progress line redrawn in place while stdout is a terminal (silent otherwise): items done of
/// all, the rate since it was made, and the ETA.
struct TerminalProgress {
    let enabled: Bool
    let start = Date()

    init(enabled: Bool = isatty(STDOUT_FILENO) != 0) { self.enabled = enabled }

    /// `label done/total unit, rate/s, ETA s`, e.g. `train 120/480 samples, 95.2/s, ETA 4 s`.
    func show(_ label: String, _ done: Int, _ total: Int, unit: String) {
        guard enabled else { return }
        let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-3)
        print(String(format: "\r%@ %d/%d %@, %.2f/s, ETA %.0f s ", label, done, total, unit, rate, Double(total - done) / max(rate, 1e-9)),
              terminator: "")
        fflush(stdout)
    }

    /// Erases the line, so what follows starts on a clean one.
    func clear() {
        if enabled { print("\r\u{1B}[K", terminator: "") }
    }
}
