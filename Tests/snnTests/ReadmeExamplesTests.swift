// The README's examples, run as tests so they cannot drift from what `snn` prints.
//
// What is an example. README.md (at the repository root) is read into fenced code blocks. A block
// whose lines include `$ ` lines is an example: each `$ ` line is a command (a line ending in `\`
// continues it on the next line), and the lines after it, up to the next `$ ` line or the block's
// end, are its expected output, stdout and stderr merged. Blocks without `$ ` lines (Swift code,
// `make` summaries, tables) are not examples. A command must be complete: `...` in a command fails.
//
// Markers. An HTML comment on the line right before the opening fence, or within the two lines
// before it, changes how the block runs:
//   <!-- readme-test: skip REASON -->  the block is not run (long trainings, benchmarks, a checkout
//                                      this machine lacks); the reason is required.
//   <!-- readme-test: continue -->     the block runs after the example before it, in the same working
//                                      directory (a walk-through split by prose: convert, then forward).
// A marker without a reason, an unknown marker or one that is not near a fence fails the test.
//
// How a block runs. Every example runs by default, each in a fresh throwaway folder `TMP` holding
// `TMP/shared` (a link to the real `../shared`) and `TMP/repo`, the working directory, with a link to
// every top-level entry of the repository (not hidden ones, not the root-anchored entries of
// .gitignore such as `/runs/`): the README's relative paths (`../shared/data/...`,
// `Tests/SNNTrainingTests/Fixtures/...`) resolve as from the repository root, while what commands
// write (`runs/`, `nm/`, `out.safetensors`) lands in TMP, which is deleted afterwards. Commands run in
// order through `/bin/sh -c`, with the directory of the built `snn` (debug, beside the test bundle)
// first on PATH and stdin empty; their exit status is not checked, only what they print (the README
// shows errors as output). A command gets 60 s (`ReadmeExamplesTests.timeLimit`): one that needs longer
// in a debug build fails and should get a skip marker, which keeps the whole test near a minute.
// Blocks are independent and run in parallel (as many at once as swift-testing runs test cases).
//
// Matching. Expected and actual lines are compared one for one after normalising both sides:
//  - trailing blanks are dropped;
//  - timings are masked: date-times (`2026-11-30_09-54-32`), a number before a rate unit
//    (`81 samples/s`, `46.32 GB/s`, any `<word>/s`), a number of seconds or milliseconds at the end of
//    the line or before `,` `)` `:` `;` (`331 s`, `in 0.3 s:`, `(median step 10.948 s)`), what
//    follows `ETA`;
//  - `snn train`'s step lines after the first (`epoch 2 step 9/16 ...`, printed by a clock every
//    `--log-interval` seconds when stdout is not a terminal) are dropped from the actual output;
//  - a line that is exactly `...` matches any number of actual lines, none included;
//  - an expected line ending in `...` matches an actual line that begins like it (a long error message);
//  - otherwise the text around numbers must be identical and the lines must hold as many numbers;
//    an integer must be equal (counts, shapes, parameters), a decimal within max(1e-3 relative, one
//    unit of its last printed digit) (floating-point sums differ slightly between AVX2 and AVX-512);
//  - on training lines (starting `epoch ` or `best test accuracy`), where a short training amplifies
//    those differences (another host's oneDNN kernels sum in another order), a percentage may move
//    by 3 points and other decimals (losses) by 3 %.
// A mismatch reports the README line of the command, the command, its exit status and a diff
// (`-` expected, `+` actual, normalised) with the fewest differing lines.
import Foundation
import Testing

@Suite("README examples")
struct ReadmeExamplesTests {
    /// The examples and problems of the repository's README.md.
    static let readme: (examples: [ReadmeExample], problems: [String]) = {
        let url = SNNBinary.repositoryRoot.appendingPathComponent("README.md")
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return ReadmeExamples.parse(text)
    }()

    /// Seconds a command may run; a slower one fails, asking for a skip marker.
    static let timeLimit = 60

    /// The examples without a skip marker.
    static let runnable = readme.examples.filter { $0.skipReason == nil }

    @Test("README.md has examples, and its markers and commands are well-formed")
    func wellFormed() {
        #expect(!Self.runnable.isEmpty, "no runnable example found in README.md")
        #expect(Self.readme.problems.isEmpty, "\(Self.readme.problems.joined(separator: "\n"))")
    }

    @Test("a README example prints what the README shows", arguments: runnable)
    func example(_ example: ReadmeExample) throws {
        let sandbox = try ReadmeSandbox(repository: SNNBinary.repositoryRoot)
        defer { sandbox.remove() }
        for command in example.commands {
            let (status, lines) = try sandbox.run(command.text, timeoutSeconds: Self.timeLimit)
            let timedOut = status == 124 ? "; stopped after \(Self.timeLimit) s: too slow, mark the block skip" : ""
            if let diff = ReadmeOutput.diff(expected: command.expected, actual: lines) {
                let body = diff.map { "\($0.mark) \($0.text)" }.joined(separator: "\n")
                Issue.record("""
                    README.md:\(command.line): $ \(command.text)
                    exit status \(status)\(timedOut); expected (-) and actual (+) output, normalised:
                    \(body)
                    """)
            } else if !timedOut.isEmpty {
                Issue.record("README.md:\(command.line): $ \(command.text)\nexit status 124\(timedOut)")
            }
        }
    }
}

/// The harness's own rules, on small made-up inputs.
@Suite("README example harness")
struct ReadmeHarnessTests {
    @Test("blocks, commands, continuation lines and markers are parsed")
    func parsing() {
        let text = """
            Intro.
            <!-- readme-test: skip takes an hour -->
            ```text
            $ snn train
            epoch 1/1
            ```

            ```text
            $ cp a b
            $ snn forward --x 1 \\
                --y 2
            done
            ```
            <!-- readme-test: continue -->
            ```text
            $ snn model
            ```
            ```swift
            let x = 1
            ```
            """
        let (examples, problems) = ReadmeExamples.parse(text)
        #expect(problems.isEmpty, "\(problems)")
        #expect(examples.count == 2)
        #expect(examples[0].skipReason == "takes an hour" && examples[0].line == 3)
        #expect(examples[1].commands.map(\.line) == [9, 10, 16])
        #expect(examples[1].commands[1].text == "snn forward --x 1 \\\n    --y 2")
        #expect(examples[1].commands[1].expected == ["done"])
        #expect(examples[1].commands[0].expected.isEmpty)
    }

    @Test("a skip without a reason, a stray marker and an incomplete command are problems")
    func problems() {
        let text = """
            <!-- readme-test: skip -->
            ```text
            $ snn bench
            ```
            <!-- readme-test: skip slow -->

            text between

            ```text
            $ snn forward ...
            ```
            """
        let (_, problems) = ReadmeExamples.parse(text)
        #expect(problems.count == 3, "\(problems)")
        #expect(problems.contains { $0.contains("README.md:1:") && $0.contains("needs a reason") })
        #expect(problems.contains { $0.contains("README.md:5:") && $0.contains("not within") })
        #expect(problems.contains { $0.contains("README.md:10:") && $0.contains("incomplete") })
    }

    @Test("timings are masked, on both sides")
    func masks() {
        #expect(ReadmeOutput.normalised("run directory: runs/result/TRT(CE)_T8_2026-11-30_09-54-32  ")
            == "run directory: runs/result/TRT(CE)_T8_<date-time>")
        #expect(ReadmeOutput.normalised("lr 1.00e-03  81 samples/s") == "lr 1.00e-03  <rate> samples/s")
        #expect(ReadmeOutput.normalised("final 100.00%, 81.0 samples/s, 331 s")
            == "final 100.00%, <rate> samples/s, <duration> s")
        #expect(ReadmeOutput.normalised("prepared 480 samples (380 train, 100 test) in 0.3 s: nm")
            == "prepared 480 samples (380 train, 100 test) in <duration> s: nm")
        #expect(ReadmeOutput.normalised("1.46 samples/s (median step 10.948 s), 46.32 GB/s")
            == "<rate> samples/s (median step <duration> s), <rate> GB/s")
        #expect(ReadmeOutput.normalised("[=====>   ] ETA 0:42") == "[=====>   ] ETA <eta>")
    }

    @Test("numbers: integers exact, decimals to their printed precision, training lines looser")
    func numbers() {
        let match = ReadmeOutput.lineMatches
        let shown = "out: output [4, 3, 10], loss TRT 2.2883, 8 gradients"
        #expect(match(shown, "out: output [4, 3, 10], loss TRT 2.2884, 8 gradients"))
        #expect(!match(shown, "out: output [4, 3, 10], loss TRT 2.2883, 9 gradients"))
        #expect(!match(shown, "out: output [4, 3, 12], loss TRT 2.2883, 8 gradients"))
        #expect(!match("loss 2.2883", "loss 2.3000"))
        #expect(!match("loss 2.2883", "loss 2.2883 extra"))
        #expect(match("lr 1.00e-03", "lr 1.01e-03") && !match("lr 1.00e-03", "lr 1.02e-03"))
        #expect(match("epoch 1/2  train loss 2.3574 acc 19.40%  test loss 2.1610 acc 24.00%",
                      "epoch 1/2  train loss 2.3900 acc 20.60%  test loss 2.1300 acc 23.00%"))
        #expect(!match("epoch 1/2  train loss 2.3574 acc 19.40%", "epoch 1/2  train loss 2.3574 acc 22.50%"))
        #expect(!match("epoch 1/2  train loss 2.3574 acc 19.40%", "epoch 1/2  train loss 2.4500 acc 19.40%"))
        #expect(!match("epoch 1/2  train loss 2.3574 acc 19.40%", "epoch 2/2  train loss 2.3574 acc 19.40%"))
        #expect(!match("test loss 2.1610 acc 24.00%", "test loss 2.1610 acc 25.00%"))
        #expect(match("Error: bad shape [32, 16]; ...", "Error: bad shape [32, 16]; key 'a' too"))
        #expect(!match("Error: bad shape [32, 16]; ...", "Error: bad shape [32, 8]; key 'a' too"))
    }

    @Test("`...` lines stand for any number of lines; a mismatch gives a minimal diff")
    func diff() {
        #expect(ReadmeOutput.diff(expected: ["a", "...", "z"], actual: ["a", "b", "c", "z"]) == nil)
        #expect(ReadmeOutput.diff(expected: ["a", "...", "z"], actual: ["a", "z"]) == nil)
        #expect(ReadmeOutput.diff(expected: ["a", "..."], actual: ["a"]) == nil)
        let lines = ReadmeOutput.diff(expected: ["a", "b 1", "c"], actual: ["a", "b 2", "c", "d"])
        #expect(lines?.map { "\($0.mark)\($0.text)" } == [" a", "-b 1", "+b 2", " c", "+d"])
    }
}
