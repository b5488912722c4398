import Foundation
import SNNTensor
import Testing

/// safetensors files round-trip with Python's reference implementation (`safetensors.numpy`).
/// `make test` installs it; run `pip install numpy safetensors` to run these tests by hand.
@Suite("safetensors")
struct SafeTensorsInteropTests {
    /// Runs scripts/safetensors_interop.py and returns its standard output.
    private func python(_ arguments: [String]) throws -> Data {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/safetensors_interop.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "python3 \(script) failed: \(errors) (pip install numpy safetensors)")
        return data
    }

    private func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("snn-\(getpid())-\(name)").path
    }

    @Test("a file SwiftSNN writes loads in safetensors.numpy with the same values")
    func weWritePythonReads() throws {
        let path = temporaryPath("ours.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tensors: [String: Tensor] = [
            "layers.0.weight": Tensor([1.5, -2, 0.25, 3e-8, 7, -0.5], shape: [2, 3], device: .reference),
            "f64": Tensor(doubles: [1.0 / 3, 2], shape: [2], dtype: .float64),
            "labels": Tensor(doubles: [4, 0, 2], shape: [3], dtype: .int64),
            "i32": Tensor(doubles: [-5, 6], shape: [2, 1], dtype: .int32),
            "scalar": Tensor.scalar(9.5, device: .reference),
            // A strided view: the writer must store it in logical order.
            "transposed": Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], device: .reference).transposed(),
        ]
        try SafeTensors.save(tensors, to: path, metadata: ["format": "pt"])
        let decoded = try JSONSerialization.jsonObject(with: try python(["read", path])) as? [String: [String: Any]] ?? [:]
        #expect(Set(decoded.keys) == Set(tensors.keys))
        for (name, t) in tensors {
            let entry = try #require(decoded[name], "missing \(name)")
            #expect(entry["shape"] as? [Int] == t.shape, "\(name) shape")
            #expect(entry["values"] as? [Double] == t.toDoubles(), "\(name) values")
        }
        #expect((decoded["labels"]?["dtype"] as? String) == "int64")
        #expect((decoded["f64"]?["dtype"] as? String) == "float64")
    }

    @Test("a file safetensors.numpy writes loads here with the same values")
    func pythonWritesWeRead() throws {
        let path = temporaryPath("numpy.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try python(["write", path])
        let tensors = try SafeTensors.load(path)
        let weight = try #require(tensors["weight"])
        #expect(weight.shape == [2, 3, 4] && weight.dtype == .float32)
        #expect(weight.toDoubles() == (0..<24).map { Double($0) / 8 - 1 })
        #expect(tensors["bias"]?.toFloats() == [0.5, -0.25, 1e-7])
        #expect(tensors["double"]?.toDoubles() == [1.0 / 3, -2.5])
        #expect(tensors["labels"]?.dtype == .int64 && tensors["labels"]?.toDoubles() == [3, 0, 9, 1])
        #expect(tensors["counts"]?.toDoubles() == [1, 2, 250])
        #expect(tensors["half"]?.dtype == .float16 && tensors["half"]?.toDoubles() == [0.5, -2, 65504])
        #expect(tensors["scalar"]?.shape == [] && tensors["scalar"]?.item() == 7.25)
    }

    @Test("truncated and corrupt files are refused with the path and the reason")
    func corruptFiles() throws {
        let good = try SafeTensors.encode(["w": Tensor([1, 2, 3, 4], shape: [4], device: .reference)])
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "too short"),
            ("header length past the end", Data([255, 255, 0, 0, 0, 0, 0, 0]) + Data("{}".utf8), "exceeds the file size"),
            ("header not JSON", Data([4, 0, 0, 0, 0, 0, 0, 0]) + Data("nope".utf8), "not a JSON object"),
            ("data cut short", good.prefix(good.count - 3), "outside"),
        ]
        for (label, data, expected) in cases {
            #expect(throws: SafeTensorsError.self, "\(label)") { try SafeTensors.decode(data, path: "case.safetensors") }
            do {
                _ = try SafeTensors.decode(data, path: "case.safetensors")
            } catch {
                #expect("\(error)".contains("case.safetensors") && "\(error)".contains(expected), "\(label): \(error)")
            }
        }
        #expect(throws: SafeTensorsError.self) { try SafeTensors.load("/nonexistent/weights.safetensors") }
    }

    @Test("saving replaces the file atomically and leaves no temporary files")
    func atomicSave() throws {
        let dir = temporaryPath("atomic")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/w.safetensors"
        try SafeTensors.save(["a": Tensor([1], shape: [1], device: .reference)], to: path)
        try SafeTensors.save(["a": Tensor([2], shape: [1], device: .reference)], to: path)
        #expect(try SafeTensors.load(path)["a"]?.item() == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["w.safetensors"])
    }
}
