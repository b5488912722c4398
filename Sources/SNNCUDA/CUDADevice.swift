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
    let moduleLoadData: snn_cuModuleLoadData_t
    let moduleGetFunction: snn_cuModuleGetFunction_t
    let launchKernel: snn_cuLaunchKernel_t

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
        moduleLoadData = try function("cuModuleLoadData", snn_cuModuleLoadData_t.self)
        moduleGetFunction = try function("cuModuleGetFunction", snn_cuModuleGetFunction_t.self)
        launchKernel = try function("cuLaunchKernel", snn_cuLaunchKernel_t.self)
        try driver.check(driver.initialize(0), "cuInit")
        var device: snn_CUdevice = 0
        try driver.check(driver.deviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        var context: snn_CUcontext?
        try driver.check(retain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else { throw LibraryError("[cuDevicePrimaryCtxRetain] no context for GPU \(ordinal)") }
        try driver.check(ctxSetCurrent(context), "cuCtxSetCurrent")
        var stream: snn_CUstream?
        try driver.check(streamCreate(&stream, 0), "cuStreamCreate")
        guard let stream else { throw LibraryError("[cuStreamCreate] no stream on GPU \(ordinal)") }
        (self.context, self.stream) = (context, stream)
    }

    /// Waits for everything queued on the stream.
    public func synchronize() throws { try driver.check(streamSynchronize(stream), "cuStreamSynchronize") }

    /// `bytes` of device memory, queued on the stream; freed (queued too) when the buffer goes.
    public func allocate(bytes: Int) throws -> DeviceBuffer {
        var address: snn_CUdeviceptr = 0
        try driver.check(memAllocAsync(&address, max(bytes, 1), stream), "cuMemAllocAsync")
        return DeviceBuffer(device: self, address: address, bytes: bytes)
    }

    /// Copies `values` into `buffer` (the copy is complete when this returns: the host array may
    /// go away).
    public func upload(_ values: [Float], to buffer: DeviceBuffer) throws {
        precondition(values.count * 4 <= buffer.bytes, "[CUDA] \(values.count) floats do not fit \(buffer.bytes) bytes")
        try values.withUnsafeBytes { bytes in
            try driver.check(memcpyHtoDAsync(buffer.address, bytes.baseAddress, bytes.count, stream), "cuMemcpyHtoDAsync")
            try synchronize()
        }
    }

    /// The first `count` floats of `buffer`, once the work queued before has run.
    public func download(_ buffer: DeviceBuffer, count: Int) throws -> [Float] {
        precondition(count * 4 <= buffer.bytes, "[CUDA] \(count) floats are more than \(buffer.bytes) bytes")
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBytes { bytes in
            try driver.check(memcpyDtoHAsync(bytes.baseAddress, buffer.address, bytes.count, stream), "cuMemcpyDtoHAsync")
        }
        try synchronize()
        return values
    }

    /// Loads a CUBIN and finds its kernels by name.
    public func loadModule(_ cubin: [UInt8]) throws -> CUDAModule {
        var module: snn_CUmodule?
        try cubin.withUnsafeBytes { try driver.check(moduleLoadData(&module, $0.baseAddress), "cuModuleLoadData") }
        guard let module else { throw LibraryError("[cuModuleLoadData] no module") }
        return CUDAModule(device: self, module: module)
    }

    /// Queues `function` on the stream over `grid` blocks of `block` threads.
    public func launch(_ function: CUDAFunction, grid: UInt32, block: UInt32, _ arguments: [KernelArgument]) throws {
        // Each argument in its own 8-byte slot; the driver reads them through an array of pointers.
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(arguments.count, 1) * 8, alignment: 8)
        defer { slots.deallocate() }
        var pointers: [UnsafeMutableRawPointer?] = []
        for (i, argument) in arguments.enumerated() {
            let slot = slots + 8 * i
            switch argument {
            case .buffer(let b): slot.storeBytes(of: b?.address ?? 0, as: snn_CUdeviceptr.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            }
            pointers.append(slot)
        }
        try pointers.withUnsafeMutableBufferPointer { params in
            try driver.check(launchKernel(function.function, grid, 1, 1, block, 1, 1, 0, stream, params.baseAddress, nil),
                             "cuLaunchKernel(\(function.name))")
        }
        withExtendedLifetime(arguments) {}
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

    deinit { _ = device.memFreeAsync(address, device.stream) }
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

/// One kernel parameter: a device buffer (or null), or a scalar of the kernel's C type.
public enum KernelArgument {
    case buffer(DeviceBuffer?)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
}
