import Foundation
import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

/// The memory half of the backend protocol: allocation (and its failure as a thrown error),
/// fill, copies between views, devices and dtypes, uploads and downloads, random numbers.
/// The CPU's implementations are checked against the reference's, and both against the values
/// the generator defines.
@Suite("Devices own their memory: allocate, fill, copy, upload, download, random")
struct DeviceMemoryTests {
    init() { CPUBackend.register() }

    private let backends: [any Backend] = [ReferenceBackend.shared, CPUBackend.shared]

    @Test("an allocation the device cannot hold is a thrown error naming the device and the size")
    func outOfMemory() throws {
        for device in [Device.reference, .cpu] {
            // 2^50 bytes: no host maps that much, whatever its overcommit policy.
            let error = #expect(throws: DeviceError.self) { try Tensor.allocate([1 << 48], dtype: .float32, device: device) }
            guard case let .outOfMemory(d, bytes, _)? = error else {
                Issue.record("expected outOfMemory, got \(String(describing: error))")
                continue
            }
            #expect(d == device && bytes == 1 << 50)
            #expect("\(error!)".contains("1024.0 TiB") && "\(error!)".contains("\(device)"), "\(error!)")
            // A shape whose byte count overflows is refused before any allocator sees it.
            #expect(throws: DeviceError.self) { try Tensor.allocate([1 << 40, 1 << 30], dtype: .float64, device: device) }
        }
        // The process goes on allocating normally afterwards.
        #expect(try Tensor.allocate([1024], device: .cpu).count == 1024)
    }

    @Test("fill sets every element, rounded to the dtype, through strided views too")
    func fill() {
        for backend in backends {
            for dtype in DType.allCases {
                let t = try! backend.allocate([3, 5], dtype: dtype)
                backend.fill(t, with: 2.75)
                let expected = dtype.isFloatingPoint ? 2.75 : 2.0
                #expect(t.toDoubles() == [Double](repeating: expected, count: 15), "\(backend.device) \(dtype)")
            }
            // A column of a row-major matrix: only it changes.
            let m = Tensor.zeros([4, 3], device: backend.device)
            backend.fill(m.sliced(axis: 1, 1..<2), with: -1)
            #expect(m.toDoubles() == (0..<12).map { $0 % 3 == 1 ? -1 : 0 }, "\(backend.device) strided fill")
        }
    }

    @Test("copy between strided views and dtypes matches the reference element for element", arguments: [false, true])
    func copy(large: Bool) {
        // Large copies are split across threads by the CPU backend.
        let (rows, cols) = large ? (517, 611) : (7, 9)
        let source = RandomInputs(seed: 3).normal([rows, cols], dtype: .float32)
        for backend in backends {
            let d = backend.device
            let x = source.to(d)
            // Transposed source into a contiguous destination.
            let t = Tensor.zeros([cols, rows], device: d)
            backend.copy(x.transposed(0, 1), into: t)
            #expect(t.toDoubles() == source.transposed(0, 1).contiguous().toDoubles(), "\(d) transposed")
            // Contiguous source into every other column of a wider destination.
            let wide = Tensor.zeros([rows, 2 * cols], device: d)
            let everyOther = Tensor(storage: wide.storage, shape: [rows, cols], strides: [2 * cols, 2], dtype: .float32, device: d)
            backend.copy(x, into: everyOther)
            let w = wide.toDoubles(), s = source.toDoubles()
            #expect((0..<(rows * cols)).allSatisfy { w[($0 / cols) * 2 * cols + 2 * ($0 % cols)] == s[$0] }, "\(d) strided destination")
            #expect((0..<(rows * cols)).allSatisfy { w[($0 / cols) * 2 * cols + 2 * ($0 % cols) + 1] == 0 }, "\(d) gaps untouched")
            // A broadcast row into a matrix; float32 into float64.
            let row = Tensor.zeros([rows, cols], dtype: .float64, device: d)
            backend.copy(x.sliced(axis: 0, 0..<1).expanded(to: [rows, cols]), into: row)
            #expect(row.toDoubles() == (0..<(rows * cols)).map { s[$0 % cols] }, "\(d) broadcast, float32 to float64")
        }
    }

    @Test("upload and download move the dtype's bytes unchanged")
    func uploadDownload() {
        let values: [Float] = [1.5, -0, .infinity, .leastNormalMagnitude / 4, -7]
        for backend in backends {
            let t = try! backend.allocate([5], dtype: .float32)
            values.withUnsafeBytes { backend.upload($0, into: t) }
            var back = [Float](repeating: 0, count: 5)
            back.withUnsafeMutableBytes { backend.download(t, into: $0) }
            #expect(back.map(\.bitPattern) == values.map(\.bitPattern), "\(backend.device)")
        }
    }

    @Test("random fills give the generator's numbers on every device, at any offset in its stream")
    func random() {
        let n = 70_001  // above the size at which draws are generated concurrently
        for (distribution, reference) in [
            (RandomDistribution.uniform(low: -2, high: 3), { (g: RandomGenerator) in g.uniform(n).map { Float(-2 + 5 * Double($0)) } }),
            (.normal(mean: 1, std: 0.5), { (g: RandomGenerator) in g.normal(n).map { Float(1 + 0.5 * Double($0)) } }),
            (.bernoulli(probability: 0.3), { (g: RandomGenerator) in g.uniform(n).map { Double($0) < 0.3 ? 1 : 0 } }),
        ] {
            let expected = { () -> [Float] in
                let g = RandomGenerator(seed: 11)
                _ = g.uniform(5)  // start mid-stream
                return reference(g)
            }()
            for backend in backends {
                let t = try! backend.allocate([n], dtype: .float32)
                backend.random(distribution, into: t, seed: 11, counter: 8)  // 5 words rounded up to a block
                #expect(t.toFloats() == expected, "\(backend.device) \(distribution)")
            }
        }
        // The tensor factories draw the same numbers on both devices and advance the stream alike.
        let (a, b) = (RandomGenerator(seed: 5), RandomGenerator(seed: 5))
        #expect(Tensor.normal([300], generator: a, device: .cpu).toFloats()
                == Tensor.normal([300], generator: b, device: .reference).toFloats())
        #expect(a.counter == b.counter && a.counter == 600)
    }

    @Test("to(device) is a real copy: writing one side leaves the other as it was")
    func transferCopies() {
        let x = Tensor([1, 2, 3], shape: [3], device: .cpu)
        let y = x.to(.reference)
        #expect(y.storage !== x.storage && y.device == .reference)
        y.assign(Tensor([9, 9, 9], shape: [3], device: .reference))
        #expect(x.toFloats() == [1, 2, 3] && y.toFloats() == [9, 9, 9])
    }

    @Test("an immediate scalar gives the bits a 0-d tensor operand gives, on either side", arguments: BinaryOp.allCases)
    func scalarImmediates(op: BinaryOp) {
        let x = RandomInputs(seed: 9).uniform([1000], low: 0.25, high: 3, dtype: .float32)
        for backend in backends {
            let d = x.to(backend.device), scalar = 0.1  // not a float: both forms round it the same way
            let tensor = Tensor.scalar(scalar, device: backend.device).expanded(to: d.shape)
            #expect(backend.binary(op, d, scalar: scalar, scalarFirst: false).toFloats() == backend.binary(op, d, tensor).toFloats(),
                    "\(backend.device) x \(op) s")
            #expect(backend.binary(op, d, scalar: scalar, scalarFirst: true).toFloats() == backend.binary(op, tensor, d).toFloats(),
                    "\(backend.device) s \(op) x")
        }
    }
}
