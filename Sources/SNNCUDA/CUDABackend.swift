import CCUDA
import Foundation
import SNNLibraries
import SNNTensor

/// The backend of one NVIDIA GPU (`Device.cuda(n)`): tensors live in device memory from the
/// driver's stream-ordered pool, and every op is queued on the device's one stream as
/// SwiftSNN's kernels (``CUDAKernels``, compiled by NVRTC for the GPU and kept in the kernel
/// cache). Only reading values back (``download(_:into:)``, ``synchronize()``) waits.
///
/// Float32 is the working type: every op has a kernel for it. Ops on other dtypes (labels,
/// float64 checks) and views beyond the kernels' rank of 8 are computed by the reference
/// backend on a host copy and moved back, so every primitive works on every input.
///
/// A failure the driver reports inside an op (which cannot throw) ends the process through
/// `DeviceFailure.report`, naming the op and the driver's error.
public final class CUDABackend: Backend, @unchecked Sendable {
    public let device: Device
    /// The GPU: its context, stream and memory.
    public let gpu: CUDADevice
    /// The driver's description of the GPU.
    public let info: CUDADriver.Device

    /// The module of each kernel, by the name its source declares it under.
    private let kernelModules: [String: CUDAModule]
    /// Host-to-device copies of batches go through page-locked buffers.
    private let staging: PinnedStaging
    /// cuBLAS, when found (and `SNN_CUBLAS` is not `0`): matrix products and convolutions call it.
    let blas: CUBLAS?
    /// Whether matrix products and convolutions use cuBLAS (when found) rather than SwiftSNN's
    /// tiled and direct kernels; tests and comparisons turn it off.
    public var usesCUBLAS: Bool {
        get { lock.lock(); defer { lock.unlock() }; return cublasEnabled }
        set { lock.lock(); cublasEnabled = newValue && blas != nil; lock.unlock() }
    }
    private var cublasEnabled = false
    /// cuDNN, when found (and `SNN_CUDNN` is not `0`): convolutions call it, each shape's
    /// algorithms chosen by timing once (see ``CUDNN``).
    let dnn: CUDNN?
    /// Whether convolutions use cuDNN (when found) rather than cuBLAS products over unfolded
    /// inputs or SwiftSNN's direct kernels; tests and comparisons turn it off.
    public var usesCUDNN: Bool {
        get { lock.lock(); defer { lock.unlock() }; return cudnnEnabled }
        set { lock.lock(); cudnnEnabled = newValue && dnn != nil; lock.unlock() }
    }
    private var cudnnEnabled = false
    /// Mixed precision (`--amp`): matrix products and convolutions take their operands rounded
    /// to bfloat16 or float16 and sum in float32 on the tensor cores (cuDNN's convolutions give
    /// 16-bit results, as autocast's), and batch norm + LIF keeps its input in the 16-bit type
    /// for the backward pass; weights, gradients and optimiser state stay float32. `nil`:
    /// float32 throughout.
    public var mixedPrecision: MixedPrecision? {
        get { lock.lock(); defer { lock.unlock() }; return precision }
        set { lock.lock(); precision = newValue; lock.unlock() }
    }
    private var precision: MixedPrecision?

    /// Whether float32 convolutions through cuDNN may use TF32 tensor cores (products of
    /// operands rounded to 10-bit mantissas, summed in float32), as PyTorch allows by default
    /// (`torch.backends.cudnn.allow_tf32`); `--tf32`. Off: float32 products (`CUDNN_FMA_MATH`).
    /// Matrix products never use TF32, as PyTorch's default (`torch.backends.cuda.matmul.allow_tf32`).
    public var allowsTF32: Bool {
        get { lock.lock(); defer { lock.unlock() }; return tf32 }
        set { lock.lock(); tf32 = newValue; lock.unlock() }
    }
    private var tf32 = false

    /// Whether batch norm + LIF's backward pass runs as one cooperative launch (its three
    /// kernels separated by grid-wide barriers) rather than three launches; where the GPU runs
    /// cooperative launches, it does. Tests and `snn selftest` run both.
    public var usesCooperativeLaunch: Bool {
        get { lock.lock(); defer { lock.unlock() }; return cooperativeEnabled }
        set { lock.lock(); cooperativeEnabled = newValue && gpu.runsCooperativeLaunches; lock.unlock() }
    }
    private var cooperativeEnabled = false
    /// The word of device memory the grid-wide barriers count in (`snn_grid_sync`), zeroed
    /// once; launches on the one stream take turns with it.
    private var barrierWord: Tensor?

    /// The 16-bit type of ``mixedPrecision``.
    public enum MixedPrecision: String, Sendable, CaseIterable {
        case bf16, fp16

        var dtype: DType { self == .bf16 ? .bfloat16 : .float16 }
        var cublasType: CUBLAS.HalfType { self == .bf16 ? .bfloat16 : .float16 }
        var cudnnType: CUDNN.DataType { self == .bf16 ? .bfloat16 : .half }
    }

    /// The most bytes one unfolded chunk of a convolution's input may take (convolutions run as
    /// cuBLAS products over chunks of images; see `CUDABackend+Dense.swift`), and the most
    /// workspace a cuDNN convolution algorithm may use.
    public var convolutionWorkspaceBytes = 256 << 20
    /// The cuBLAS library in use, if any.
    public var cublas: CUDAToolkit.Library? { blas?.library }
    /// The cuDNN library in use, if any.
    public var cudnn: CUDAToolkit.Library? { dnn?.library }

    /// A convolution algorithm cuDNN's search chose, for reports (`snn bench train --json`).
    public struct ConvolutionAlgorithm: Sendable {
        public let input: [Int], weight: [Int], groups: Int
        /// `forward`, `backward-data` or `backward-weights`.
        public let direction: String
        /// `float`, `half` or `bfloat16`, and whether TF32 was allowed.
        public let operands: String, tf32: Bool
        /// cuDNN's number for the algorithm of its direction, its time in the search, its workspace.
        public let algorithm: Int, milliseconds: Double, workspaceBytes: Int, deterministic: Bool
    }

    /// Every algorithm cuDNN's search has chosen so far (empty without cuDNN).
    public var convolutionAlgorithms: [ConvolutionAlgorithm] {
        (dnn?.choices ?? []).flatMap { key, choices in
            choices.sorted { $0.key.rawValue < $1.key.rawValue }.map { direction, c in
                ConvolutionAlgorithm(input: key.input, weight: key.weight, groups: key.parameters.groups, direction: direction.rawValue,
                                     operands: "\(key.type)", tf32: key.tf32, algorithm: Int(c.algorithm),
                                     milliseconds: Double(c.milliseconds), workspaceBytes: c.workspaceBytes, deterministic: c.deterministic)
            }
        }
    }
    private let lock = NSLock()
    /// Where `oneHot` records a label out of range without waiting for the GPU.
    let labelCheck = LabelCheck()
    private var functions: [String: CUDAFunction] = [:]
    /// The blocks of each cooperative kernel (and block size) the GPU holds at once, asked once.
    private var residentBlockCounts: [String: Int] = [:]
    /// ``constant(_:)``'s tensors.
    private var constants: [[Float]: Tensor] = [:]
    private var liveBytes = 0, peakBytes = 0

    /// Opens GPU `ordinal`, loads the kernels (compiled by `nvrtc` for its architecture, or
    /// taken from `cache`) and, where they are found, cuBLAS and cuDNN (`SNN_CUBLAS=0` and
    /// `SNN_CUDNN=0` leave them out).
    ///
    /// - Throws: ``LibraryError`` when the GPU, the kernels, or a library that was found cannot
    ///   be set up; the message names the call that failed.
    public init(ordinal: Int, driver: CUDADriver, nvrtc: NVRTC, cache: KernelCache,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let gpus = try driver.devices()
        guard ordinal < gpus.count else {
            throw LibraryError(gpus.isEmpty ? "no GPU: the NVIDIA driver (\(driver.path)) sees none"
                               : "there is no GPU \(ordinal): this machine has GPUs 0..<\(gpus.count)")
        }
        info = gpus[ordinal]
        gpu = try CUDADevice(driver: driver, ordinal: ordinal)
        staging = PinnedStaging(device: gpu)
        device = .cuda(ordinal)
        var kernelModules: [String: CUDAModule] = [:]
        for (name, source) in CUDAKernels.all {
            let compiled = try cache.cubin(for: source, name: name, architecture: info.architecture, nvrtc: nvrtc)
            let module = try gpu.loadModule(compiled.cubin)
            for kernel in CUDAKernels.kernelNames(in: source) where kernelModules[kernel] == nil {
                kernelModules[kernel] = module
            }
        }
        self.kernelModules = kernelModules
        cooperativeEnabled = gpu.runsCooperativeLaunches
        if environment["SNN_CUBLAS"] != "0",
           let library = try? CUDAToolkit.load(.cublas, driverVersion: driver.versionCode, environment: environment) {
            blas = try CUBLAS(library, device: gpu)
        } else {
            blas = nil
        }
        cublasEnabled = blas != nil
        if environment["SNN_CUDNN"] != "0",
           let library = try? CUDAToolkit.load(.cudnn, driverVersion: driver.versionCode, environment: environment) {
            do {
                dnn = try CUDNN(library, device: gpu)
            } catch {
                throw LibraryError("\(error) (cuDNN \(library.version) at \(library.path); SNN_CUDNN=0 runs without it)")
            }
        } else {
            dnn = nil
        }
        cudnnEnabled = dnn != nil
    }

    // MARK: Opening and registering

    nonisolated(unsafe) private static var opened: [Int: CUDABackend] = [:]
    private static let openLock = NSLock()

    /// The backend of GPU `ordinal`, opened once per process: the driver, NVRTC and the kernels
    /// found as `snn devices` finds them (`SNN_CUDA_LIBRARY_PATH`, the loader path, Python
    /// environments' `nvidia` wheels). Throws a message that says what is missing and where it
    /// looked. A failed open is tried again on the next call.
    ///
    /// `environment` is read only when the GPU is opened: every `Device.cuda(n)` op comes here
    /// (``register()``), and a copy of the process environment costs more than launching a kernel.
    public static func open(_ ordinal: Int,
                            environment readEnvironment: @autoclosure () -> [String: String] = ProcessInfo.processInfo.environment)
        throws -> CUDABackend {
        openLock.lock()
        defer { openLock.unlock() }
        if let backend = opened[ordinal] { return backend }
        let environment = readEnvironment()
        let driver = try CUDADriver.load(environment: environment)
        let nvrtc = try NVRTC(driverVersion: driver.versionCode, environment: environment)
        let backend = try CUDABackend(ordinal: ordinal, driver: driver, nvrtc: nvrtc,
                                      cache: KernelCache(directory: KernelCache.defaultDirectory(environment: environment)),
                                      environment: environment)
        opened[ordinal] = backend
        return backend
    }

    /// Makes `Device.cuda(n)` compute here. Call ``open(_:environment:)`` first where a missing
    /// GPU should be a clear error (the command line does); a device opened only through
    /// `Device.backend` ends the process with the reason instead.
    public static func register() {
        BackendRegistry.cuda = { ordinal in
            do {
                return try open(ordinal)
            } catch {
                DeviceFailure.report(.failure(device: .cuda(ordinal), op: "open", message: "\(error)"),
                                     context: "opening the GPU")
            }
        }
    }

    /// Bytes held by this device's tensors now, and the most since ``resetPeak()``.
    public var memory: (live: Int, peak: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (liveBytes, peakBytes)
    }

    /// Starts a new peak measurement from the bytes held now.
    public func resetPeak() {
        lock.lock()
        peakBytes = liveBytes
        lock.unlock()
    }

    // MARK: Kernels

    /// The kernel `name`, from the first program that defines it.
    func function(_ name: String) -> CUDAFunction {
        lock.lock()
        defer { lock.unlock() }
        if let f = functions[name] { return f }
        guard let module = kernelModules[name] else {
            preconditionFailure("[CUDA] no kernel named \(name) in CUDAKernels.all")
        }
        do {
            let f = try module.function(name)
            functions[name] = f
            return f
        } catch {
            fail("load kernel \(name)", error)
        }
    }

    /// Launches `name` over `elements` threads in blocks of `block` (at least one block).
    func launch(_ name: String, elements: Int, block: Int = 256, _ arguments: [KernelArgument]) {
        launch(name, blocks: max((elements + block - 1) / block, 1), block: block, arguments)
    }

    /// Launches `name` over `blocks` blocks of `block` threads.
    func launch(_ name: String, blocks: Int, block: Int = 256, _ arguments: [KernelArgument]) {
        precondition(blocks <= Int(Int32.max), "[CUDA] \(name): \(blocks) blocks are more than a grid holds")
        do {
            try gpu.launch(function(name), grid: UInt32(blocks), block: UInt32(block), arguments)
        } catch {
            fail(name, error)
        }
    }

    /// Launches `name` cooperatively (``CUDADevice/launch(_:grid:block:cooperative:_:)``) over
    /// as many blocks of `block` threads as `elements` need, but no more than the GPU holds at
    /// once; the kernel strides over the rest.
    ///
    /// - Returns: false, with nothing queued, when the GPU refuses cooperative launches; then
    ///   ``usesCooperativeLaunch`` is off for the rest of the run, said once on stderr.
    func launchCooperative(_ name: String, elements: Int, block: Int = 256, _ arguments: [KernelArgument]) -> Bool {
        do {
            let f = function(name)
            let resident = try residentBlocks(f, block: block)
            guard resident > 0 else {
                throw CUDADevice.CooperativeLaunchRefused(message: "[CUDA] the GPU holds no block of \(block) threads of \(name)")
            }
            let blocks = min(max((elements + block - 1) / block, 1), resident)
            try gpu.launch(f, grid: UInt32(blocks), block: UInt32(block), cooperative: true, arguments)
            return true
        } catch let refused as CUDADevice.CooperativeLaunchRefused {
            usesCooperativeLaunch = false
            let note = "snn: \(info.name) refused a cooperative launch (\(refused)); "
                + "batch norm + LIF runs its backward pass as three launches\n"
            FileHandle.standardError.write(Data(note.utf8))
            return false
        } catch {
            fail(name, error)
        }
    }

    /// ``CUDADevice/residentBlocks(_:block:)`` of `f`, asked of the driver once.
    private func residentBlocks(_ f: CUDAFunction, block: Int) throws -> Int {
        let key = "\(f.name)/\(block)"
        lock.lock()
        let known = residentBlockCounts[key]
        lock.unlock()
        if let known { return known }
        let resident = try gpu.residentBlocks(f, block: block)
        lock.lock()
        residentBlockCounts[key] = resident
        lock.unlock()
        return resident
    }

    /// `values` on the GPU, uploaded the first time they are asked for: the same few constants
    /// every step (the TRT regulariser's per-timestep coefficients) would otherwise be a copy
    /// from pageable memory each time, which CUDA may make wait for the stream. Read only.
    func constant(_ values: [Float]) -> Tensor {
        lock.lock()
        let existing = constants[values]
        lock.unlock()
        if let existing { return existing }
        let t = deviceCopy(of: Tensor(values, shape: [values.count], device: .reference))
        lock.lock()
        if constants.count >= 64 { constants.removeAll() }   // a bound, never reached by a run's few
        constants[values] = t
        lock.unlock()
        return t
    }

    /// The address of the grid-wide barriers' word (allocated and zeroed on first use).
    func gridBarrier() -> KernelArgument {
        lock.lock()
        let existing = barrierWord
        lock.unlock()
        if let existing { return arg(existing) }
        // Allocated outside the lock, which allocating takes. Two threads may each make one;
        // either serves, as every barrier leaves its word's low bits zero.
        let word = output([1])
        do { try gpu.set(address(word), pattern: 0, size: 4, count: 1) } catch { fail("grid barrier", error) }
        lock.lock()
        barrierWord = word
        lock.unlock()
        return arg(word)
    }

    /// Ends the process with a device failure in `op` (ops cannot throw).
    func fail(_ op: String, _ error: Error) -> Never {
        DeviceFailure.report(.failure(device: device, op: op, message: "\(error)"), context: "on \(info.name)")
    }

    /// The device address of `x`'s first element.
    func address(_ x: Tensor) -> snn_CUdeviceptr {
        precondition(x.device == device, "[CUDA] expected a tensor on \(device), got one on \(x.device)")
        return snn_CUdeviceptr(UInt(bitPattern: x.storage.data)) + snn_CUdeviceptr(x.offset * x.dtype.size)
    }

    /// The device address of `x`'s first element, for libraries that take this GPU's memory
    /// (NCCL).
    public func deviceAddress(of x: Tensor) -> UInt64 { address(x) }

    /// The stream every op is queued on (a `CUstream`, which is also the runtime's
    /// `cudaStream_t`): a library that queues its work there (NCCL) runs in order with the ops.
    public var stream: OpaquePointer { gpu.stream }

    /// `x`'s address as a kernel argument (`nil`: a null pointer).
    func arg(_ x: Tensor?) -> KernelArgument { .address(x.map(address) ?? 0) }

    /// `x` as a contiguous float32 tensor on this device (a copy when it is strided), or `nil`
    /// for another dtype: the operands of the kernels that read contiguous memory.
    func packed(_ x: Tensor) -> Tensor? {
        guard x.dtype == .float32 else { return nil }
        return x.isContiguous ? x : contiguous(x)
    }

    /// ``packed(_:)`` of every tensor, or `nil` when one is not float32.
    func packed(_ tensors: [Tensor]) -> [Tensor]? {
        guard tensors.allSatisfy({ $0.dtype == .float32 }) else { return nil }
        return tensors.compactMap(packed)
    }

    /// A new contiguous float32 (or `dtype`) tensor on this device.
    func output(_ shape: [Int], _ dtype: DType = .float32) -> Tensor { Tensor.empty(shape, dtype: dtype, device: device) }

    // MARK: Memory

    public func allocate(_ shape: [Int], dtype: DType) throws(DeviceError) -> Tensor {
        var bytes = dtype.size, overflow = false
        for d in shape where !overflow { (bytes, overflow) = bytes.multipliedReportingOverflow(by: d) }
        guard !overflow, shape.allSatisfy({ $0 >= 0 }) else {
            throw .failure(device: device, op: "allocate", message: "a tensor of shape \(ShapeUtil.describe(shape)) is too large to address")
        }
        let address: snn_CUdeviceptr
        switch gpu.allocateRaw(bytes: bytes) {
        case .success(let a): address = a
        case .failure(let f):
            if f.isOutOfMemory { throw .outOfMemory(device: device, bytes: bytes, held: memory.live) }
            throw .failure(device: device, op: "allocate", message: "[cuMemAllocAsync] \(f.message)")
        }
        lock.lock()
        liveBytes += bytes
        peakBytes = max(peakBytes, liveBytes)
        lock.unlock()
        guard let pointer = UnsafeMutableRawPointer(bitPattern: UInt(address)) else {
            throw .failure(device: device, op: "allocate", message: "[cuMemAllocAsync] returned address 0")
        }
        let storage = Storage(adopting: pointer, byteCount: bytes) { [weak self, gpu] p, n in
            gpu.free(snn_CUdeviceptr(UInt(bitPattern: p)))
            guard let self else { return }
            self.lock.lock()
            self.liveBytes -= n
            self.lock.unlock()
        }
        return Tensor(storage: storage, shape: shape, dtype: dtype, device: device)
    }

    public func fill(_ x: Tensor, with value: Double) {
        if x.count == 0 { return }
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { x.dtype.store(value, $0.baseAddress!, 0) }
        if x.isContiguous && x.dtype.size <= 4 {
            run("fill") { try gpu.set(address(x), pattern: UInt32(truncatingIfNeeded: pattern), size: x.dtype.size, count: x.count) }
        } else if x.isContiguous && x.dtype.size == 8 && pattern >> 32 == pattern & 0xFFFF_FFFF {
            // 8-byte values whose halves are equal (0 above all): twice as many 4-byte words.
            run("fill") { try gpu.set(address(x), pattern: UInt32(truncatingIfNeeded: pattern), size: 4, count: 2 * x.count) }
        } else if x.dtype == .float32, let layout = Layout(x.shape, [x, nil, nil]) {
            launch("snn_fill", elements: x.count, [arg(x), .float(Float(value)), .int64(Int64(x.count)), layout.argument])
        } else {
            mirror(x) { HostMemory.fill($0, with: value) }
        }
    }

    public func copy(_ source: Tensor, into destination: Tensor) {
        precondition(source.shape == destination.shape,
                     "[copy] expected equal shapes, got \(ShapeUtil.describe(source.shape)) and \(ShapeUtil.describe(destination.shape))")
        if source.count == 0 { return }
        switch (source.device == device, destination.device == device) {
        case (false, true):
            precondition(source.device.isHostMemory, "[copy] expected host memory or \(device), got \(source.device)")
            if destination.isContiguous {
                let staged = source.dtype == destination.dtype && source.isContiguous ? source : hostCopy(of: source, dtype: destination.dtype)
                run("copy to \(device)") {
                    try staging.upload(UnsafeRawPointer(staged.storage.data + staged.offset * staged.dtype.size), to: address(destination),
                                       bytes: destination.count * destination.dtype.size)
                }
            } else if destination.dtype.size == 4, Layout(destination.shape, [destination, nil, nil]) != nil {
                copy(deviceCopy(of: hostCopy(of: source, dtype: destination.dtype)), into: destination)
            } else {
                mirror(destination) { HostMemory.copy(source, into: $0) }
            }
        case (true, false):
            precondition(destination.device.isHostMemory, "[copy] expected host memory or \(device), got \(destination.device)")
            let packed = source.isContiguous ? source : contiguous(source)
            let staged = destination.dtype == source.dtype && destination.isContiguous
                ? destination : HostMemory.empty(source.shape, dtype: source.dtype)
            run("copy from \(device)") {
                try gpu.copy(from: address(packed), to: staged.storage.data + staged.offset * staged.dtype.size,
                             bytes: packed.count * packed.dtype.size)
            }
            if staged !== destination { HostMemory.copy(staged, into: destination) }
            labelCheck.verify(on: self)
        case (true, true):
            if source.dtype == destination.dtype && source.isContiguous && destination.isContiguous {
                run("copy") { try gpu.copy(from: address(source), to: address(destination), bytes: source.count * source.dtype.size) }
            } else if source.dtype == destination.dtype && source.dtype.size == 4,
                      let layout = Layout(source.shape, [destination, source, nil]) {
                launch("snn_copy_to", elements: source.count, [arg(source), arg(destination), .int64(Int64(source.count)), layout.argument])
            } else if destination.isContiguous, let kernel = castKernel(source.dtype, destination.dtype),
                      let layout = Layout(source.shape, [nil, source, nil]) {
                launch(kernel, elements: source.count, [arg(source), arg(destination), .int64(Int64(source.count)), layout.argument])
            } else {
                // Other dtypes and ranks: through the host.
                let host = hostCopy(of: source)
                if destination.isContiguous { copy(host, into: destination) } else { mirror(destination) { HostMemory.copy(host, into: $0) } }
            }
        case (false, false):
            preconditionFailure("[copy] neither \(source.device) nor \(destination.device) is \(device)")
        }
    }

    public func upload(_ bytes: UnsafeRawBufferPointer, into x: Tensor) {
        precondition(x.isContiguous && bytes.count == x.count * x.dtype.size,
                     "[upload] expected \(x.count * x.dtype.size) bytes for a contiguous \(ShapeUtil.describe(x.shape)) \(x.dtype), got \(bytes.count)")
        guard let base = bytes.baseAddress else { return }
        run("upload") { try staging.upload(base, to: address(x), bytes: bytes.count) }
    }

    public func download(_ x: Tensor, into bytes: UnsafeMutableRawBufferPointer) {
        precondition(x.isContiguous && bytes.count == x.count * x.dtype.size,
                     "[download] expected room for \(x.count * x.dtype.size) bytes, got \(bytes.count)")
        guard let base = bytes.baseAddress else { return }
        run("download") { try gpu.copy(from: address(x), to: base, bytes: bytes.count) }
        labelCheck.verify(on: self)
    }

    /// Drawn on the GPU (`snn_random`): the engine's Philox words, so the same numbers as on
    /// every other device (a normal draw's last bit aside, where the GPU's `log` or `cos`
    /// rounds otherwise than the host's). Float64 tensors and strided views are drawn on the
    /// host and uploaded.
    public func random(_ distribution: RandomDistribution, into x: Tensor, seed: UInt64, counter: UInt64) {
        let code: Int32? = switch x.dtype {
        case .float32: 0
        case .bfloat16: 1
        case .float16: 2
        default: nil
        }
        guard let code, x.isContiguous else {
            let host = HostMemory.empty(x.shape, dtype: x.dtype)
            HostMemory.random(distribution, into: host, seed: seed, counter: counter)
            copy(host, into: x)
            return
        }
        guard x.count > 0 else { return }
        let (kind, a, b): (Int32, Double, Double) = switch distribution {
        case let .uniform(low, high): (0, low, high)
        case let .bernoulli(p): (1, (Swift.min(Swift.max(p, 0), 1) * 0x1p24).rounded(.up), 0)   // the kernel compares whole numbers
        case let .normal(mean, std): (2, mean, std)
        }
        let perThread = 4 / distribution.wordsPerElement
        launch("snn_random", elements: (x.count + perThread - 1) / perThread,
               [.int32(kind), .double(a), .double(b), .int64(Int64(bitPattern: seed)), .int64(Int64(bitPattern: counter / 4)),
                arg(x), .int32(code), .int64(Int64(x.count))])
    }

    public func synchronize() throws(DeviceError) {
        do {
            try gpu.synchronize()
        } catch {
            throw .failure(device: device, op: "synchronize", message: "\(error)")
        }
        labelCheck.verify(on: self)
    }

    /// Runs a driver call of `op`, ending the process on failure.
    func run(_ op: String, _ body: () throws -> Void) {
        do { try body() } catch { fail(op, error) }
    }

    // MARK: Host round trips

    /// A contiguous host copy of the device tensor (or host tensor) `x` in `dtype`.
    func hostCopy(of x: Tensor, dtype: DType? = nil) -> Tensor {
        let host = HostMemory.empty(x.shape, dtype: dtype ?? x.dtype)
        if x.device == device { copy(x, into: host) } else { HostMemory.copy(x, into: host) }
        return host
    }

    /// A new device tensor holding the host tensor `x`.
    func deviceCopy(of x: Tensor) -> Tensor {
        let out = output(x.shape, x.dtype)
        copy(x, into: out)
        return out
    }

    /// Computes `body` on the reference backend from host copies of `inputs` and moves its
    /// result here: for dtypes and ranks the kernels do not cover.
    func onHost(_ inputs: [Tensor], _ body: (ReferenceBackend, [Tensor]) -> Tensor) -> Tensor {
        deviceCopy(of: body(ReferenceBackend.shared, inputs.map { hostCopy(of: $0) }))
    }

    /// Lets `body` change the device tensor `x` (any strides, any dtype) through a host view of
    /// its whole storage, then writes the storage back.
    func mirror(_ x: Tensor, _ body: (Tensor) -> Void) {
        let bytes = x.storage.byteCount
        let staging = HostMemory.empty([bytes], dtype: .uint8)
        let base = snn_CUdeviceptr(UInt(bitPattern: x.storage.data))
        run("copy from \(device)") { try gpu.copy(from: base, to: staging.storage.data, bytes: bytes) }
        body(Tensor(storage: staging.storage, shape: x.shape, strides: x.strides, offset: x.offset, dtype: x.dtype, device: .reference))
        run("copy to \(device)") { try gpu.copy(from: UnsafeRawPointer(staging.storage.data), to: base, bytes: bytes) }
        run("synchronize") { try gpu.synchronize() }   // the staging buffer goes when this returns
    }
}

extension HostMemory {
    /// A new contiguous host tensor (reference device) for staging.
    static func empty(_ shape: [Int], dtype: DType) -> Tensor { Tensor.empty(shape, dtype: dtype, device: .reference) }
}

/// `oneHot`'s check of its labels, kept off the step's critical path: the kernel records a label
/// outside `0..<classes` in a small device buffer, and the backend reads the buffer after its
/// next wait for the GPU (a download, a copy to the host, `synchronize`), where the process stops
/// with the reference's message. Reading it then costs a 32-byte copy, and only after a `oneHot`.
final class LabelCheck: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: Tensor?
    private var unread = false

    /// The buffer for the next `snn_one_hot` (`{flag, label, row, classes}`, zero until a bad
    /// label), marked to be read at the next wait.
    func pending(on backend: CUDABackend) -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        let b = buffer ?? {
            let b = backend.output([4], .int64)
            backend.fill(b, with: 0)
            buffer = b
            return b
        }()
        unread = true
        return b
    }

    /// Stops the process with the reference's message when a `oneHot` since the last call saw a
    /// bad label. Call only after the stream has been waited for.
    func verify(on backend: CUDABackend) {
        lock.lock()
        guard unread, let buffer else { lock.unlock(); return }
        unread = false
        lock.unlock()
        var values = [Int64](repeating: 0, count: 4)
        values.withUnsafeMutableBytes { bytes in
            backend.run("copy from \(backend.device)") { try backend.gpu.copy(from: backend.address(buffer), to: bytes.baseAddress!, bytes: 32) }
        }
        if values[0] != 0 {
            preconditionFailure("[oneHot] expected labels in 0..<\(values[3]), got \(values[1]) at index \(values[2]) "
                                + "(found on \(backend.device) at the first wait after the op)")
        }
    }
}
