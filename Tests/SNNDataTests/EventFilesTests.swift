import Foundation
import SNNData
import Testing

/// The event readers against real recordings in ../shared/data, with expectations computed
/// independently by scripts/event_expectations.py (NumPy), and against corrupt files.
@Suite("event files")
struct EventFilesTests {
    static let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data").path
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    private func expectations(_ kind: String, _ path: String) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", EventFilesTests.root + "/scripts/event_expectations.py", kind, path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 scripts/event_expectations.py failed (pip install numpy)")
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    private func check(_ events: EventStream, against e: [String: Any]) {
        #expect(events.count == e["events"] as? Int)
        #expect(events.timestamp.first.map(Int.init) == e["t_first"] as? Int)
        #expect(events.timestamp.last.map(Int.init) == e["t_last"] as? Int)
        #expect(events.x.max().map(Int.init) == e["x_max"] as? Int && events.y.max().map(Int.init) == e["y_max"] as? Int)
        #expect(events.polarity.map(Int.init).reduce(0, +) == e["on"] as? Int)
        let first = (0..<min(3, events.count)).map { [Int(events.x[$0]), Int(events.y[$0]), Int(events.polarity[$0]), Int(events.timestamp[$0])] }
        #expect(first == e["first"] as? [[Int]])
        #expect(zip(events.timestamp, events.timestamp.dropFirst()).allSatisfy { $0 <= $1 }, "timestamps go back")
    }

    @Test("N-MNIST 40-bit files read as NumPy reads them", arguments: ["1.bs2", "60001.bs2", "380.bs2"])
    func nmnist(_ name: String) throws {
        let path = "\(EventFilesTests.shared)/nmnist/slayerpytorch-NMNISTsmall/\(name)"
        let events = try EventFiles.readATIS(path, width: 34, height: 34)
        check(events, against: try expectations("atis", path))
        #expect(events.count >= 1069 && events.count <= 7152)  // PROVENANCE.md's range
    }

    @Test("DVS128 AEDAT 2.0 recordings read as NumPy reads them",
          arguments: ["alex_walking_again.aedat", "neal_walking.aedat", "cam255_right_clamp_test1.aedat"])
    func aedat2(_ name: String) throws {
        let path = "\(EventFilesTests.shared)/dvs128-aedat2/DVS128DataAnalysis/\(name)"
        let events = try EventFiles.readAEDAT2(path)
        check(events, against: try expectations("aedat2", path))
    }

    @Test("an overflow record (y = 240) adds 2^13 µs to later events and is dropped")
    func atisOverflow() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-overflow-\(getpid()).bin").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // (1, 2, ON, t=5), overflow, (3, 4, OFF, t=7)
        try Data([1, 2, 0x80, 0, 5, 0, 240, 0, 0, 0, 3, 4, 0x00, 0, 7]).write(to: URL(fileURLWithPath: path))
        let e = try EventFiles.readATIS(path, width: 34, height: 34)
        #expect(e.count == 2 && e.timestamp == [5, 7 + 8192] && e.polarity == [1, 0] && e.x == [1, 3])
    }

    @Test("truncated and corrupt files name the file, record and offset")
    func corrupt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("snn-corrupt-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let nmnist = try Data(contentsOf: URL(fileURLWithPath: "\(EventFilesTests.shared)/nmnist/slayerpytorch-NMNISTsmall/1.bs2"))
        let cut = dir.appendingPathComponent("cut.bin").path
        try nmnist.prefix(23).write(to: URL(fileURLWithPath: cut))
        #expect { try EventFiles.readATIS(cut, width: 34, height: 34) } throws: { "\($0)".contains("cut.bin") && "\($0)".contains("record 4, byte offset 20") }
        let wide = dir.appendingPathComponent("wide.bin").path
        try Data([1, 2, 0x80, 0, 5, 200, 2, 0, 0, 9]).write(to: URL(fileURLWithPath: wide))
        #expect { try EventFiles.readATIS(wide, width: 34, height: 34) } throws: { "\($0)".contains("record 1, byte offset 5") }
        let aedat = try Data(contentsOf: URL(fileURLWithPath: "\(EventFilesTests.shared)/dvs128-aedat2/DVS128DataAnalysis/alex_walking_again.aedat"))
        let short = dir.appendingPathComponent("short.aedat").path
        try aedat.prefix(aedat.count - 3).write(to: URL(fileURLWithPath: short))
        #expect { try EventFiles.readAEDAT2(short) } throws: { "\($0)".contains("short.aedat") && "\($0)".contains("truncated") }
        let notAedat = dir.appendingPathComponent("x.aedat").path
        try Data("hello world, not events".utf8).write(to: URL(fileURLWithPath: notAedat))
        #expect { try EventFiles.readAEDAT2(notAedat) } throws: { "\($0)".contains("no AEDAT header") }
        #expect(throws: DataFileError.self) { try EventFiles.readATIS(dir.appendingPathComponent("missing.bin").path, width: 34, height: 34) }
    }

    @Test("event-count integration follows SpikingJelly: d = ⌊n/T⌋, the last frame runs to the end")
    func integration() {
        var e = EventStream(width: 2, height: 1)
        for i in 0..<7 { e.append(x: i % 2, y: 0, on: i % 3 == 0, time: Int64(i)) }
        let frames = FrameIntegration.eventCount(frames: 3).integrate(e).toFloats()  // [3, 2, 1, 2]
        // d = 2: frame 0 = events 0,1; frame 1 = events 2,3; frame 2 = events 4,5,6.
        // event i: x = i%2, ON iff i%3 == 0 → 0:(0,ON) 1:(1,OFF) 2:(0,OFF) 3:(1,ON) 4:(0,OFF) 5:(1,OFF) 6:(0,ON)
        #expect(frames == [0, 1, 1, 0,   1, 0, 0, 1,   1, 1, 1, 0])
    }

    @Test("CIFAR10-DVS integration drops the remainder; per-frame max normalisation keeps empty frames at zero")
    func droppingRemainder() {
        var e = EventStream(width: 2, height: 1)
        for i in 0..<7 { e.append(x: i % 2, y: 0, on: true, time: Int64(i)) }
        var frames = FrameIntegration.eventCountDroppingRemainder(frames: 3).integrate(e).toFloats()
        // d = 2: frames take events 0-1, 2-3, 4-5; event 6 is dropped. ON plane is channel 1.
        #expect(frames == [0, 0, 1, 1,   0, 0, 1, 1,   0, 0, 1, 1])
        var counts: [Float] = [0, 0, 0, 0,   2, 4, 1, 0]
        FrameIntegration.normalizePerFrameMaximum(&counts, count: 2, frameSize: 4)
        #expect(counts == [0, 0, 0, 0,   0.5, 1, 0.25, 0])
        frames = FrameIntegration.eventCountDroppingRemainder(frames: 10).integrate(e).toFloats()
        #expect(frames.allSatisfy { $0 == 0 }, "fewer events than frames: every frame is empty")
    }
}
