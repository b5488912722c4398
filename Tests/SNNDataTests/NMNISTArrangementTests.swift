import Foundation
@testable import SNNData
import Testing

/// SLAYER's N-MNIST sample arranged as N-MNIST is distributed: label lists, counts, refusals.
@Suite("N-MNIST arrangement")
struct NMNISTArrangementTests {
    static let slayer = "\(TestFiles.shared)/nmnist/slayerpytorch-NMNISTsmall"

    @Test("the real label lists (CRLF, a # header) give 380 train and 100 test samples; the rest are counted as missing")
    func realLists() throws {
        let plan = try NMNISTArrangement(source: Self.slayer, output: "/out")
        #expect(plan.lists == ["train1K.txt", "test100.txt"] && plan.listed == [1000, 100] && plan.missing == [620, 0])
        #expect(plan.samples.filter { $0.split == "Train" }.count == 380 && plan.samples.filter { $0.split == "Test" }.count == 100)
        let first = try #require(plan.samples.first)
        #expect(first.id == 1 && first.label == 5 && first.destination == "/out/Train/5/1.bin" && first.source.hasSuffix("/1.bs2"))
    }

    @Test("a malformed or repeated row is named by row and byte offset; a missing list is named")
    func badLists() throws {
        let root = try TestFiles.temporaryRoot("arrange-lists")
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("#sample\t#class\r\n1\t5\r\n".utf8).write(to: root.appendingPathComponent("test100.txt"))
        #expect { try NMNISTArrangement(source: root.path, output: "/out") } throws: {
            "\($0)".hasPrefix("\(root.path): holds no train*.txt label list; expected SLAYER's N-MNIST sample")
        }
        try Data("#sample\t#class\r\n2\t0\r\n3\t12\r\n".utf8).write(to: root.appendingPathComponent("train1K.txt"))
        #expect { try NMNISTArrangement(source: root.path, output: "/out") } throws: {
            "\($0)" == "\(root.path)/train1K.txt: expected 'id<TAB>label' with a label 0-9, got '3\t12' (record 2, byte offset 21)"
        }
        try Data("#sample\t#class\r\n1\t5\r\n".utf8).write(to: root.appendingPathComponent("train1K.txt"))
        #expect { try NMNISTArrangement(source: root.path, output: "/out") } throws: {
            "\($0)" == "\(root.path)/test100.txt: id 1 is listed again (first in train1K.txt) (record 1, byte offset 16)"
        }
    }

    @Test("nothing is written into an output holding something else; an interrupted run is completed")
    func output() throws {
        let root = try TestFiles.temporaryRoot("arrange-output")
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("nm").path
        try FileManager.default.createDirectory(atPath: "\(out)/Train/5", withIntermediateDirectories: true)
        try Data("not a sample".utf8).write(to: URL(fileURLWithPath: "\(out)/Train/5/1.bin"))
        let plan = try NMNISTArrangement(source: Self.slayer, output: out)
        #expect { try plan.apply(.link) } throws: { "\($0)".hasPrefix("\(out)/Train/5/1.bin: is not a symbolic link to \(plan.source)/1.bs2; expected ") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(out)/Train") == ["5"], "refused before writing")
        try FileManager.default.removeItem(atPath: "\(out)/Train/5/1.bin")
        // A temporary link left by an interrupted run is hidden and not part of the layout.
        try FileManager.default.createSymbolicLink(atPath: "\(out)/Train/5/.1.bin.tmp-1-2", withDestinationPath: "/nowhere")
        #expect(try plan.apply(.link) == ["Train": 380, "Test": 100])
        #expect(try plan.apply(.link).isEmpty, "complete: nothing to do")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(out)/Test/0/60004.bin") == "\(plan.source)/60004.bs2")
    }
}
