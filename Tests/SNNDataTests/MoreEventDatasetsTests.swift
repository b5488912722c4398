import Foundation
import SNNCPU
import SNNData
import SNNTensor
import Testing

/// N-MNIST as distributed (real files), DVS128 Gesture (AEDAT 3.1 + labels CSV) and the
/// reference-compatible CIFAR10-DVS frames.
@Suite("N-MNIST, DVS128 Gesture and reference CIFAR10-DVS frames")
struct MoreEventDatasetsTests {
    init() { CPUBackend.register() }

    static let nmnist = "\(TestFiles.shared)/nmnist/slayerpytorch-NMNISTsmall"

    /// `(id, label)` rows of SLAYER's `train1K.txt` / `test100.txt` whose files are present.
    private func slayerList(_ name: String) throws -> [(Int, Int)] {
        try String(contentsOfFile: "\(Self.nmnist)/\(name)", encoding: .utf8).split(whereSeparator: \.isNewline).compactMap { line in
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            guard f.count == 2, FileManager.default.fileExists(atPath: "\(Self.nmnist)/\(f[0]).bs2") else { return nil }
            return (f[0], f[1])
        }
    }

    @Test("N-MNIST: Train/ and Test/ digit folders of real recordings, counts integrated without resizing")
    func nmnistFolders() throws {
        let root = try TestFiles.temporaryRoot("nmnist")
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        for (split, list) in [("Train", "train1K.txt"), ("Test", "test100.txt")] {
            for d in 0...9 { try fm.createDirectory(at: root.appendingPathComponent("\(split)/\(d)"), withIntermediateDirectories: true) }
            for (id, label) in try slayerList(list) {
                try fm.createSymbolicLink(atPath: root.appendingPathComponent("\(split)/\(label)/\(String(format: "%05d", id)).bin").path,
                                          withDestinationPath: "\(Self.nmnist)/\(id).bs2")
            }
        }
        let train = try EventFolderDataset(kind: .nmnist, root: root.path, train: true, timesteps: 5, augment: false, seed: 0)
        let test = try EventFolderDataset(kind: .nmnist, root: root.path, train: false, timesteps: 5, augment: false, seed: 0)
        #expect(train.count == 380 && test.count == 100 && train.classes == 10)
        #expect(train.frames.shape == [380, 5, 2, 34, 34])
        let expected = try slayerList("test100.txt").sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        #expect(test.labels == expected.map(\.1))
        // Sample 0 of the test split is the lowest id of digit 0: its frames hold every event
        // (5 bytes each; these files have no overflow records) once.
        let first = expected[0].0
        let size = try fm.attributesOfItem(atPath: "\(Self.nmnist)/\(first).bs2")[.size] as! Int
        let sample = test.frames.sliced(axis: 0, 0..<1).toFloats()
        #expect(Int(sample.reduce(0, +)) == size / 5)
        let b = test.batch([0, 1, 2], epoch: 0)
        #expect(b.inputs.shape == [5, 3, 2, 34, 34])
        // Missing folders are named.
        #expect { try EventFolderDataset(kind: .nmnist, root: root.appendingPathComponent("Train").path, train: true, timesteps: 5, augment: false, seed: 0) } throws: {
            "\($0)".contains("Train/Train: no such folder")
        }
    }

    /// An AEDAT 3.1 file: polarity packets of `(x, y, on, t)` events, 4 per packet, with an
    /// invalid event, a special-event packet to skip and the given timestamp overflow.
    static func aedat3(_ events: [(Int, Int, Bool, Int64)]) -> Data {
        var d = Data("#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".utf8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func header(type: Int16, overflow: Int32, count: Int32) {
            put(type); put(Int16(1)); put(Int32(8)); put(Int32(4)); put(overflow); put(count); put(count); put(count)
        }
        header(type: 0, overflow: 0, count: 1)  // a special event: skipped
        put(UInt32(0xFFFF_FFFF)); put(Int32(0))
        for chunk in stride(from: 0, to: events.count, by: 4) {
            let part = events[chunk..<min(chunk + 4, events.count)]
            header(type: 1, overflow: Int32(part.first!.3 >> 31), count: Int32(part.count + 1))
            for e in part {
                put(UInt32(e.0) << 17 | UInt32(e.1) << 2 | (e.2 ? 2 : 0) | 1)
                put(Int32(truncatingIfNeeded: e.3 & 0x7FFF_FFFF))
            }
            put(UInt32(5 << 17 | 5 << 2))  // not marked valid: skipped
            put(Int32(0))
        }
        return d
    }

    @Test("AEDAT 3.1: valid polarity events only, overflow-extended timestamps, truncation named")
    func aedat3Reader() throws {
        let events: [(Int, Int, Bool, Int64)] = [(1, 2, true, 10), (127, 0, false, 20), (0, 127, true, 30), (64, 65, false, 40),
                                                 (3, 4, true, (1 << 31) + 7)]
        let data = Self.aedat3(events)
        let s = try EventFiles.decodeAEDAT3(data, path: "t.aedat")
        #expect(s.count == 5 && s.x.map(Int.init) == [1, 127, 0, 64, 3] && s.y.map(Int.init) == [2, 0, 127, 65, 4])
        #expect(s.polarity == [1, 0, 1, 0, 1] && s.timestamp == [10, 20, 30, 40, (1 << 31) + 7])
        #expect { try EventFiles.decodeAEDAT3(data.prefix(data.count - 3), path: "cut.aedat") } throws: {
            let e = $0 as! DataFileError
            return e.path == "cut.aedat" && e.record == 2 && e.reason.contains("truncated")
        }
        #expect { try EventFiles.decodeAEDAT3(Data("#!AER-DAT3.1\r\n# no end\r\n".utf8), path: "h.aedat") } throws: {
            "\($0)".contains("#!END-HEADER")
        }
        #expect { try EventFiles.decodeAEDAT3(Data("#!AER-DAT2.0\r\n".utf8), path: "v2.aedat") } throws: { "\($0)".contains("AEDAT 3") }
    }

    @Test("DVS128 Gesture labels CSV: the real user01_natural file")
    func gestureLabels() throws {
        let rows = try EventFolderDataset.gestureLabels("\(TestFiles.shared)/dvs-gesture/aestream/user01_natural_labels.csv")
        #expect(rows.count == 12)
        #expect(rows[0].label == 0 && rows[0].window == 53_036_986..<59_508_469)
        #expect(rows[1].label == 1 && rows[1].window == 64_889_467..<73_697_045)
        #expect(Set(rows.map(\.label)) == Set(0...10))
        let root = try TestFiles.temporaryRoot("labels")
        defer { try? FileManager.default.removeItem(at: root) }
        let bad = root.appendingPathComponent("bad_labels.csv")
        try Data("class,startTime_usec,endTime_usec\n1,10,20\n12,30,40\n".utf8).write(to: bad)
        #expect { try EventFolderDataset.gestureLabels(bad.path) } throws: {
            let e = $0 as! DataFileError
            return e.record == 2 && e.offset == 42 && e.reason.contains("class in 1-11")
        }
    }

    @Test("DVS128 Gesture: trial lists, one sample per labelled interval, events outside intervals ignored")
    func gestureDataset() throws {
        let root = try TestFiles.temporaryRoot("gesture")
        defer { try? FileManager.default.removeItem(at: root) }
        // user01: class 3 during [100, 200) at (10, 20), class 1 during [300, 400) at (100, 50); noise between.
        var events: [(Int, Int, Bool, Int64)] = []
        for t in stride(from: 100, to: 200, by: 5) { events.append((10, 20, true, Int64(t))) }
        for t in stride(from: 200, to: 300, by: 5) { events.append((0, 0, false, Int64(t))) }
        for t in stride(from: 300, to: 400, by: 10) { events.append((100, 50, false, Int64(t))) }
        try Self.aedat3(events).write(to: root.appendingPathComponent("user01_led.aedat"))
        try Data("class,startTime_usec,endTime_usec\n3,100,200\n1,300,400\n".utf8).write(to: root.appendingPathComponent("user01_led_labels.csv"))
        try Data("user01_led.aedat\n".utf8).write(to: root.appendingPathComponent("trials_to_train.txt"))
        try Data("user01_led.aedat\r\n\r\n".utf8).write(to: root.appendingPathComponent("trials_to_test.txt"))
        let set = try EventFolderDataset(kind: .dvsGesture, root: root.path, train: true, timesteps: 2, size: 128, augment: false, seed: 0)
        #expect(set.count == 2 && set.labels == [2, 0] && set.classes == 11)
        let f = set.frames.toFloats(), plane = 128 * 128, sample = 2 * 2 * plane
        #expect(Int(f[0..<sample].reduce(0, +)) == 20 && Int(f[sample...].reduce(0, +)) == 10)
        #expect(f[(0 * 2 + 1) * plane + 20 * 128 + 10] == 10, "frame 0, ON channel, row y = 20, column x = 10")
        #expect(f[sample + (1 * 2 + 0) * plane + 50 * 128 + 100] == 5, "sample 1, frame 1, OFF channel")
        let resized = try EventFolderDataset(kind: .dvsGesture, root: root.path, train: false, timesteps: 2, augment: false, seed: 0)
        #expect(resized.frames.shape == [2, 2, 2, 48, 48])
        #expect { try EventFolderDataset(kind: .dvsGesture, root: root.appendingPathComponent("none").path, train: true, timesteps: 2, augment: false, seed: 0) } throws: {
            "\($0)".contains("trials_to_train.txt")
        }
    }

    @Test("DVS128 Gesture: trial lists and label files with CRLF line ends are read line by line")
    func gestureCRLF() throws {
        let root = try TestFiles.temporaryRoot("gesture-crlf")
        defer { try? FileManager.default.removeItem(at: root) }
        let events = (0..<20).map { (10, 20, true, Int64(100 + 5 * $0)) }
        for user in ["user01_led", "user02_led"] {
            try Self.aedat3(events).write(to: root.appendingPathComponent("\(user).aedat"))
            try Data("class,startTime_usec,endTime_usec\r\n3,100,150\r\n1,150,200\r\n".utf8).write(to: root.appendingPathComponent("\(user)_labels.csv"))
        }
        try Data("user01_led.aedat\r\nuser02_led.aedat\r\n".utf8).write(to: root.appendingPathComponent("trials_to_train.txt"))
        let set = try EventFolderDataset(kind: .dvsGesture, root: root.path, train: true, timesteps: 2, size: 128, augment: false, seed: 0)
        #expect(set.count == 4 && set.labels == [2, 0, 2, 0])
    }

    @Test("DVS128 Gesture: a trial list naming a file outside the data directory is refused by row and offset")
    func gesturePathsStayInside() throws {
        let root = try TestFiles.temporaryRoot("gesture-escape")
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("class,startTime_usec,endTime_usec\n3,100,200\n".utf8).write(to: root.appendingPathComponent("user01_led_labels.csv"))
        for (list, row, offset) in [("user01_led.aedat\n../../elsewhere/x.aedat\n", 1, 17), ("/etc/x.aedat\n", 0, 0),
                                    ("a/../../x.aedat\n", 0, 0)] {
            try Data(list.utf8).write(to: root.appendingPathComponent("trials_to_train.txt"))
            #expect { try EventFolderDataset(kind: .dvsGesture, root: root.path, train: true, timesteps: 2, augment: false, seed: 0) } throws: {
                guard let e = $0 as? DataFileError else { return false }
                return e.record == row && e.offset == offset && e.reason.contains("not a path inside the data directory")
            }
        }
    }

    @Test("the frame cache follows its recording: a replaced or truncated file is integrated again")
    func cacheFollowsSource() throws {
        let root = try TestFiles.temporaryRoot("gesture-cache")
        defer { try? FileManager.default.removeItem(at: root) }
        let recording = root.appendingPathComponent("user01_led.aedat")
        let events = (0..<20).map { (10, 20, true, Int64(100 + 5 * $0)) }
        try Self.aedat3(events).write(to: recording)
        try Data("class,startTime_usec,endTime_usec\n3,100,200\n".utf8).write(to: root.appendingPathComponent("user01_led_labels.csv"))
        try Data("user01_led.aedat\n".utf8).write(to: root.appendingPathComponent("trials_to_train.txt"))
        let load = { try EventFolderDataset(kind: .dvsGesture, root: root.path, train: true, timesteps: 2, size: 128, augment: false, seed: 0) }
        #expect(Int(try load().frames.toFloats().reduce(0, +)) == 20)
        #expect(Int(try load().frames.toFloats().reduce(0, +)) == 20, "read back from the cache")
        // Replace the recording with one of 8 events (a different size): the cache must not answer.
        try Self.aedat3(Array(events.prefix(8))).write(to: recording)
        #expect(Int(try load().frames.toFloats().reduce(0, +)) == 8)
        // Same size, new contents, a later modification time: integrated again too.
        try Self.aedat3(events.map { ($0.0 + 1, $0.1, $0.2, $0.3) }.prefix(8).map { $0 }).write(to: recording)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: recording.path)
        let f = try load().frames.toFloats()
        #expect(f[(0 * 2 + 1) * 128 * 128 + 20 * 128 + 11] > 0 && f[(0 * 2 + 1) * 128 * 128 + 20 * 128 + 10] == 0)
    }

    @Test("--dvs-frames reference: occupancy of both polarities in channel 1, the MATLAB reader's mirror, PIL's 8-bit resize")
    func referenceFrames() throws {
        let root = try TestFiles.temporaryRoot("dvsref")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("airplane"), withIntermediateDirectories: true)
        // 20 events: 10 at raw (x 2, y 5) ON-bit clear, 10 at raw (x 40, y 90) ON-bit set.
        var d = Data("#!AER-DAT2.0\r\n".utf8)
        for i in 0..<20 {
            let (x, y, p) = i < 10 ? (2, 5, 0) : (40, 90, 1)
            withUnsafeBytes(of: UInt32(p | x << 1 | y << 8).bigEndian) { d.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(i).bigEndian) { d.append(contentsOf: $0) }
        }
        try d.write(to: root.appendingPathComponent("airplane/cifar10_airplane_0.aedat"))
        let set = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: 2, size: 128, augment: false,
                                         seed: 0, dvsFrames: .reference)
        let f = set.frames.toFloats(), plane = 128 * 128
        #expect(f[0..<plane].allSatisfy { $0 == 0 } && f[(2 * plane)..<(3 * plane)].allSatisfy { $0 == 0 }, "channel 0 is empty")
        #expect(f[plane..<(2 * plane)].reduce(0, +) == 1 && f[plane + (127 - 2) * 128 + 5] == 1, "frame 0: one pixel, row 127 - x, column y")
        #expect(f[(3 * plane)...].reduce(0, +) == 1 && f[3 * plane + (127 - 40) * 128 + 90] == 1, "frame 1")
        let standard = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: 2, size: 128, augment: false, seed: 0)
        // SpikingJelly's orientation: row 127 - x_raw, column 127 - y_raw; bit 0 clear is ON (channel 1).
        #expect(standard.frames.toFloats()[plane + (127 - 2) * 128 + (127 - 5)] == 1 && standard.frames.toFloats()[plane + (127 - 2) * 128 + 5] == 0,
                "the standard frames keep SpikingJelly's orientation")
        #expect(standard.frames.toFloats()[2 * plane + (127 - 40) * 128 + (127 - 90)] == 1, "bit 0 set is OFF: channel 0 of frame 1")
        let small = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: 2, augment: false, seed: 0, dvsFrames: .reference)
        let s = small.frames.toFloats()
        #expect(s.allSatisfy { $0 >= 0 && $0 <= 1 } && s.contains { $0 > 0 && $0 < 1 }, "resized 8-bit values in [0, 1]")
        #expect(EventFolderDataset.cacheFolder(kind: .cifar10DVS, timesteps: 2, size: 48, dvsFrames: .reference)
                != EventFolderDataset.cacheFolder(kind: .cifar10DVS, timesteps: 2, size: 48))
    }

    @Test("--dvs-frames reference equals the reference's pipeline (NumPy + PIL) on a real DVS128 recording")
    func referenceFramesMatchFixture() throws {
        struct Fixture: Decodable { let source: String, events: Int, T: Int, levels: [Int] }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/dvs_reference_frames.json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let root = try TestFiles.temporaryRoot("dvsref-real")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("airplane"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(TestFiles.shared)/\(fixture.source)",
                                         toPath: root.appendingPathComponent("airplane/cifar10_airplane_0.aedat").path)
        let set = try EventFolderDataset(kind: .cifar10DVS, root: root.path, train: true, timesteps: fixture.T, augment: false,
                                         seed: 0, dvsFrames: .reference)
        let levels = set.frames.toFloats().map { Int(($0 * 255).rounded()) }
        #expect(levels.count == fixture.levels.count)
        let diffs = zip(levels, fixture.levels).map { abs($0 - $1) }
        #expect(diffs.max() == 0, "\(diffs.filter { $0 > 0 }.count) of \(diffs.count) values differ, by up to \(diffs.max() ?? 0)")
        #expect(fixture.levels.contains { $0 > 0 && $0 < 255 }, "the fixture exercises the resize")
    }
}
