import CCUDA
import Foundation
import SNNLibraries

/// One GPU ready to compute: its primary context, one stream, memory from the driver's
/// stream-ordered pool (`cuMemAllocAsync`), modules loaded from CUBINs, and kernel launches.
/// Everything is queued on the one stream; only ``synchronize()`` and downloads wait for it.
public final class CUDADevice: @unchecked Sendable {
    public let driver: CUDADriver
    public let ordinal: Int
    let context: snn_CUcontext
    let stream: snn_CUstream

    let ctxSetCurrent: snn_cuCtxSetCurrent_t
    let streamSynchronize: snn_cuStreamSynchronize_t
    let memAllocAsync: snn_cuMemAllocAsync_t
    let memFreeAsync: snn_cuMemFreeAsync_t
    let memcpyHtoDAsync: snn_cuMemcpyHtoDAsync_v2_t
    let memcpyDtoHAsync: snn_cuMemcpyDtoHAsync_v2_t
    let memcpyDtoDAsync: snn_cuMemcpyDtoDAsync_v2_t
    let memsetD8Async: snn_cuMemsetD8Async_t
    let memsetD16Async: snn_cuMemsetD16Async_t
    let memsetD32Async: snn_cuMemsetD32Async_t
    let memAllocHost: snn_cuMemAllocHost_v2_t
    let memFreeHost: snn_cuMemFreeHost_t
    let eventCreate: snn_cuEventCreate_t
    let eventRecord: snn_cuEventRecord_t
    let eventSynchronize: snn_cuEventSynchronize_t
    let eventDestroy: snn_cuEventDestroy_v2_t
    let moduleLoadData: snn_cuModuleLoadData_t
    let moduleGetFunction: snn_cuModuleGetFunction_t
    let launchKernel: snn_cuLaunchKernel_t
    let launchCooperativeKernel: snn_cuLaunchCooperativeKernel_t
    let occupancyMaxActiveBlocks: snn_cuOccupancyMaxActiveBlocksPerMultiprocessor_t
    /// Multiprocessors, and whether the GPU runs cooperative launches (all of SwiftSNN's
    /// targets do; a driver may refuse them, e.g. under some virtualisation).
    let multiprocessors: Int
    public let runsCooperativeLaunches: Bool

    /// Opens GPU `ordinal`: its primary context (current on this thread) and a stream.
    ///
    /// - Throws: ``LibraryError`` naming the driver call that failed, or a driver without the
    ///   functions (CUDA 11.2 or later is needed for the stream-ordered pool).
    public init(driver: CUDADriver, ordinal: Int = 0) throws {
        self.driver = driver
        self.ordinal = ordinal
        let symbols = Symbols(handle: driver.handle, path: driver.path, library: "CUDA",
                              expected: "a CUDA 11.2 or later driver library")
        func function<T>(_ name: String, _ type: T.Type) throws -> T { try symbols.function(name, type) }
        let retain = try function("cuDevicePrimaryCtxRetain", snn_cuDevicePrimaryCtxRetain_t.self)
        let streamCreate = try function("cuStreamCreate", snn_cuStreamCreate_t.self)
        ctxSetCurrent = try function("cuCtxSetCurrent", snn_cuCtxSetCurrent_t.self)
        streamSynchronize = try function("cuStreamSynchronize", snn_cuStreamSynchronize_t.self)
        memAllocAsync = try function("cuMemAllocAsync", snn_cuMemAllocAsync_t.self)
        memFreeAsync = try function("cuMemFreeAsync", snn_cuMemFreeAsync_t.self)
        memcpyHtoDAsync = try function("cuMemcpyHtoDAsync_v2", snn_cuMemcpyHtoDAsync_v2_t.self)
        memcpyDtoHAsync = try function("cuMemcpyDtoHAsync_v2", snn_cuMemcpyDtoHAsync_v2_t.self)
        memcpyDtoDAsync = try function("cuMemcpyDtoDAsync_v2", snn_cuMemcpyDtoDAsync_v2_t.self)
        memsetD8Async = try function("cuMemsetD8Async", snn_cuMemsetD8Async_t.self)
        memsetD16Async = try function("cuMemsetD16Async", snn_cuMemsetD16Async_t.self)
        memsetD32Async = try function("cuMemsetD32Async", snn_cuMemsetD32Async_t.self)
        memAllocHost = try function("cuMemAllocHost_v2", snn_cuMemAllocHost_v2_t.self)
        memFreeHost = try function("cuMemFreeHost", snn_cuMemFreeHost_t.self)
        eventCreate = try function("cuEventCreate", snn_cuEventCreate_t.self)
        eventRecord = try function("cuEventRecord", snn_cuEventRecord_t.self)
        eventSynchronize = try function("cuEventSynchronize", snn_cuEventSynchronize_t.self)
        eventDestroy = try function("cuEventDestroy_v2", snn_cuEventDestroy_v2_t.self)
        moduleLoadData = try function("cuModuleLoadData", snn_cuModuleLoadData_t.self)
        moduleGetFunction = try function("cuModuleGetFunction", snn_cuModuleGetFunction_t.self)
        launchKernel = try function("cuLaunchKernel", snn_cuLaunchKernel_t.self)
        launchCooperativeKernel = try function("cuLaunchCooperativeKernel", snn_cuLaunchCooperativeKernel_t.self)
        occupancyMaxActiveBlocks = try function("cuOccupancyMaxActiveBlocksPerMultiprocessor",
                                                snn_cuOccupancyMaxActiveBlocksPerMultiprocessor_t.self)
        try driver.check(driver.initialize(0), "cuInit")
        var device: snn_CUdevice = 0
        try driver.check(driver.deviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        func attribute(_ a: CUDADriver.Attribute) throws -> Int {
            var value: Int32 = 0
            try driver.check(driver.deviceGetAttribute(&value, a.rawValue, device), "cuDeviceGetAttribute")
            return Int(value)
        }
        multiprocessors = try attribute(.multiprocessorCount)
        runsCooperativeLaunches = try attribute(.cooperativeLaunch) != 0
        var context: snn_CUcontext?
        try driver.check(retain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else { throw LibraryError("[cuDevicePrimaryCtxRetain] no context for GPU \(ordinal)") }
        try driver.check(ctxSetCurrent(context), "cuCtxSetCurrent")
        // The stream-ordered pool keeps freed memory for reuse instead of giving it back to the
        // driver at every synchronisation (its default threshold, 0, would make each step
        // allocate its tensors anew).
        let defaultPool = try function("cuDeviceGetDefaultMemPool", snn_cuDeviceGetDefaultMemPool_t.self)
        let setPoolAttribute = try function("cuMemPoolSetAttribute", snn_cuMemPoolSetAttribute_t.self)
        var pool: snn_CUmemoryPool?
        try driver.check(defaultPool(&pool, device), "cuDeviceGetDefaultMemPool")
        var threshold = UInt64.max
        try driver.check(setPoolAttribute(pool, 4, &threshold), "cuMemPoolSetAttribute(CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)")
        var stream: snn_CUstream?
        try driver.check(streamCreate(&stream, 0), "cuStreamCreate")
        guard let stream else { throw LibraryError("[cuStreamCreate] no stream on GPU \(ordinal)") }
        (self.context, self.stream) = (context, stream)
    }

    /// Makes the GPU's context current on the calling thread. Driver calls act on the current
    /// context of the thread that makes them, and ops, buffer releases and library calls may
    /// come from any thread, so every call here does this first (a thread-local store in the
    /// driver).
    public func makeCurrent() throws { try driver.check(ctxSetCurrent(context), "cuCtxSetCurrent") }

    /// Waits for everything queued on the stream.
    public func synchronize() throws {
        try makeCurrent()
        try driver.check(streamSynchronize(stream), "cuStreamSynchronize")
    }

    /// `bytes` of device memory, queued on the stream; freed (queued too) when the buffer goes.
    public func allocate(bytes: Int) throws -> DeviceBuffer {
        try makeCurrent()
        var address: snn_CUdeviceptr = 0
        try driver.check(memAllocAsync(&address, max(bytes, 1), stream), "cuMemAllocAsync")
        return DeviceBuffer(device: self, address: address, bytes: bytes)
    }

    /// Copies `values` into `buffer` (the copy is complete when this returns: the host array may
    /// go away).
    public func upload(_ values: [Float], to buffer: DeviceBuffer) throws {
        precondition(values.count * 4 <= buffer.bytes, "[CUDA] \(values.count) floats do not fit \(buffer.bytes) bytes")
        try makeCurrent()
        try values.withUnsafeBytes { bytes in
            try driver.check(memcpyHtoDAsync(buffer.address, bytes.baseAddress, bytes.count, stream), "cuMemcpyHtoDAsync")
            try synchronize()
        }
    }

    /// The first `count` floats of `buffer`, once the work queued before has run.
    public func download(_ buffer: DeviceBuffer, count: Int) throws -> [Float] {
        precondition(count * 4 <= buffer.bytes, "[CUDA] \(count) floats are more than \(buffer.bytes) bytes")
        try makeCurrent()
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBytes { bytes in
            try driver.check(memcpyDtoHAsync(bytes.baseAddress, buffer.address, bytes.count, stream), "cuMemcpyDtoHAsync")
        }
        try synchronize()
        return values
    }

    // MARK: Raw memory (device addresses), for the backend

    /// `bytes` of device memory at a raw address (freed with ``free(_:)``), queued on the
    /// stream. Throws the driver's result code as well as its message, so the caller can tell
    /// `CUDA_ERROR_OUT_OF_MEMORY` (2).
    func allocateRaw(bytes: Int) -> Result<snn_CUdeviceptr, AllocationFailure> {
        let current = ctxSetCurrent(context)
        guard current == 0 else { return .failure(AllocationFailure(code: current, message: driver.message(for: current))) }
        var address: snn_CUdeviceptr = 0
        let result = memAllocAsync(&address, max(bytes, 1), stream)
        guard result == 0 else { return .failure(AllocationFailure(code: result, message: driver.message(for: result))) }
        return .success(address)
    }

    /// Why ``allocateRaw(bytes:)`` failed: the driver's result and message.
    struct AllocationFailure: Error {
        let code: snn_CUresult
        let message: String
        var isOutOfMemory: Bool { code == 2 }
    }

    /// Gives memory from ``allocateRaw(bytes:)`` back to the pool (queued on the stream).
    func free(_ address: snn_CUdeviceptr) {
        _ = ctxSetCurrent(context)
        _ = memFreeAsync(address, stream)
    }

    /// Queues a copy of host bytes to the device. From pageable memory the driver has taken the
    /// bytes when this returns, so the host buffer may be reused.
    func copy(from host: UnsafeRawPointer, to address: snn_CUdeviceptr, bytes: Int) throws {
        guard bytes > 0 else { return }
        try makeCurrent()
        try driver.check(memcpyHtoDAsync(address, host, bytes, stream), "cuMemcpyHtoDAsync")
    }

    /// Copies device bytes to the host and waits for them.
    func copy(from address: snn_CUdeviceptr, to host: UnsafeMutableRawPointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try makeCurrent()
        try driver.check(memcpyDtoHAsync(host, address, bytes, stream), "cuMemcpyDtoHAsync")
        try synchronize()
    }

    /// Queues a device-to-device copy.
    func copy(from source: snn_CUdeviceptr, to destination: snn_CUdeviceptr, bytes: Int) throws {
        guard bytes > 0 else { return }
        try makeCurrent()
        try driver.check(memcpyDtoDAsync(destination, source, bytes, stream), "cuMemcpyDtoDAsync")
    }

    /// Queues setting `count` elements of `size` bytes (1, 2 or 4) at `address` to `pattern`.
    func set(_ address: snn_CUdeviceptr, pattern: UInt32, size: Int, count: Int) throws {
        guard count > 0 else { return }
        try makeCurrent()
        switch size {
        case 1: try driver.check(memsetD8Async(address, UInt8(truncatingIfNeeded: pattern), count, stream), "cuMemsetD8Async")
        case 2: try driver.check(memsetD16Async(address, UInt16(truncatingIfNeeded: pattern), count, stream), "cuMemsetD16Async")
        default: try driver.check(memsetD32Async(address, pattern, count, stream), "cuMemsetD32Async")
        }
    }

    // MARK: Page-locked host memory and events, for the backend's staged uploads

    /// `bytes` of page-locked host memory, from which copies to the device run asynchronously.
    func allocatePinned(bytes: Int) throws -> UnsafeMutableRawPointer {
        try makeCurrent()
        var p: UnsafeMutableRawPointer?
        try driver.check(memAllocHost(&p, max(bytes, 1)), "cuMemAllocHost")
        guard let p else { throw LibraryError("[cuMemAllocHost] returned no memory") }
        return p
    }

    func freePinned(_ p: UnsafeMutableRawPointer) {
        _ = ctxSetCurrent(context)
        _ = memFreeHost(p)
    }

    /// A new event (flags 2: CU_EVENT_DISABLE_TIMING, the cheapest kind).
    func makeEvent() throws -> snn_CUevent {
        try makeCurrent()
        var event: snn_CUevent?
        try driver.check(eventCreate(&event, 2), "cuEventCreate")
        guard let event else { throw LibraryError("[cuEventCreate] returned no event") }
        return event
    }

    /// Marks the point the stream has reached: the event completes when the work queued before it has.
    func record(_ event: snn_CUevent) throws {
        try makeCurrent()
        try driver.check(eventRecord(event, stream), "cuEventRecord")
    }

    /// Waits until `event` has completed.
    func wait(for event: snn_CUevent) throws {
        try makeCurrent()
        try driver.check(eventSynchronize(event), "cuEventSynchronize")
    }

    func destroy(_ event: snn_CUevent) {
        _ = ctxSetCurrent(context)
        _ = eventDestroy(event)
    }

    /// Loads a CUBIN and finds its kernels by name.
    public func loadModule(_ cubin: [UInt8]) throws -> CUDAModule {
        try makeCurrent()
        var module: snn_CUmodule?
        try cubin.withUnsafeBytes { try driver.check(moduleLoadData(&module, $0.baseAddress), "cuModuleLoadData") }
        guard let module else { throw LibraryError("[cuModuleLoadData] no module") }
        return CUDAModule(device: self, module: module)
    }

    /// Queues `function` on the stream over `grid` blocks of `block` threads; `cooperative`:
    /// with `cuLaunchCooperativeKernel`, all blocks resident at once (at most
    /// ``residentBlocks(_:block:)``), so that they may wait for each other.
    public func launch(_ function: CUDAFunction, grid: UInt32, block: UInt32, cooperative: Bool = false,
                       _ arguments: [KernelArgument]) throws {
        // Each argument in its own 8-byte aligned slot; the driver reads them through an array
        // of pointers.
        let sizes = arguments.map { ($0.byteCount + 7) / 8 * 8 }
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(sizes.reduce(0, +), 8), alignment: 8)
        defer { slots.deallocate() }
        var pointers: [UnsafeMutableRawPointer?] = []
        var at = 0
        for (argument, size) in zip(arguments, sizes) {
            let slot = slots + at
            switch argument {
            case .buffer(let b): slot.storeBytes(of: b?.address ?? 0, as: snn_CUdeviceptr.self)
            case .address(let a): slot.storeBytes(of: a, as: snn_CUdeviceptr.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            case .double(let v): slot.storeBytes(of: v, as: Double.self)
            case .bytes(let b): b.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            pointers.append(slot)
            at += size
        }
        try makeCurrent()
        try pointers.withUnsafeMutableBufferPointer { params in
            if cooperative {
                let result = launchCooperativeKernel(function.function, grid, 1, 1, block, 1, 1, 0, stream, params.baseAddress)
                if Self.cooperativeRefusals.contains(result) {
                    throw CooperativeLaunchRefused(message: "[cuLaunchCooperativeKernel(\(function.name))] \(driver.message(for: result))")
                }
                try driver.check(result, "cuLaunchCooperativeKernel(\(function.name))")
            } else {
                try driver.check(launchKernel(function.function, grid, 1, 1, block, 1, 1, 0, stream, params.baseAddress, nil),
                                 "cuLaunchKernel(\(function.name))")
            }
        }
        withExtendedLifetime(arguments) {}
    }

    /// What `cuLaunchCooperativeKernel` returns when the GPU or its driver will not run such a
    /// launch (rather than that it failed): `CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE`,
    /// `CUDA_ERROR_NOT_PERMITTED`, `CUDA_ERROR_NOT_SUPPORTED`.
    static let cooperativeRefusals: Set<snn_CUresult> = [720, 800, 801]

    /// A cooperative launch the GPU would not run; nothing was queued.
    public struct CooperativeLaunchRefused: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The most blocks of `block` threads of `function` the GPU holds at once: the largest grid
    /// a cooperative launch of it may have.
    public func residentBlocks(_ function: CUDAFunction, block: Int) throws -> Int {
        try makeCurrent()
        var perMultiprocessor: Int32 = 0
        try driver.check(occupancyMaxActiveBlocks(&perMultiprocessor, function.function, Int32(block), 0),
                         "cuOccupancyMaxActiveBlocksPerMultiprocessor(\(function.name))")
        return Int(perMultiprocessor) * multiprocessors
    }
}

/// Device memory from ``CUDADevice/allocate(bytes:)``.
public final class DeviceBuffer: @unchecked Sendable {
    public let address: snn_CUdeviceptr
    public let bytes: Int
    private let device: CUDADevice

    init(device: CUDADevice, address: snn_CUdeviceptr, bytes: Int) {
        (self.device, self.address, self.bytes) = (device, address, bytes)
    }

    deinit { device.free(address) }
}

/// A loaded module.
public final class CUDAModule: @unchecked Sendable {
    let device: CUDADevice
    let module: snn_CUmodule

    init(device: CUDADevice, module: snn_CUmodule) { (self.device, self.module) = (device, module) }

    /// The kernel `name` (an `extern "C"` name).
    public func function(_ name: String) throws -> CUDAFunction {
        var function: snn_CUfunction?
        try device.driver.check(device.moduleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
        guard let function else { throw LibraryError("[cuModuleGetFunction] no \(name)") }
        return CUDAFunction(name: name, function: function, module: self)
    }
}

/// A kernel of a loaded module.
public struct CUDAFunction: @unchecked Sendable {
    public let name: String
    let function: snn_CUfunction
    let module: CUDAModule
}

/// One kernel parameter: a device buffer (or null), a raw device address, a scalar of the
/// kernel's C type, or a struct passed by value as its bytes (laid out as the kernel's C
/// struct, at most 8-byte aligned).
public enum KernelArgument {
    case buffer(DeviceBuffer?)
    case address(snn_CUdeviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    case double(Double)
    case bytes([UInt8])

    var byteCount: Int {
        switch self {
        case .buffer, .address, .int64, .double: return 8
        case .int32, .float: return 4
        case .bytes(let b): return max(b.count, 1)
        }
    }
}
