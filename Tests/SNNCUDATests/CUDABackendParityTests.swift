import Foundation
@testable import SNNCUDA
#if canImport(Glibc)
import Glibc
#endif
import SNNTensor
import SNNTestSupport
import SNNTraining
import Testing

extension EmulatedGPU {
    /// The CUDA backend, called through the public ops like any device, gives the reference
    /// backend's outputs and input gradients: on the emulated GPU (`EmulatedCUDADriver`), whose
    /// kernels are the real CUDA sources run through the launch-grid emulation and whose host side
    /// (memory, copies, launches, argument packing) is the backend's own.
    ///
    /// Shapes span several blocks with a partial last one where the kernels are per element (256
    /// threads a block) and are kept small elsewhere: every emulated thread is a host thread.
    /// Tolerances are the CPU parity suite's.
    @Suite("CUDA backend agrees with the reference backend, op by op (emulated GPU)", .serialized)
    struct CUDABackendParityTests {
        private static let gpu = Device.cuda(0)
        private static let elementwise = Comparison.elementwise(.float32Elementwise)
        private static let accumulated = Comparison.relativeToMaxMagnitude(Tolerance.float32Accumulated)

        init() throws {
            _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
            _ = try EmulatedCUDADriver.backend.get()
        }

        private static func normal(_ shape: [Int], _ seed: UInt64, mean: Double = 0, std: Double = 1) -> Tensor {
            RandomInputs(seed: seed).normal(shape, mean: mean, std: std, dtype: .float32)
        }

        private func check(
            _ inputs: [Tensor], wrt: [Int]? = nil, output: Comparison = CUDABackendParityTests.elementwise,
            gradients: Comparison? = nil, _ comment: String = "",
            sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
        ) {
            expectDevicesAgree(inputs, on: Self.gpu, baseline: .reference, wrt: wrt, output: output, gradients: gradients, comment,
                               sourceLocation: sourceLocation, f)
        }

        // MARK: - Memory

        @Test("memory: fill, strided copies both ways and on the device, casts, upload, download, random; nothing leaks")
        func memory() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let before = backend.memory.live
            do {
                let x = Self.normal([5, 7, 3], 1)
                let onGPU = x.to(Self.gpu)
                #expect(onGPU.device == Self.gpu && !onGPU.device.isHostMemory)
                #expect(onGPU.toFloats() == x.toFloats(), "upload and download round trip")
                // Strided on the device: a permuted view made contiguous, and copied into a strided view.
                assertClose(onGPU.permuted([2, 0, 1]).contiguous(), x.permuted([2, 0, 1]).contiguous(), .exact, "permuted copy")
                let target = Tensor.zeros([7, 5], device: Self.gpu)
                target.transposed().assign(onGPU.selected(axis: 2, 1))
                assertClose(target, x.selected(axis: 2, 1).transposed().contiguous(), .exact, "copy into a transposed view")
                // Host -> strided device view, and strided device view -> host.
                let host = Tensor.zeros([7, 5], device: .reference)
                host.transposed().assign(onGPU.selected(axis: 2, 2))
                assertClose(host, x.selected(axis: 2, 2).transposed().contiguous(), .exact, "device view to host view")
                // Fill, contiguous and strided, for several dtypes.
                for dtype in [DType.float32, .int64, .uint8, .float64] {
                    let t = Tensor.zeros([4, 6], dtype: dtype, device: Self.gpu)
                    t.sliced(axis: 1, 1..<4).assign(Tensor.full([4, 3], 3, dtype: dtype, device: .reference))
                    #expect(t.toDoubles() == (0..<24).map { (1..<4).contains($0 % 6) ? 3 : 0 }, "\(dtype)")
                    let f = Tensor.full([3, 5], 2, dtype: dtype, device: Self.gpu)
                    #expect(f.toDoubles() == [Double](repeating: 2, count: 15), "\(dtype) fill")
                }
                // Casts: the spike codes' float32 <-> uint8 on the device, others through the host.
                let spikes = Tensor([0, 1, 1, 0, 1, 0], shape: [2, 3], device: Self.gpu)
                let codes = spikes.backend.cast(spikes, to: .uint8)
                #expect(codes.dtype == .uint8 && codes.toDoubles() == [0, 1, 1, 0, 1, 0])
                #expect(codes.backend.cast(codes, to: .float32).toDoubles() == [0, 1, 1, 0, 1, 0])
                #expect(onGPU.backend.cast(onGPU, to: .float64).toDoubles() == x.toDoubles(), "cast through the host")
                // Random: the generator's numbers, as on every device, drawn by the GPU (one
                // launch each) for float32, bfloat16 and half; a strided view through the host.
                let launches = unsafeBitCast(dlsym(backend.gpu.driver.handle, "snn_emulated_launches"),
                                             to: (@convention(c) () -> Int32).self)
                for distribution in [RandomDistribution.uniform(low: -1, high: 2), .normal(mean: 1, std: 2), .bernoulli(probability: 0.3)] {
                    for dtype in [DType.float32, .bfloat16, .float16] {
                        for counter: UInt64 in [11, 4_000_012] {
                            let (a, b) = (Tensor.empty([1283], dtype: dtype, device: Self.gpu), Tensor.empty([1283], dtype: dtype, device: .reference))
                            let before = launches()
                            a.backend.random(distribution, into: a, seed: 7, counter: counter)
                            #expect(launches() - before == 1, "\(distribution) into \(dtype) drawn by one launch")
                            b.backend.random(distribution, into: b, seed: 7, counter: counter)
                            #expect(a.toDoubles() == b.toDoubles(), "\(distribution) into \(dtype), counter \(counter)")
                        }
                    }
                    let strided = Tensor.zeros([6, 9], device: Self.gpu), expected = Tensor.empty([9, 6], device: .reference)
                    strided.backend.random(distribution, into: strided.transposed(), seed: 3, counter: 40)
                    expected.backend.random(distribution, into: expected, seed: 3, counter: 40)
                    #expect(strided.transposed().toFloats() == expected.toFloats(), "\(distribution) into a transposed view")
                }
                try backend.synchronize()
            }
            #expect(backend.memory.live == before, "every device tensor's memory went back to the pool")
        }

        @Test("batches of 64 KiB and more reach the GPU through two reused page-locked buffers, each value intact, queued uploads too")
        func pinnedUploads() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let hook = { (name: String) in
                unsafeBitCast(dlsym(backend.gpu.driver.handle, name), to: (@convention(c) () -> Int32).self)
            }
            let (copies, allocations) = (hook("snn_emulated_pinned_copies"), hook("snn_emulated_pinned_allocations"))
            let before = copies()
            for (i, count) in [40_000, 100_000, 70_000, 1_000].enumerated() {
                let batch = Self.normal([count], 70 + UInt64(i))
                #expect(batch.to(Self.gpu).toFloats() == batch.toFloats(), "\(count) floats")
            }
            #expect(copies() - before == 3, "the three batches of 64 KiB or more were copied from page-locked memory")
            #expect(allocations() == 2, "two staging buffers, grown to the largest batch")
            // Uploads queued one after another without a read between them, as prefetching does:
            // the third reuses the first's buffer, which it must not overwrite before the first
            // transfer has run (the emulated stream runs it only when waited for, as late as a
            // GPU may).
            let batches = (0..<3).map { Self.normal([50_000], 80 + UInt64($0)) }
            let uploaded = batches.map { $0.to(Self.gpu) }
            for (i, (batch, onGPU)) in zip(batches, uploaded).enumerated() {
                #expect(onGPU.toFloats() == batch.toFloats(), "batch \(i) of three queued uploads")
            }
        }

        @Test("float32 to bfloat16 and float16 and back on the GPU round as the host does: ties to even, subnormals, overflow, NaN",
              arguments: [DType.bfloat16, .float16])
        func halfCasts(dtype: DType) {
            let edges: [Float] = [0, -0.0, 1, -1, 1.0 / 3, 65504, 65519.99, 65520, 70000, -1e6, 1e-8, 0x1p-24, 0x1p-25, 0x1.0002p-25,
                                  3 * 0x1p-26, 0x1p-14, 0x1.ffcp-15, 5.960464e-8, .infinity, -.infinity, .nan, 0x1.00101p0, 0x1.00301p0,
                                  .greatestFiniteMagnitude, .leastNonzeroMagnitude, 1.00390625, 1.01171875]
            let spread = RandomInputs(seed: 80).uniformValues(3000).enumerated().map { Float(Foundation.exp(($1 - 0.5) * 70)) * ($0 % 2 == 0 ? 1 : -1) }
            let host = Tensor(edges + spread, shape: [edges.count + spread.count], device: .reference)
            let expected = host.backend.cast(host, to: dtype)
            let onGPU = host.to(Self.gpu)
            let narrowed = onGPU.backend.cast(onGPU, to: dtype)
            #expect(narrowed.dtype == dtype && narrowed.device == Self.gpu)
            let (got, want) = (narrowed.toDoubles(), expected.toDoubles())
            let mismatches = zip(got, want).enumerated().filter { !($1.0 == $1.1 || ($1.0.isNaN && $1.1.isNaN)) }
            #expect(mismatches.isEmpty, "\(dtype): \(mismatches.prefix(5).map { "\((edges + spread)[$0.offset]) -> \($0.element.0), host \($0.element.1)" })")
            // And back to float32 exactly.
            let widened = narrowed.backend.cast(narrowed, to: .float32).toDoubles()
            #expect(zip(widened, want).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(dtype) back to float32")
        }

        @Test("an allocation the GPU cannot hold is a thrown out-of-memory error naming the device")
        func outOfMemory() {
            #expect(throws: DeviceError.self) { _ = try Tensor.allocate([1 << 28, 1 << 20], device: Self.gpu) }
            do {
                _ = try Tensor.allocate([1 << 28, 1 << 20], device: Self.gpu)
            } catch {
                if case .outOfMemory(let device, let bytes, _) = error {
                    #expect(device == Self.gpu && bytes == 1 << 50)
                } else {
                    Issue.record("expected out of memory, got \(error)")
                }
            }
        }

        // MARK: - Elementwise and reductions

        static let shapePairs = [ShapePair([7, 13], [7, 13]), ShapePair([3, 1, 9], [4, 1]), ShapePair([], [13]), ShapePair([5, 131], [131])]

        @Test("binary ops, with broadcasting and on strided operands", arguments: BinaryCase.allCases)
        func binary(op: BinaryCase) {
            for pair in Self.shapePairs {
                let inputs = op.inputs(pair, RandomInputs(seed: 2)).map(\.float32Copy)
                check(inputs, gradients: pair.a == pair.b ? Self.elementwise : Self.accumulated, "\(op) \(pair)") { op.apply($0[0], $0[1]) }
            }
            let inputs = op.inputs(ShapePair([9, 11], [11, 13]), RandomInputs(seed: 3)).map(\.float32Copy)
            check(inputs, "\(op) strided") { op.apply($0[0].transposed(), $0[1].sliced(axis: 1, 2..<11)) }
        }

        @Test("unary and scalar ops, contiguous and on a permuted view", arguments: UnaryCase.allCases)
        func unary(op: UnaryCase) {
            check([op.input([3, 181], RandomInputs(seed: 4)).float32Copy], "\(op)") { op.apply($0[0]) }
            check([op.input([5, 6, 7], RandomInputs(seed: 5)).float32Copy], "\(op) permuted") { op.apply($0[0].permuted([2, 0, 1])) }
        }

        @Test("comparisons with ties, sign, and where with a broadcast condition")
        func comparisons() {
            let a = Tensor(doubles: RandomInputs(seed: 6).uniformValues(60).map { ($0 * 5).rounded(.down) - 2 }, shape: [4, 15], dtype: .float32)
            let b = Tensor(doubles: RandomInputs(seed: 7).uniformValues(15).map { ($0 * 5).rounded(.down) - 2 }, shape: [15], dtype: .float32)
            let ops: [(String, (Tensor, Tensor) -> Tensor)] = [
                ("==", { $0 == $1 }), ("!=", { $0 != $1 }), ("<", { $0 < $1 }), ("<=", { $0 <= $1 }), (">", { $0 > $1 }),
                (">=", { $0 >= $1 }), ("sign", { a, _ in a.sign() }),
            ]
            for (name, op) in ops { check([a, b], wrt: [], output: .elementwise(.exact), name) { op($0[0], $0[1]) } }
            let condition = Tensor(doubles: RandomInputs(seed: 8).uniformValues(41).map { $0 < 0.5 ? 1 : 0 }, shape: [41], dtype: .float32)
            check([Self.normal([3, 5, 41], 9), Self.normal([5, 1], 10)], gradients: Self.accumulated) { `where`(condition.to($0[0].device), $0[0], $0[1]) }
        }

        @Test("sum, mean and max over axes, and of strided views", arguments: [nil, [0], [1], [2], [0, 2], [1, 2]] as [[Int]?])
        func reductions(axes: [Int]?) {
            let x = Self.normal([4, 37, 29], 11)
            check([x], output: Self.accumulated, "sum") { $0[0].sum(axes: axes) }
            check([x], output: Self.accumulated, "mean") { $0[0].mean(axes: axes, keepDims: true) }
            check([RandomInputs(seed: 12).distinct([4, 37, 29], spacing: 1.0 / 1024, dtype: .float32)], "max") { $0[0].max(axes: axes) }
            check([Self.normal([9, 31, 17], 13)], output: Self.accumulated, "permuted") { $0[0].permuted([2, 0, 1]).sum(axes: [1]) }
            // Long reductions (a block per output): over 512 inputs each, with NaN winning the maximum.
            check([Self.normal([3, 700], 14)], output: Self.accumulated, "long sum") { $0[0].sum(axes: [1]) }
            check([RandomInputs(seed: 15).distinct([2, 3, 300], spacing: 1.0 / 1024, dtype: .float32)], "long max") {
                $0[0].permuted([1, 0, 2]).max(axes: [1, 2])
            }
            let withNaN = Tensor((0..<1000).map { $0 == 613 ? Float.nan : Float($0 % 97) }, shape: [2, 500], device: Self.gpu)
            let maxima = withNaN.max(axes: [1]).toFloats()
            #expect(maxima[0] == 96 && maxima[1].isNaN, "\(maxima)")
        }

        @Test("reductions over more inputs than a block takes (8192): parts over many blocks, then each output's parts in order")
        func reductionsInParts() {
            // 20,000 inputs an output: parts of 8192, 8192 and 3616.
            check([Self.normal([2, 20_000], 16, mean: 0.5)], output: Self.accumulated, "sum in parts") { $0[0].sum(axes: [1]) }
            check([Self.normal([20_000, 3], 17)], output: Self.accumulated, "strided mean in parts") { $0[0].mean(axes: [0]) }
            check([Self.normal([5, 4_000, 6], 18)], output: Self.accumulated, "whole mean in parts") { $0[0].mean() }
            check([RandomInputs(seed: 19).distinct([3, 9_000], spacing: 1.0 / 4096, dtype: .float32)], "max in parts") {
                $0[0].max(axes: [1])
            }
            // NaN wins in whichever part it is, the last (partial) one included.
            for at in [5, 12_000, 19_999] {
                let values = (0..<40_000).map { $0 == at ? Float.nan : Float($0 % 1009) }
                let maxima = Tensor(values, shape: [2, 20_000], device: Self.gpu).max(axes: [1]).toFloats()
                #expect(maxima[0].isNaN && maxima[1] == 1008, "NaN at \(at): \(maxima)")
            }
            // A mean of a firing rate's size: a sum of ones is exact.
            let ones = Tensor.ones([3, 50_000], device: Self.gpu)
            #expect(ones.sum().toFloats() == [150_000] && ones.mean(axes: [1]).toFloats() == [1, 1, 1])
        }

        @Test("movement: reshape, permute, slice, expand, repeat, concat and stack")
        func movement() {
            let x = Self.normal([3, 17, 11], 14)
            let ops: [(String, (Tensor) -> Tensor)] = [
                ("permute+contiguous", { $0.permuted([2, 0, 1]).contiguous() }),
                ("slice+contiguous", { $0.sliced(axis: 1, 2..<15).contiguous() }),
                ("expand+contiguous", { $0.sliced(axis: 0, 1..<2).expanded(to: [4, 17, 11]).contiguous() }),
                ("repeat", { $0.repeated([2, 1, 3]) }),
                ("concat", { concat([$0, $0.sliced(axis: 1, 0..<5), $0 * 2], axis: 1) }),
                ("stack", { stack([$0, $0 * 3], axis: -1) }),
            ]
            for (name, op) in ops { check([x], name) { op($0[0]) } }
        }

        // MARK: - Dense

        @Test("matmul (plain, transposed, batched) and linear, through cuBLAS and through SwiftSNN's tiled kernel", arguments: [true, false])
        func matmulAndLinear(cublas: Bool) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            #expect(backend.cublas?.version == "13.10.0", "the emulated cuBLAS is found beside the emulated driver")
            backend.usesCUBLAS = cublas
            defer { backend.usesCUBLAS = true }
            #expect(backend.usesCUBLAS == cublas)
            check([Self.normal([33, 47], 15), Self.normal([47, 29], 16)], output: Self.accumulated) { matmul($0[0], $0[1]) }
            check([Self.normal([47, 33], 17), Self.normal([29, 47], 18)], output: Self.accumulated, "transposed") {
                matmul($0[0].transposed(), $0[1].transposed())
            }
            check([Self.normal([3, 7, 19], 19), Self.normal([3, 19, 5], 20)], output: Self.accumulated, "batched") { matmul($0[0], $0[1]) }
            check([Self.normal([2, 5, 40], 21), Self.normal([10, 40], 22), Self.normal([10], 23)], output: Self.accumulated, "linear") {
                linear($0[0], weight: $0[1], bias: $0[2])
            }
            check([Self.normal([1, 7], 24), Self.normal([1, 7], 25)], output: Self.accumulated, "one output") { linear($0[0], weight: $0[1]) }
        }

        @Test("--amp: matrix products and convolutions (through cuDNN and through cuBLAS) with bfloat16 or float16 operands summed in float32, within the 16-bit type's rounding of the reference",
              arguments: CUDABackend.MixedPrecision.allCases, [true, false])
        func mixedPrecision(half: CUDABackend.MixedPrecision, cudnn: Bool) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            backend.usesCUDNN = cudnn
            defer { backend.usesCUDNN = true }
            let tolerance = Comparison.relativeToMaxMagnitude(half == .bf16 ? 2e-2 : 3e-3)
            let (a, b) = (Self.normal([33, 47], 90), Self.normal([47, 29], 91))
            let conv = Self.convCases[0]
            let convInputs = conv.inputs(RandomInputs(seed: 92)).map(\.float32Copy)
            let fullPrecision = matmul(a.to(Self.gpu), b.to(Self.gpu)).toFloats()
            backend.mixedPrecision = half
            defer { backend.mixedPrecision = nil }
            check([a, b], output: tolerance, "matmul \(half)") { matmul($0[0], $0[1]) }
            check([a.transposed().contiguous(), b], output: tolerance, "transposed \(half)") { matmul($0[0].transposed(), $0[1]) }
            check(convInputs, output: tolerance, "conv \(half)") { conv.apply($0) }
            // The 16-bit path was taken: rounding the operands changed the result.
            let mixed = matmul(a.to(Self.gpu), b.to(Self.gpu)).toFloats()
            #expect(zip(mixed, fullPrecision).contains { $0 != $1 }, "\(half): the product is float32's bit for bit")
        }

        @Test("--tf32: cuDNN convolutions within TF32's rounding of the reference (forward and both gradients); matrix products stay float32")
        func tf32() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let conv = Self.convCases[0]
            let inputs = conv.inputs(RandomInputs(seed: 93)).map(\.float32Copy)
            let (a, b) = (Self.normal([21, 34], 94), Self.normal([34, 17], 95))
            func run() -> [[Float]] {
                let leaves = inputs.map { x -> Tensor in
                    let leaf = x.to(Self.gpu)
                    leaf.requiresGrad = true
                    return leaf
                }
                let y = conv.apply(leaves)
                y.sum().backward()
                return [y.toFloats(), leaves[0].grad!.toFloats(), leaves[1].grad!.toFloats(), matmul(a.to(Self.gpu), b.to(Self.gpu)).toFloats()]
            }
            let exact = run()
            backend.allowsTF32 = true
            defer { backend.allowsTF32 = false }
            // TF32 keeps 10 of float32's 23 mantissa bits: products within about 2⁻¹¹ of the largest magnitude.
            check(inputs, output: .relativeToMaxMagnitude(2e-3), gradients: .relativeToMaxMagnitude(2e-3), "conv tf32") { conv.apply($0) }
            let rounded = run()
            for (i, name) in ["output", "input gradient", "weight gradient"].enumerated() {
                #expect(zip(rounded[i], exact[i]).contains { $0 != $1 }, "--tf32: the \(name) is float32's bit for bit")
            }
            #expect(rounded[3] == exact[3], "--tf32 changed a matrix product")
        }

        static let convCases = [
            ConvCase(input: [2, 4, 6, 6], weight: [5, 4, 3, 3], padding: (1, 1)),
            ConvCase(input: [2, 4, 7, 7], weight: [3, 4, 3, 3], stride: (2, 2), padding: (1, 1), bias: false),
            ConvCase(input: [2, 3, 9, 7], weight: [5, 3, 3, 2], stride: (2, 1), padding: (1, 0)),
            ConvCase(input: [1, 4, 9, 9], weight: [6, 2, 3, 3], padding: (2, 2), dilation: (2, 2), groups: 2),
            ConvCase(input: [3, 8, 5, 5], weight: [4, 8, 1, 1]),
        ]

        /// How convolutions run: through cuDNN (the default where it is found), as matrix products
        /// through cuBLAS over unfolded inputs in one chunk or in chunks of one image (a workspace
        /// too small for two), or on the direct kernels.
        enum ConvPath: String, CaseIterable, CustomStringConvertible {
            case cudnn, cublas, cublasOneImageChunks, directKernels
            var description: String { rawValue }
        }

        @Test("conv2d: output and gradients of input, weight and bias", arguments: convCases, ConvPath.allCases)
        func conv(c: ConvCase, path: ConvPath) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let workspace = backend.convolutionWorkspaceBytes
            #expect(backend.usesCUDNN, "the emulated GPU has cuDNN")
            backend.usesCUDNN = path == .cudnn
            backend.usesCUBLAS = path != .directKernels
            if path == .cublasOneImageChunks { backend.convolutionWorkspaceBytes = 1 }
            defer { (backend.usesCUDNN, backend.usesCUBLAS, backend.convolutionWorkspaceBytes) = (true, true, workspace) }
            check(c.inputs(RandomInputs(seed: 24)).map(\.float32Copy), output: Self.accumulated, "\(c) \(path)") { c.apply($0) }
        }

        @Test("cuDNN: each shape's algorithms are timed once and the fastest deterministic one that fits the workspace is kept")
        func cudnnAlgorithmChoice() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let dnn = try #require(backend.dnn)
            let workspace = backend.convolutionWorkspaceBytes
            defer { backend.convolutionWorkspaceBytes = workspace }
            // The emulated cuDNN's algorithms: 1 fastest but not deterministic, 2 next and needing a
            // workspace of 4 bytes per output element, 0 slowest.
            func choices(_ input: [Int]) throws -> [CUDNN.Direction: CUDNN.Choice] {
                let c = ConvCase(input: input, weight: [3, input[1], 3, 3], padding: (1, 1))
                let inputs = c.inputs(RandomInputs(seed: 26)).map { $0.float32Copy.to(backend.device) }
                inputs.forEach { $0.requiresGrad = true }
                c.apply(inputs).sum().backward()
                return try #require(dnn.choices.first { $0.0.input == input }?.1)
            }
            let roomy = try choices([2, 3, 5, 7])
            #expect(Set(roomy.keys) == Set(CUDNN.Direction.allCases))
            #expect(roomy.values.allSatisfy { $0.algorithm == 2 && $0.deterministic && $0.workspaceBytes == 4 * 2 * 3 * 5 * 7 })
            // Less than a MiB is no search workspace: the algorithm without one.
            backend.convolutionWorkspaceBytes = 1000
            let tight = try choices([2, 3, 6, 7])
            #expect(tight.values.allSatisfy { $0.algorithm == 0 && $0.workspaceBytes == 0 })
            // Chosen once: the next step of the same shape keeps the choice and searches no more.
            backend.convolutionWorkspaceBytes = workspace
            #expect(try choices([2, 3, 6, 7]) == tight)
            #expect(CUDNN.best(of: []) == nil)
        }

        static let poolCases: [PoolCase] = [Pool2dParameters.Kind.max, .average].flatMap { kind in
            [
                PoolCase(kind: kind, input: [2, 3, 7, 9], kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
                PoolCase(kind: kind, input: [2, 3, 7, 7], kernel: (2, 2)),
                PoolCase(kind: kind, input: [1, 2, 5, 11], kernel: (2, 4), stride: (3, 2), padding: (1, 2)),
                // 400 outputs and 1600 inputs: several blocks of 256 both ways.
                PoolCase(kind: kind, input: [2, 8, 10, 10], kernel: (2, 2)),
            ]
        }

        @Test("max and average pooling, also on a transposed view", arguments: poolCases)
        func pool(c: PoolCase) {
            check([RandomInputs(seed: 25).distinct(c.input, spacing: 1.0 / 256, dtype: .float32)], "\(c)") { c.apply($0[0]) }
            let s = c.input
            let xt = RandomInputs(seed: 26).distinct([s[0], s[1], s[3], s[2]], spacing: 1.0 / 256, dtype: .float32)
            check([xt], "\(c) transposed") { c.apply($0[0].transposed()) }
        }

        // [24, 3, 24, 24]: each channel's statistics and sums in two parts of frames (14 and 10).
        @Test("batchNorm, training and eval: output, gradients and running statistics",
              arguments: [[4, 8, 5, 5], [16, 6], [2, 3, 7], [24, 3, 24, 24]], [true, false])
        func batchNormParity(shape: [Int], training: Bool) {
            expectBatchNormAgrees(shape, training: training, on: Self.gpu)
        }

        // MARK: - Losses, neurons, TRT

        @Test("logSoftmax, crossEntropy with int64 labels, mse and dropout")
        func losses() {
            check([Self.normal([6, 11], 32, std: 3)], gradients: Self.accumulated, "logSoftmax") { logSoftmax($0[0]) }
            let labels = RandomInputs(seed: 34).labels(6, classes: 11)
            check([Self.normal([6, 11], 35, std: 3), labels], output: Self.accumulated, "crossEntropy") {
                crossEntropy(logits: $0[0], labels: $0[1])
            }
            check([Self.normal([7, 9], 36), Self.normal([9], 37)], output: Self.accumulated, "mse") { mse($0[0], $0[1]) }
            check([Self.normal([13, 17], 38)], "dropout") { dropout($0[0], p: 0.3, training: true, generator: RandomGenerator(seed: 39)) }
        }

        @Test("a label out of range stops the process at the first wait after oneHot, naming the label, its index and the classes")
        func badLabel() async throws {
            let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
                let gpu = try EmulatedCUDADriver.backend.get().device
                let labels = Tensor(doubles: [1, 2, 9, 3], shape: [4], dtype: .int64, device: .reference).to(gpu)
                let rows = oneHot(labels, classes: 9)   // queued, no wait
                FileHandle.standardError.write(Data("queued without a wait\n".utf8))
                _ = rows.toFloats()
            }
            let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(stderr.contains("queued without a wait\n"), "\(stderr)")
            #expect(stderr.contains("[oneHot] expected labels in 0..<9, got 9 at index 2 (found on cuda:0 at the first wait after the op)"),
                    "\(stderr)")
        }

        @Test("neuronScan, every reset and surrogate: spikes exactly, gradients elementwise",
              arguments: [ResetMode.hard(0), .hard(0.3), .soft], [Surrogate.triangle(gamma: 1), .sigmoid(alpha: 4), .rectangle(width: 1)])
        func neuron(reset: ResetMode, surrogate: Surrogate) {
            for (steps, shape) in [(1, [37]), (4, [3, 5, 7]), (6, [2, 301])] {
                let neuron = NeuronParameters(tau: 1.5, threshold: 1, reset: reset, surrogate: surrogate)
                let x = neuronCurrents([steps] + shape, neuron, seed: UInt64(steps * 1000 + shape.count))
                check([x], output: .elementwise(.exact), gradients: Self.elementwise, "T=\(steps) \(shape)") { neuronScan($0[0], neuron) }
            }
            let u = RandomInputs(seed: 40).awayFromKinks([67, 5], kinks: [-1, -0.5, 0, 0.5, 1], margin: 1e-3, dtype: .float32)
            check([u], output: .elementwise(.exact), gradients: Self.elementwise, "heaviside") { heaviside($0[0], surrogate: surrogate) }
        }

        /// The residual: none; 0/1 values the engine does not know to be spikes (kept as float32
        /// for the backward pass); a LIF scan's spikes (kept as bytes, which the GPU's backward
        /// pass reads as they are).
        @Test("batch norm fused with the neuron, with no residual, a float32 one and one of spikes: spikes, gradients of x, γ, β and the residual; the backward pass as one cooperative launch and as three",
              arguments: ["none", "float32", "spikes"], [true, false])
        func batchNormNeuron(residual: String, cooperative: Bool) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            #expect(backend.usesCooperativeLaunch, "the emulated GPU runs cooperative launches")
            backend.usesCooperativeLaunch = cooperative
            defer { backend.usesCooperativeLaunch = true }
            let handle = try #require(dlopen("\(try EmulatedCUDADriver.folder.get())/libcuda.so.1", RTLD_NOW | RTLD_NOLOAD))
            let cooperativeLaunches = unsafeBitCast(try #require(dlsym(handle, "snn_emulated_cooperative_launches")),
                                                    to: (@convention(c) () -> Int32).self)
            let occupancyQueries = unsafeBitCast(try #require(dlsym(handle, "snn_emulated_occupancy_queries")),
                                                 to: (@convention(c) () -> Int32).self)
            let launchesOf = unsafeBitCast(try #require(dlsym(handle, "snn_emulated_launches_of")),
                                           to: (@convention(c) (UnsafePointer<CChar>) -> Int32).self)
            let (before, queriesBefore) = (cooperativeLaunches(), occupancyQueries())
            let restoredBefore = launchesOf("snn_cast_u8_f32")
            // 1,152 neurons a step: five blocks' worth, of which the emulated GPU holds three at
            // once, so the cooperative grid strides.
            let (steps, shape) = (3, [4, 8, 6, 6])
            let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .hard(0), surrogate: .sigmoid(alpha: 4))
            let x = Self.normal([steps * shape[0]] + shape.dropFirst(), 41, mean: 0.5, std: 1.5)
            let gamma = RandomInputs(seed: 42).uniform([shape[1]], low: 0.5, high: 1.5, dtype: .float32)
            let beta = Self.normal([shape[1]], 43, mean: 0.5, std: 0.3)
            let spikes = Tensor(doubles: RandomInputs(seed: 44).uniformValues(x.count).map { $0 < 0.3 ? 1 : 0 }, shape: x.shape, dtype: .float32)
            let currents = Self.normal([steps, x.count / steps], 45, mean: 0.6, std: 1)
            let inputs = [x, gamma, beta] + ["float32": [spikes], "spikes": [currents]][residual, default: []]
            check(inputs, output: .elementwise(.exact), gradients: Self.accumulated, "residual \(residual)") { t in
                let (m, v) = (Tensor.zeros([shape[1]], device: t[0].device), Tensor.ones([shape[1]], device: t[0].device))
                let added: Tensor? = switch residual {
                case "float32": t[3]
                case "spikes": neuronScan(t[3], NeuronParameters(reset: .soft)).reshaped(x.shape)
                default: nil
                }
                if residual == "spikes" { #expect(added?.spikeQuantum == 1) }
                return batchNormNeuronScan(t[0], steps: steps, gamma: t[1], beta: t[2], runningMean: m, runningVar: v,
                                           residual: added, neuron: neuron)
            }
            #expect((cooperativeLaunches() > before) == cooperative)
            // A residual of spikes is kept as bytes, which the backward pass reads as they are:
            // nothing restores them to float32.
            #expect(launchesOf("snn_cast_u8_f32") == restoredBefore, "bytes restored to float32")
            if cooperative {
                // Once more: the GPU's residency for the kernel was asked at most once, by the first launch.
                let leaf = x.to(Self.gpu)
                leaf.requiresGrad = true
                batchNormNeuronScan(leaf, steps: steps, gamma: gamma.to(Self.gpu), beta: beta.to(Self.gpu),
                                        runningMean: Tensor.zeros([shape[1]], device: Self.gpu),
                                        runningVar: Tensor.ones([shape[1]], device: Self.gpu), neuron: neuron).sum().backward()
                #expect(cooperativeLaunches() - before >= 2 && occupancyQueries() - queriesBefore <= 1,
                        "\(cooperativeLaunches() - before) cooperative launches asked the occupancy \(occupancyQueries() - queriesBefore) times")
            }
        }

        @Test("a GPU that refuses cooperative launches: batch norm + LIF's backward pass runs as three launches from then on, with the same numbers")
        func cooperativeLaunchRefused() throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let handle = try #require(dlopen("\(try EmulatedCUDADriver.folder.get())/libcuda.so.1", RTLD_NOW | RTLD_NOLOAD))
            let refuse = unsafeBitCast(try #require(dlsym(handle, "snn_emulated_set_cooperative_launches")),
                                       to: (@convention(c) (Int32) -> Void).self)
            let cooperativeLaunches = unsafeBitCast(try #require(dlsym(handle, "snn_emulated_cooperative_launches")),
                                                    to: (@convention(c) () -> Int32).self)
            refuse(0)
            defer {
                refuse(1)
                backend.usesCooperativeLaunch = true
            }
            #expect(backend.usesCooperativeLaunch, "the backend opened where cooperative launches ran")
            let before = cooperativeLaunches()
            let x = Self.normal([6, 4, 5, 5], 45, mean: 0.5, std: 1.5)
            let (gamma, beta) = (RandomInputs(seed: 46).uniform([4], low: 0.5, high: 1.5, dtype: .float32), Self.normal([4], 47))
            let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .soft, surrogate: .triangle(gamma: 1))
            check([x, gamma, beta], output: .elementwise(.exact), gradients: Self.accumulated) { t in
                batchNormNeuronScan(t[0], steps: 2, gamma: t[1], beta: t[2], runningMean: Tensor.zeros([4], device: t[0].device),
                                    runningVar: Tensor.ones([4], device: t[0].device), neuron: neuron)
            }
            #expect(!backend.usesCooperativeLaunch && cooperativeLaunches() == before)
        }

        @Test("--amp: batch norm + LIF keeps its input in 16 bits (half the bytes of float32) and gives the reference's spikes and gradients on that rounded input",
              arguments: CUDABackend.MixedPrecision.allCases)
        func batchNormNeuronKeepsHalf(half: CUDABackend.MixedPrecision) throws {
            let backend = try EmulatedCUDADriver.backend.get()
            let (steps, channels) = (2, 4)
            let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .hard(0), surrogate: .sigmoid(alpha: 4))
            let x = Self.normal([steps * 3, channels, 6, 6], 45, mean: 0.5, std: 1.5).to(Self.gpu)
            let gamma = RandomInputs(seed: 46).uniform([channels], low: 0.5, high: 1.5, dtype: .float32).to(Self.gpu)
            let beta = Self.normal([channels], 47, mean: 0.5, std: 0.3).to(Self.gpu)
            let (mean, variance) = backend.batchNormStatistics(x)
            let grad = Self.normal(x.shape, 48).to(Self.gpu)
            backend.mixedPrecision = half
            defer { backend.mixedPrecision = nil }
            let before = backend.memory.live
            let (spikes, saved) = backend.batchNormNeuronScan(x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: 1e-5,
                                                              residual: nil, steps: steps, neuron)
            let kept = SavedBatchNormNeuron.from(saved, op: "test").input
            #expect(kept.dtype == half.dtype && kept.device == Self.gpu)
            // What the step holds after the op: the spikes and the 16-bit copy, nothing of float32's size more.
            #expect(backend.memory.live - before == x.count * (4 + 2), "\(backend.memory.live - before) bytes")
            // The reference on the input rounded as it was kept.
            let reference = ReferenceBackend.shared
            let rounded = reference.cast(reference.cast(x.to(.reference), to: half.dtype), to: .float32)
            #expect(rounded.toFloats() != x.toFloats())
            let expected = reference.batchNormNeuronScan(rounded, gamma: gamma.to(.reference), beta: beta.to(.reference),
                                                         mean: mean.to(.reference), variance: variance.to(.reference), epsilon: 1e-5,
                                                         residual: nil, steps: steps, neuron)
            #expect(spikes.toFloats() == expected.spikes.toFloats(), "\(half): spikes")
            let gradients = backend.batchNormNeuronScanBackward(grad, saved: saved)
            let expectedGradients = reference.batchNormNeuronScanBackward(grad.to(.reference), saved: expected.saved)
            for (name, a, b) in [("x", gradients.input, expectedGradients.input), ("γ", gradients.gamma, expectedGradients.gamma),
                                 ("β", gradients.beta, expectedGradients.beta)] {
                let scale = max(b.toDoubles().map(abs).max() ?? 0, 1e-12)
                let worst = zip(a.toDoubles(), b.toDoubles()).map { abs($0 - $1) }.max() ?? 0
                #expect(worst / scale <= 1e-5, "\(half): gradient of \(name) off by \(worst / scale)")
            }
        }

        @Test("the TRT penalty over several weights: value and gradients")
        func trtRegularizer() {
            let weights = [Self.normal([5, 3, 3, 3], 45, std: 0.1), Self.normal([300], 46, std: 0.1), Self.normal([7, 11], 47, std: 0.1)]
            check(weights, output: Self.accumulated, gradients: Self.elementwise) {
                trtRegularization($0, lambda: 5e-3, decay: 0.5, steps: 6, epsilon: 1e-5)
            }
        }

        @Test("the fused optimiser step over flat buffers equals the composite update on the reference backend",
              arguments: Optimizer.Kind.allCases)
        func fusedOptimizer(kind: Optimizer.Kind) {
            let shapes = [[7, 5], [301], [3, 3]]
            // The parameters, then each state buffer, after three steps.
            var results: [Device: [[Float]]] = [:]
            for device in [Self.gpu, .reference] {
                let parameters = shapes.enumerated().map { Self.normal($0.element, 50 + UInt64($0.offset)).leafCopy(on: device) }
                let named = parameters.enumerated().map { (key: "p\($0.offset)", value: $0.element) }
                let flat = Tensor.flattenParameters(parameters)
                let optimizer = Optimizer(kind, learningRate: 0.01, weightDecay: 0.05)
                for step in 0..<3 {
                    let gradient = Self.normal([flat.count], 60 + UInt64(step)).leafCopy(on: device)
                    optimizer.step(flat: flat, gradients: gradient, named: named)
                }
                results[device] = [flat.toFloats()] + optimizer.flatState.keys.sorted().map { optimizer.flatState[$0]!.toFloats() }
            }
            let (gpu, reference) = (results[Self.gpu] ?? [], results[.reference] ?? [])
            #expect(gpu.count == reference.count && !gpu.isEmpty)
            // Float32 arithmetic (the GPU) against the reference's double: within 1e-5 of each buffer's largest magnitude.
            for (g, r) in zip(gpu, reference) {
                let scale = r.map { abs(Double($0)) }.max() ?? 1
                let worst = zip(g, r).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
                #expect(g.count == r.count && worst <= 1e-5 * scale, "\(kind): worst difference \(worst), largest magnitude \(scale)")
            }
        }
    }
}
