import CDNNL
import Foundation
import SNNTensor

/// Convolution through oneDNN: one plan per problem (shapes, bias, stride, padding, dilation,
/// groups) holding the forward, backward-data and backward-weights primitives and the
/// reorders between our NCHW tensors and the blocked layouts oneDNN chose. Inputs of spikes
/// go to ``SpikeConv`` and 3×3 convolutions of stride 1 and padding 1 to ``WinogradConv`` where
/// those pay.
///
/// Weights are reordered on every call rather than cached: the optimiser updates them in
/// place, and a tensor carries no version counter a cache could key on. For the benchmark
/// layer the weight reorder is 0.6 MB, a few percent of the activation reorders.
extension CPUBackend {
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters) -> Tensor {
        conv2d(x, weight: weight, bias: bias, p, algorithm: .selected)
    }

    public func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters) -> Tensor {
        conv2dBackwardData(gradOutput, weight: weight, inputShape: inputShape, p, algorithm: .selected)
    }

    public func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                                     _ p: Conv2dParameters) -> (weight: Tensor, bias: Tensor?) {
        conv2dBackwardWeight(gradOutput, input: input, weightShape: weightShape, withBias: withBias, p, algorithm: .selected)
    }

    /// `conv2d` with an explicit algorithm policy (tests exercise each one).
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2dParameters, algorithm: ConvAlgorithm) -> Tensor {
        guard computesNatively("conv2d", x, weight) else { return reference.conv2d(x, weight: weight, bias: bias, p) }
        let spikes = x  // contiguousData() copies would lose the spike mark
        let (x, weight, bias) = (x.contiguousData(), weight.contiguousData(), bias?.contiguousData())
        func oneDNN() -> Tensor {
            let y = Tensor.empty(ConvPlan.outputShape(x.shape, weight.shape, p), device: .cpu)
            DNNL.locked {
                let plan = ConvPlan.find(x.shape, weight.shape, p, algorithm)
                if let bias {
                    plan.forwardWithBias.run(inputs: [DNNL.raw(x), DNNL.raw(weight), DNNL.raw(bias)], outputs: [DNNL.raw(y)])
                } else {
                    plan.forward.run(inputs: [DNNL.raw(x), DNNL.raw(weight)], outputs: [DNNL.raw(y)])
                }
            }
            return y
        }
        let winograd = WinogradConv.chosen(
            .forward, input: x.shape, weight: weight.shape, p, algorithm,
            timeOneDNN: { _ = oneDNN() },
            timeWinograd: { _ = WinogradConv.forward(x, weight: weight, bias: bias) })
        let limit = winograd ? SpikeConv.maximumDensityBesideWinograd : SpikeConv.maximumDensity
        if algorithm == .selected, let y = SpikeConv.forward(spikes, weight: weight, bias: bias, p, densityLimit: limit) { return y }
        return winograd ? WinogradConv.forward(x, weight: weight, bias: bias) : oneDNN()
    }

    /// `conv2dBackwardData` with an explicit algorithm policy.
    func conv2dBackwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], _ p: Conv2dParameters,
                            algorithm: ConvAlgorithm) -> Tensor {
        guard computesNatively("conv2d", gradOutput, weight) else {
            return reference.conv2dBackwardData(gradOutput, weight: weight, inputShape: inputShape, p)
        }
        let (gy, weight) = (gradOutput.contiguousData(), weight.contiguousData())
        func oneDNN() -> Tensor {
            let gx = Tensor.empty(inputShape, device: .cpu)
            DNNL.locked {
                let plan = ConvPlan.find(inputShape, weight.shape, p, algorithm)
                plan.backwardData.run(inputs: [DNNL.raw(gy), DNNL.raw(weight)], outputs: [DNNL.raw(gx)])
            }
            return gx
        }
        let winograd = WinogradConv.chosen(
            .backwardData, input: inputShape, weight: weight.shape, p, algorithm,
            timeOneDNN: { _ = oneDNN() },
            timeWinograd: { _ = WinogradConv.backwardData(gy, weight: weight, inputShape: inputShape) })
        return winograd ? WinogradConv.backwardData(gy, weight: weight, inputShape: inputShape) : oneDNN()
    }

    /// `conv2dBackwardWeight` with an explicit algorithm policy.
    func conv2dBackwardWeight(_ gradOutput: Tensor, input: Tensor, weightShape: [Int], withBias: Bool,
                              _ p: Conv2dParameters, algorithm: ConvAlgorithm) -> (weight: Tensor, bias: Tensor?) {
        guard computesNatively("conv2d", gradOutput, input) else {
            return reference.conv2dBackwardWeight(gradOutput, input: input, weightShape: weightShape, withBias: withBias, p)
        }
        let spikes = input  // contiguousData() copies would lose the spike mark
        let (gy, x) = (gradOutput.contiguousData(), input.contiguousData())
        func oneDNN() -> (weight: Tensor, bias: Tensor?) {
            let gw = Tensor.empty(weightShape, device: .cpu)
            let gb = withBias ? Tensor.empty([weightShape[0]], device: .cpu) : nil
            DNNL.locked {
                let plan = ConvPlan.find(x.shape, weightShape, p, algorithm)
                if let gb {
                    plan.backwardWeightsWithBias.run(inputs: [DNNL.raw(x), DNNL.raw(gy)], outputs: [DNNL.raw(gw), DNNL.raw(gb)])
                } else {
                    plan.backwardWeights.run(inputs: [DNNL.raw(x), DNNL.raw(gy)], outputs: [DNNL.raw(gw)])
                }
            }
            return (gw, gb)
        }
        let winograd = WinogradConv.chosen(
            .backwardWeights, input: x.shape, weight: weightShape, p, algorithm,
            timeOneDNN: { _ = oneDNN() },
            timeWinograd: { _ = WinogradConv.backwardWeight(gy, input: x, weightShape: weightShape, withBias: withBias) })
        let limit = SpikeConv.backwardDensityLimit(p, besideWinograd: winograd)
        if algorithm == .selected,
           let g = SpikeConv.backwardWeight(gy, input: spikes, weightShape: weightShape, withBias: withBias, p, densityLimit: limit) {
            return g
        }
        return winograd ? WinogradConv.backwardWeight(gy, input: x, weightShape: weightShape, withBias: withBias) : oneDNN()
    }

    /// The oneDNN implementations (forward, backward-data, backward-weights) a problem runs
    /// on, e.g. `jit_wino_4x3:avx512_core`; for tests and benchmarks.
    func conv2dImplementations(inputShape: [Int], weightShape: [Int], _ p: Conv2dParameters,
                               algorithm: ConvAlgorithm = .selected) -> [String] {
        DNNL.locked {
            let plan = ConvPlan.find(inputShape, weightShape, p, algorithm)
            return [plan.forward, plan.backwardData, plan.backwardWeights].map(\.primitive.implementation)
        }
    }
}

/// Which convolution algorithm runs, from `SNN_CONV_ALGORITHM`; ``WinogradConv/chosen`` decides
/// where SwiftSNN's own Winograd runs in oneDNN's place:
/// - `auto` (default): SwiftSNN's Winograd takes the 3×3 convolutions of stride 1 and padding 1
///   with at least 16 channels in and out, in all three directions (about 350–480 GFLOP/s-
///   equivalent on 2 cores for the benchmark layer, N 64, 128→128, 16×16, where oneDNN's direct
///   gives 150–230); oneDNN decides everything else. On AVX-512 oneDNN has a Winograd F(4×4, 3×3)
///   of its own for forward and backward-data (about 400–630 on the same cores, a little faster
///   than SwiftSNN's on 512 channels in isolation), but in whole training steps it ran no faster
///   and held half as much memory again (its scratchpad and blocked-layout reorders), so it
///   runs only where SwiftSNN's does not cover the problem.
/// - `direct`: oneDNN's direct convolution everywhere.
/// - `winograd`: SwiftSNN's Winograd wherever it covers the problem, oneDNN's wherever oneDNN 2.x
///   implements it (AVX-512, 3×3, stride 1, no dilation or groups), direct elsewhere.
/// - `timed`: as `auto` for oneDNN; SwiftSNN's Winograd runs where it measured faster, once per
///   problem (not reproducible bit for bit between runs).
///
/// Winograd results differ from direct ones by about 3e-6 (oneDNN's) to 1e-5 (SwiftSNN's, at 512
/// channels) relative to the largest output, and are deterministic; oneDNN's needs a scratchpad
/// of about 6× the input activation, SwiftSNN's 4× the weights (the filters' transforms).
enum ConvAlgorithm: String, Hashable, Sendable {
    case auto, direct, winograd, timed

    /// The policy from the environment, read once.
    static let selected: ConvAlgorithm = {
        guard let value = ProcessInfo.processInfo.environment["SNN_CONV_ALGORITHM"] else { return .auto }
        guard let a = ConvAlgorithm(rawValue: value.lowercased()) else {
            preconditionFailure("[conv2d] expected SNN_CONV_ALGORITHM to be auto, direct, winograd or timed, got \(value)")
        }
        return a
    }()
}

/// One direction of a convolution: the primitive and the boundaries of its operands.
struct ConvPass {
    let primitive: DNNLPrimitive
    /// `(DNNL_ARG_*, boundary)` of the inputs and outputs, in the order `run` takes pointers.
    let inputs: [(arg: Int32, boundary: DNNLBoundary)]
    let outputs: [(arg: Int32, boundary: DNNLBoundary)]
    /// Winograd kernels read with aligned vector loads, so unaligned inputs are copied first.
    let needsAlignment: Bool

    init(_ primitive: DNNLPrimitive, inputs: [(Int32, DNNLBoundary)], outputs: [(Int32, DNNLBoundary)]) {
        self.primitive = primitive
        self.inputs = inputs.map { (arg: $0.0, boundary: $0.1) }
        self.outputs = outputs.map { (arg: $0.0, boundary: $0.1) }
        needsAlignment = primitive.implementation.contains("wino")
    }

    private static let inputSlots: [DNNLArena.Slot] = [.operand0, .operand1, .extra]
    private static let outputSlots: [DNNLArena.Slot] = [.result, .workspace]

    /// Runs the pass on plain-layout buffers (one pointer per input and output, in order),
    /// reordering at the boundary as the plan requires. Call with ``DNNL/lock`` held.
    func run(inputs plainInputs: [UnsafeMutableRawPointer], outputs plainOutputs: [UnsafeMutableRawPointer]) {
        precondition(plainInputs.count == inputs.count && plainOutputs.count == outputs.count,
                     "[conv2d] expected \(inputs.count) inputs and \(outputs.count) outputs, got \(plainInputs.count) and \(plainOutputs.count)")
        var args: [DNNLArgument] = []
        for (i, op) in inputs.enumerated() {
            args.append((op.arg, op.boundary.chosen,
                         op.boundary.enter(plainInputs[i], slot: Self.inputSlots[i], aligned: needsAlignment)))
        }
        var results: [UnsafeMutableRawPointer] = []
        for (i, op) in outputs.enumerated() {
            results.append(op.boundary.outputBuffer(plainOutputs[i], slot: Self.outputSlots[i]))
            args.append((op.arg, op.boundary.chosen, results[i]))
        }
        primitive.execute(args)
        for (i, op) in outputs.enumerated() { op.boundary.leave(results[i], into: plainOutputs[i]) }
    }
}

/// The oneDNN primitives of one convolution problem, each built on first use (inference
/// never needs the backward ones). Use with ``DNNL/lock`` held.
final class ConvPlan {
    private struct Key: Hashable {
        let input: [Int], weight: [Int], p: Conv2dParameters, algorithm: ConvAlgorithm
    }

    private static let cache = PlanCache<Key, ConvPlan>()

    /// The plan for a problem. Call with ``DNNL/lock`` held.
    static func find(_ input: [Int], _ weight: [Int], _ p: Conv2dParameters, _ algorithm: ConvAlgorithm) -> ConvPlan {
        cache.plan(Key(input: input, weight: weight, p: p, algorithm: algorithm)) { ConvPlan(input, weight, p, algorithm) }
    }

    /// `[N, O, Ho, Wo]` (PyTorch's output-size formula).
    static func outputShape(_ input: [Int], _ weight: [Int], _ p: Conv2dParameters) -> [Int] {
        [input[0], weight[0],
         Conv2dParameters.outputSize(input[2], kernel: weight[2], stride: p.strideH, padding: p.padH, dilation: p.dilationH),
         Conv2dParameters.outputSize(input[3], kernel: weight[3], stride: p.strideW, padding: p.padW, dilation: p.dilationW)]
    }

    private let src: [Int], dst: [Int], weights: [Int]
    private let userSrc: dnnl_memory_desc_t, userWeights: dnnl_memory_desc_t, userDst: dnnl_memory_desc_t
    private let userBias: dnnl_memory_desc_t
    private let strides: [Int64], dilates: [Int64], padding: [Int64]
    private let algorithm: dnnl_alg_kind_t

    private init(_ input: [Int], _ weight: [Int], _ p: Conv2dParameters, _ policy: ConvAlgorithm) {
        src = input
        dst = ConvPlan.outputShape(input, weight, p)
        // Grouped weights are [g, O/g, C/g, kh, kw] in oneDNN (goihw): the same bytes as ours.
        weights = p.groups == 1 ? weight : [p.groups, weight[0] / p.groups] + weight[1...]
        userSrc = DNNL.md(src, dnnl_nchw)
        userWeights = DNNL.md(weights, p.groups == 1 ? dnnl_oihw : dnnl_goihw)
        userDst = DNNL.md(dst, dnnl_nchw)
        userBias = DNNL.md([weight[0]], dnnl_a)
        strides = DNNL.dims([p.strideH, p.strideW])
        // oneDNN counts dilation from 0 (no gaps), PyTorch from 1.
        dilates = DNNL.dims([p.dilationH - 1, p.dilationW - 1])
        // Equal padding on both sides makes oneDNN's output size PyTorch's floor formula.
        padding = DNNL.dims([p.padH, p.padW])
        switch policy {
        case .auto, .timed: algorithm = dnnl_convolution_auto
        case .direct: algorithm = dnnl_convolution_direct
        case .winograd: algorithm = dnnl_convolution_winograd
        }
    }

    private func any(_ shape: [Int]) -> dnnl_memory_desc_t { DNNL.md(shape, dnnl_format_tag_any) }

    /// A forward primitive (with or without bias) for `alg`, or nil where oneDNN has none.
    private func makeForward(_ alg: dnnl_alg_kind_t, bias: Bool) -> DNNLPrimitive? {
        var (s, w, d, b) = (any(src), any(weights), any(dst), userBias)
        var desc = dnnl_convolution_desc_t()
        let status = withUnsafePointer(to: &b) { [strides, dilates, padding] biasPointer in
            dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_training, alg, &s, &w, bias ? biasPointer : nil, &d,
                                                       strides, dilates, padding, padding)
        }
        // Winograd descriptors are refused outright for problems it does not cover.
        if status == dnnl_unimplemented && alg == dnnl_convolution_winograd { return nil }
        DNNL.check(status, "dnnl_dilated_convolution_forward_desc_init")
        return withUnsafePointer(to: &desc) { DNNLPrimitive($0, "convolution forward", allowUnimplemented: alg == dnnl_convolution_winograd) }
    }

    /// Creates a primitive with the selected algorithm, falling back to direct convolution
    /// where a forced Winograd has no implementation.
    private func create(_ build: (dnnl_alg_kind_t) -> DNNLPrimitive?) -> DNNLPrimitive {
        if algorithm == dnnl_convolution_winograd, let p = build(dnnl_convolution_winograd) { return p }
        let alg = algorithm == dnnl_convolution_winograd ? dnnl_convolution_direct : algorithm
        guard let p = build(alg) else { preconditionFailure("[conv2d] oneDNN has no convolution for \(src) * \(weights)") }
        return p
    }

    /// The forward primitive a backward one takes as its hint: the plan's own forward, which
    /// under a forced Winograd is Winograd where oneDNN has it. Where it fell back to direct,
    /// the backward pass falls back too (nil).
    private func hint(_ alg: dnnl_alg_kind_t) -> DNNLPrimitive? {
        alg == dnnl_convolution_winograd && !forward.needsAlignment ? nil : forward.primitive
    }

    private func forwardPass(bias: Bool) -> ConvPass {
        let prim = create { makeForward($0, bias: bias) }
        var inputs: [(Int32, DNNLBoundary)] = [
            (DNNL_ARG_SRC, DNNLBoundary(plain: userSrc, chosen: prim.md(dnnl_query_src_md), inbound: true, outbound: false)),
            (DNNL_ARG_WEIGHTS, DNNLBoundary(plain: userWeights, chosen: prim.md(dnnl_query_weights_md), inbound: true, outbound: false)),
        ]
        if bias {
            inputs.append((DNNL_ARG_BIAS, DNNLBoundary(plain: userBias, chosen: prim.md(dnnl_query_weights_md, 1), inbound: true, outbound: false)))
        }
        return ConvPass(prim, inputs: inputs,
                        outputs: [(DNNL_ARG_DST, DNNLBoundary(plain: userDst, chosen: prim.md(dnnl_query_dst_md), inbound: false, outbound: true))])
    }

    private(set) lazy var forward: ConvPass = forwardPass(bias: false)
    private(set) lazy var forwardWithBias: ConvPass = forwardPass(bias: true)

    private(set) lazy var backwardData: ConvPass = {
        let prim = create { alg in
            var (s, w, d) = (any(src), any(weights), any(dst))
            var desc = dnnl_convolution_desc_t()
            let status = dnnl_dilated_convolution_backward_data_desc_init(&desc, alg, &s, &w, &d, strides, dilates, padding, padding)
            if status == dnnl_unimplemented && alg == dnnl_convolution_winograd { return nil }
            DNNL.check(status, "dnnl_dilated_convolution_backward_data_desc_init")
            guard let h = hint(alg) else { return nil }
            return withUnsafePointer(to: &desc) {
                DNNLPrimitive($0, hint: h, "convolution backward data", allowUnimplemented: alg == dnnl_convolution_winograd)
            }
        }
        return ConvPass(prim, inputs: [
            (DNNL_ARG_DIFF_DST, DNNLBoundary(plain: userDst, chosen: prim.md(dnnl_query_diff_dst_md), inbound: true, outbound: false)),
            (DNNL_ARG_WEIGHTS, DNNLBoundary(plain: userWeights, chosen: prim.md(dnnl_query_weights_md), inbound: true, outbound: false)),
        ], outputs: [
            (DNNL_ARG_DIFF_SRC, DNNLBoundary(plain: userSrc, chosen: prim.md(dnnl_query_diff_src_md), inbound: false, outbound: true)),
        ])
    }()

    private func backwardWeightsPass(bias: Bool) -> ConvPass {
        let prim = create { alg in
            var (s, w, d, b) = (any(src), any(weights), any(dst), userBias)
            var desc = dnnl_convolution_desc_t()
            let status = withUnsafePointer(to: &b) { [strides, dilates, padding] biasPointer in
                dnnl_dilated_convolution_backward_weights_desc_init(&desc, alg, &s, &w, bias ? biasPointer : nil, &d,
                                                                    strides, dilates, padding, padding)
            }
            if status == dnnl_unimplemented && alg == dnnl_convolution_winograd { return nil }
            DNNL.check(status, "dnnl_dilated_convolution_backward_weights_desc_init")
            guard let h = hint(alg) else { return nil }
            return withUnsafePointer(to: &desc) {
                DNNLPrimitive($0, hint: h, "convolution backward weights", allowUnimplemented: alg == dnnl_convolution_winograd)
            }
        }
        var outputs: [(Int32, DNNLBoundary)] = [
            (DNNL_ARG_DIFF_WEIGHTS, DNNLBoundary(plain: userWeights, chosen: prim.md(dnnl_query_diff_weights_md), inbound: false, outbound: true)),
        ]
        if bias {
            outputs.append((DNNL_ARG_DIFF_BIAS, DNNLBoundary(plain: userBias, chosen: prim.md(dnnl_query_diff_weights_md, 1), inbound: false, outbound: true)))
        }
        return ConvPass(prim, inputs: [
            (DNNL_ARG_SRC, DNNLBoundary(plain: userSrc, chosen: prim.md(dnnl_query_src_md), inbound: true, outbound: false)),
            (DNNL_ARG_DIFF_DST, DNNLBoundary(plain: userDst, chosen: prim.md(dnnl_query_diff_dst_md), inbound: true, outbound: false)),
        ], outputs: outputs)
    }

    private(set) lazy var backwardWeights: ConvPass = backwardWeightsPass(bias: false)
    private(set) lazy var backwardWeightsWithBias: ConvPass = backwardWeightsPass(bias: true)
}
