import CCUDA
import Foundation
import SNNLibraries
import SNNTensor

/// cuDNN's convolutions on a device's stream: forward, backward-data and backward-weights (the
/// CUDA backend's `conv2d` family where cuDNN is found), NCHW, groups included, on float32
/// operands or, under `--amp`, on bfloat16 or half ones summed in float32.
///
/// Each shape gets a ``Plan`` once: its descriptors, and per direction the algorithm chosen by
/// timing every one cuDNN offers on the real operands (`cudnnFind…AlgorithmEx`): the fastest
/// deterministic one whose workspace fits the one the search was given, so that a run repeats bit for bit.
/// Math is `CUDNN_FMA_MATH` (float32 products and sums, no TF32, as the matrix products), or
/// cuDNN's default, which allows TF32 tensor cores, where the backend allows them (`--tf32`).
final class CUDNN: @unchecked Sendable {
    let library: CUDAToolkit.Library
    private let device: CUDADevice
    private let handle: snn_cudnnHandle_t
    private let api: API
    private let lock = NSLock()
    private var plans: [Key: Plan] = [:]

    /// The three directions of a convolution.
    enum Direction: String, CaseIterable, Sendable {
        case forward, backwardData = "backward-data", backwardWeights = "backward-weights"

        /// Of the operands as the forward names them, the one this direction writes.
        func written<T>(x: T, w: T, y: T) -> T { self == .forward ? y : self == .backwardData ? x : w }
    }

    /// The algorithm a plan runs in one direction, as cuDNN's search reported it.
    struct Choice: Equatable, Sendable {
        let algorithm: UInt32
        let workspaceBytes: Int
        let milliseconds: Float
        let deterministic: Bool
    }

    /// The type of a convolution's operands (`cudnnDataType_t`); products are summed in float32
    /// whatever it is.
    enum DataType: UInt32, Sendable {
        case float = 0, half = 2, bfloat16 = 9

        /// The tensor dtype of 16-bit operands (`nil` for float32).
        var halfDType: DType? { self == .float ? nil : self == .half ? .float16 : .bfloat16 }
    }

    /// A convolution's shapes, operand type and math: what a plan is cached under.
    struct Key: Hashable {
        let input: [Int], weight: [Int], parameters: Conv2dParameters
        /// Float32 operands: TF32 tensor cores allowed (`CUDNN_DEFAULT_MATH`) or float32 products
        /// only (`CUDNN_FMA_MATH`). 16-bit operands always use the tensor cores (`CUDNN_TENSOR_OP_MATH`).
        var tf32 = false
        var type = DataType.float
    }

    /// The descriptors of one shape, and the algorithm of each direction once it has been chosen.
    final class Plan {
        let x: snn_cudnnTensorDescriptor_t, y: snn_cudnnTensorDescriptor_t
        let w: snn_cudnnFilterDescriptor_t, convolution: snn_cudnnConvolutionDescriptor_t
        /// The operands' type.
        let type: DataType
        var choices: [Direction: Choice] = [:]

        init(x: snn_cudnnTensorDescriptor_t, y: snn_cudnnTensorDescriptor_t, w: snn_cudnnFilterDescriptor_t,
             convolution: snn_cudnnConvolutionDescriptor_t, type: DataType) {
            (self.x, self.y, self.w, self.convolution, self.type) = (x, y, w, convolution, type)
        }
    }

    /// The functions called, found once.
    private struct API {
        let errorString: snn_cudnnGetErrorString_t
        let destroy: snn_cudnnDestroy_t
        let createTensor: snn_cudnnCreateTensorDescriptor_t
        let setTensor: snn_cudnnSetTensor4dDescriptor_t
        let destroyTensor: snn_cudnnDestroyTensorDescriptor_t
        let createFilter: snn_cudnnCreateFilterDescriptor_t
        let setFilter: snn_cudnnSetFilter4dDescriptor_t
        let destroyFilter: snn_cudnnDestroyFilterDescriptor_t
        let createConvolution: snn_cudnnCreateConvolutionDescriptor_t
        let setConvolution: snn_cudnnSetConvolution2dDescriptor_t
        let setGroups: snn_cudnnSetConvolutionGroupCount_t
        let setMath: snn_cudnnSetConvolutionMathType_t
        let destroyConvolution: snn_cudnnDestroyConvolutionDescriptor_t
        let findForward: snn_cudnnFindConvolutionForwardAlgorithmEx_t
        let findBackwardData: snn_cudnnFindConvolutionBackwardDataAlgorithmEx_t
        let findBackwardFilter: snn_cudnnFindConvolutionBackwardFilterAlgorithmEx_t
        let forward: snn_cudnnConvolutionForward_t
        let backwardData: snn_cudnnConvolutionBackwardData_t
        let backwardFilter: snn_cudnnConvolutionBackwardFilter_t

        init(_ s: Symbols) throws {
            errorString = try s.function("cudnnGetErrorString", snn_cudnnGetErrorString_t.self)
            destroy = try s.function("cudnnDestroy", snn_cudnnDestroy_t.self)
            createTensor = try s.function("cudnnCreateTensorDescriptor", snn_cudnnCreateTensorDescriptor_t.self)
            setTensor = try s.function("cudnnSetTensor4dDescriptor", snn_cudnnSetTensor4dDescriptor_t.self)
            destroyTensor = try s.function("cudnnDestroyTensorDescriptor", snn_cudnnDestroyTensorDescriptor_t.self)
            createFilter = try s.function("cudnnCreateFilterDescriptor", snn_cudnnCreateFilterDescriptor_t.self)
            setFilter = try s.function("cudnnSetFilter4dDescriptor", snn_cudnnSetFilter4dDescriptor_t.self)
            destroyFilter = try s.function("cudnnDestroyFilterDescriptor", snn_cudnnDestroyFilterDescriptor_t.self)
            createConvolution = try s.function("cudnnCreateConvolutionDescriptor", snn_cudnnCreateConvolutionDescriptor_t.self)
            setConvolution = try s.function("cudnnSetConvolution2dDescriptor", snn_cudnnSetConvolution2dDescriptor_t.self)
            setGroups = try s.function("cudnnSetConvolutionGroupCount", snn_cudnnSetConvolutionGroupCount_t.self)
            setMath = try s.function("cudnnSetConvolutionMathType", snn_cudnnSetConvolutionMathType_t.self)
            destroyConvolution = try s.function("cudnnDestroyConvolutionDescriptor", snn_cudnnDestroyConvolutionDescriptor_t.self)
            findForward = try s.function("cudnnFindConvolutionForwardAlgorithmEx", snn_cudnnFindConvolutionForwardAlgorithmEx_t.self)
            findBackwardData = try s.function("cudnnFindConvolutionBackwardDataAlgorithmEx",
                                              snn_cudnnFindConvolutionBackwardDataAlgorithmEx_t.self)
            findBackwardFilter = try s.function("cudnnFindConvolutionBackwardFilterAlgorithmEx",
                                                snn_cudnnFindConvolutionBackwardFilterAlgorithmEx_t.self)
            forward = try s.function("cudnnConvolutionForward", snn_cudnnConvolutionForward_t.self)
            backwardData = try s.function("cudnnConvolutionBackwardData", snn_cudnnConvolutionBackwardData_t.self)
            backwardFilter = try s.function("cudnnConvolutionBackwardFilter", snn_cudnnConvolutionBackwardFilter_t.self)
        }
    }

    /// A handle bound to `device`'s stream.
    ///
    /// - Throws: ``LibraryError`` naming a missing function (a cuDNN without the convolution
    ///   API) or the call that failed.
    init(_ library: CUDAToolkit.Library, device: CUDADevice) throws {
        self.library = library
        self.device = device
        let symbols = library.symbols
        api = try API(symbols)
        let create = try symbols.function("cudnnCreate", snn_cudnnCreate_t.self)
        let setStream = try symbols.function("cudnnSetStream", snn_cudnnSetStream_t.self)
        try device.makeCurrent()
        var handle: snn_cudnnHandle_t?
        try CUDNN.check(create(&handle), "cudnnCreate", api)
        guard let handle else { throw LibraryError("[cudnnCreate] returned no handle") }
        self.handle = handle
        try CUDNN.check(setStream(handle, device.stream), "cudnnSetStream", api)
    }

    deinit {
        plans.values.forEach(destroy)
        _ = api.destroy(handle)
    }

    private func destroy(_ plan: Plan) {
        _ = api.destroyTensor(plan.x)
        _ = api.destroyTensor(plan.y)
        _ = api.destroyFilter(plan.w)
        _ = api.destroyConvolution(plan.convolution)
    }

    /// Whether cuDNN takes this convolution: every size within its 32-bit ints.
    static func accepts(input: [Int], weight: [Int], output: [Int]) -> Bool {
        (input + weight + output).allSatisfy { $0 <= Int(Int32.max) } && ShapeUtil.count(input) <= Int(Int32.max)
            && ShapeUtil.count(output) <= Int(Int32.max)
    }

    /// The plan of a shape, made on first use.
    func plan(_ key: Key, output: [Int]) throws -> Plan {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[key] { return plan }
        try device.makeCurrent()
        let i32 = { (values: [Int]) in values.map { Int32($0) } }
        var (x, y, w, c): (snn_cudnnTensorDescriptor_t?, snn_cudnnTensorDescriptor_t?, snn_cudnnFilterDescriptor_t?,
                           snn_cudnnConvolutionDescriptor_t?) = (nil, nil, nil, nil)
        try check(api.createTensor(&x), "cudnnCreateTensorDescriptor")
        try check(api.createTensor(&y), "cudnnCreateTensorDescriptor")
        try check(api.createFilter(&w), "cudnnCreateFilterDescriptor")
        try check(api.createConvolution(&c), "cudnnCreateConvolutionDescriptor")
        guard let x, let y, let w, let c else { throw LibraryError("[cudnnCreate…Descriptor] returned no descriptor") }
        let plan = Plan(x: x, y: y, w: w, convolution: c, type: key.type)
        let (n, s, o, p) = (i32(key.input), i32(output), i32(key.weight), key.parameters)
        do {
            let type = key.type.rawValue
            try check(api.setTensor(x, 0, type, n[0], n[1], n[2], n[3]), "cudnnSetTensor4dDescriptor")   // NCHW
            try check(api.setTensor(y, 0, type, s[0], s[1], s[2], s[3]), "cudnnSetTensor4dDescriptor")
            try check(api.setFilter(w, type, 0, o[0], o[1], o[2], o[3]), "cudnnSetFilter4dDescriptor")
            try check(api.setConvolution(c, Int32(p.padH), Int32(p.padW), Int32(p.strideH), Int32(p.strideW), Int32(p.dilationH),
                                         Int32(p.dilationW), 1, 0), "cudnnSetConvolution2dDescriptor")   // cross-correlation, float sums
            try check(api.setGroups(c, Int32(p.groups)), "cudnnSetConvolutionGroupCount")
            // CUDNN_TENSOR_OP_MATH for 16-bit operands; for float32, CUDNN_DEFAULT_MATH (TF32 allowed) or CUDNN_FMA_MATH.
            let math: UInt32 = key.type != .float ? 1 : key.tf32 ? 0 : 3
            try check(api.setMath(c, math), "cudnnSetConvolutionMathType")
        } catch {
            destroy(plan)
            throw error
        }
        plans[key] = plan
        return plan
    }

    /// The chosen algorithm of `direction`, if it has been chosen.
    func choice(_ plan: Plan, _ direction: Direction) -> Choice? {
        lock.lock()
        defer { lock.unlock() }
        return plan.choices[direction]
    }

    /// Times every algorithm of `direction` on the operands (`x`, `w`, `y` as the forward names
    /// them; the one the direction writes is overwritten) with `workspace` bytes at `scratch`,
    /// and keeps the choice in the plan.
    ///
    /// - Throws: ``LibraryError`` when the search fails or no algorithm ran.
    func choose(_ plan: Plan, _ direction: Direction, x: snn_CUdeviceptr, w: snn_CUdeviceptr, y: snn_CUdeviceptr,
                scratch: snn_CUdeviceptr, workspace: Int) throws -> Choice {
        try device.makeCurrent()
        var results = [snn_cudnnConvolutionAlgoPerf_t](repeating: snn_cudnnConvolutionAlgoPerf_t(), count: 16)
        var returned: Int32 = 0
        let (px, pw, py, ps) = (pointer(x), pointer(w), pointer(y), pointer(scratch))
        try results.withUnsafeMutableBufferPointer { buffer in
            let out = OpaquePointer(buffer.baseAddress!)
            let count = Int32(buffer.count)
            switch direction {
            case .forward:
                try check(api.findForward(handle, plan.x, px, plan.w, pw, plan.convolution, plan.y, py, count, &returned, out, ps,
                                          workspace), "cudnnFindConvolutionForwardAlgorithmEx")
            case .backwardData:
                try check(api.findBackwardData(handle, plan.w, pw, plan.y, py, plan.convolution, plan.x, px, count, &returned, out,
                                               ps, workspace), "cudnnFindConvolutionBackwardDataAlgorithmEx")
            case .backwardWeights:
                try check(api.findBackwardFilter(handle, plan.x, px, plan.y, py, plan.convolution, plan.w, pw, count, &returned,
                                                 out, ps, workspace), "cudnnFindConvolutionBackwardFilterAlgorithmEx")
            }
        }
        let ran = results.prefix(max(0, min(Int(returned), results.count))).filter { $0.status == 0 && $0.memory <= workspace }
        guard let best = CUDNN.best(of: ran) else {
            throw LibraryError("[cudnnFind…AlgorithmEx] no \(direction.rawValue) algorithm ran for this convolution")
        }
        lock.lock()
        plan.choices[direction] = best
        lock.unlock()
        return best
    }

    /// The fastest deterministic algorithm of those that ran (cuDNN lists them fastest first),
    /// or the fastest of all when none is deterministic.
    static func best(of ran: [snn_cudnnConvolutionAlgoPerf_t]) -> Choice? {
        let sorted = ran.sorted { $0.time < $1.time }
        guard let pick = sorted.first(where: { $0.determinism == 1 }) ?? sorted.first else { return nil }
        return Choice(algorithm: pick.algo, workspaceBytes: pick.memory, milliseconds: pick.time, deterministic: pick.determinism == 1)
    }

    /// Queues `direction` with the plan's chosen algorithm: `y = conv(x, w)`, `x = conv_dataᵀ(y, w)`
    /// or `w = conv_weightᵀ(x, y)`, the written operand overwritten.
    func run(_ plan: Plan, _ direction: Direction, _ choice: Choice, x: snn_CUdeviceptr, w: snn_CUdeviceptr,
             y: snn_CUdeviceptr, scratch: snn_CUdeviceptr) throws {
        try device.makeCurrent()
        var (one, zero): (Float, Float) = (1, 0)
        let (px, pw, py, ps) = (pointer(x), pointer(w), pointer(y), pointer(scratch))
        let bytes = choice.workspaceBytes
        switch direction {
        case .forward:
            try check(api.forward(handle, &one, plan.x, px, plan.w, pw, plan.convolution, choice.algorithm, ps, bytes, &zero, plan.y, py),
                      "cudnnConvolutionForward")
        case .backwardData:
            try check(api.backwardData(handle, &one, plan.w, pw, plan.y, py, plan.convolution, choice.algorithm, ps, bytes, &zero,
                                       plan.x, px), "cudnnConvolutionBackwardData")
        case .backwardWeights:
            try check(api.backwardFilter(handle, &one, plan.x, px, plan.y, py, plan.convolution, choice.algorithm, ps, bytes, &zero,
                                         plan.w, pw), "cudnnConvolutionBackwardFilter")
        }
    }

    /// The plans made so far and their choices, for `snn bench` and tests.
    var choices: [(Key, [Direction: Choice])] {
        lock.lock()
        defer { lock.unlock() }
        return plans.map { ($0.key, $0.value.choices) }
    }

    private func pointer(_ address: snn_CUdeviceptr) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(address)) }

    private func check(_ status: snn_cudnnStatus_t, _ function: String) throws { try CUDNN.check(status, function, api) }

    /// Throws a ``LibraryError`` naming `function` and cuDNN's own description of `status`
    /// unless it is success.
    private static func check(_ status: snn_cudnnStatus_t, _ function: String, _ api: API) throws {
        guard status != 0 else { return }
        let text = api.errorString(status).map { String(cString: $0) } ?? "cuDNN status \(status)"
        throw LibraryError("[\(function)] \(text) (status \(status))")
    }
}
