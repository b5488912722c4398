import Foundation
import SNNTensor

/// The LIF scan, batch norm fused with it, the surrogate derivative and the TRT penalty
/// (`neuron_scan.cu`, `batch_norm_neuron.cu`, `trt_regularizer.cu`). The saved state is the
/// host backends' (`SavedPotentials`, `SavedBatchNormNeuron`: a spiking residual as bytes), on
/// this device.
extension CUDABackend {
    public func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState) {
        guard let px = packed(x) else {
            let r = ReferenceBackend.shared.neuronScan(hostCopy(of: x), neuron)
            let potentials = SavedPotentials.from(r.saved, op: "neuronScan").potentials
            return (deviceCopy(of: r.spikes), SavedPotentials(deviceCopy(of: potentials), neuron))
        }
        let steps = x.shape[0], n = x.count / max(steps, 1)
        let (spikes, potentials) = (output(x.shape), output(x.shape))
        if n > 0 {
            launch("snn_neuron_scan_forward", elements: n,
                   [arg(px), arg(spikes), arg(potentials), .int64(Int64(n)), .int32(Int32(steps))]
                   + CUDAKernels.NeuronArguments(neuron).kernelArguments(backward: false))
        }
        return (spikes, SavedPotentials(potentials, neuron))
    }

    public func neuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState) -> Tensor {
        let s = SavedPotentials.from(saved, op: "neuronScan")
        guard let pg = packed(gradSpikes), s.potentials.dtype == .float32 else {
            return onHost([gradSpikes, s.potentials]) {
                $0.neuronScanBackward($1[0], saved: SavedPotentials($1[1], s.neuron))
            }
        }
        let steps = s.potentials.shape[0], n = s.potentials.count / max(steps, 1)
        let out = output(s.potentials.shape)
        if n > 0 {
            launch("snn_neuron_scan_backward", elements: n,
                   [arg(pg), arg(s.potentials), arg(out), .int64(Int64(n)), .int32(Int32(steps))]
                   + CUDAKernels.NeuronArguments(s.neuron).kernelArguments(backward: true))
        }
        return out
    }

    /// How a per-channel reduction over `[frames, C, plane]` is spread: parts of `span` frames,
    /// about ``reductionChunk`` inputs each, `splits` of them per channel, each a block of its own.
    /// One block per channel would leave most of the GPU idle (128 channels on 132
    /// multiprocessors, each with one block of 8 warps waiting on memory).
    func channelParts(frames: Int, plane: Int) -> (span: Int, splits: Int) {
        let span = Swift.max(1, Self.reductionChunk / Swift.max(plane, 1))
        return (span, Swift.max(1, (frames + span - 1) / span))
    }

    public func batchNormStatistics(_ x: Tensor) -> (mean: Tensor, variance: Tensor) {
        guard let px = packed(x) else {
            let r = ReferenceBackend.shared.batchNormStatistics(hostCopy(of: x))
            return (deviceCopy(of: r.mean), deviceCopy(of: r.variance))
        }
        let (frames, channels) = (x.shape[0], x.shape[1])
        let plane = x.count / max(frames * channels, 1)
        let (mean, variance) = (output([channels]), output([channels]))
        if channels > 0 && frames > 0 {
            let (span, splits) = channelParts(frames: frames, plane: plane)
            let partials = output([channels * splits * 2], .float64)
            launch("snn_bn_partial_statistics", blocks: channels * splits,
                   [arg(px), arg(partials), .int32(Int32(frames)), .int32(Int32(channels)), .int64(Int64(plane)),
                    .int32(Int32(span)), .int32(Int32(splits))])
            launch("snn_bn_statistics", elements: channels,
                   [arg(partials), arg(mean), arg(variance), .int32(Int32(frames)), .int32(Int32(channels)), .int64(Int64(plane)),
                    .int32(Int32(span)), .int32(Int32(splits))])
        } else if channels > 0 {
            fill(mean, with: .nan)   // no inputs: 0/0, as the reference gives
            fill(variance, with: .nan)
        }
        return (mean, variance)
    }

    public func batchNormNeuronScan(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                                    residual: Tensor?, steps: Int, _ neuron: NeuronParameters) -> (spikes: Tensor, saved: any SavedState) {
        let inputs = [x, gamma, beta, mean, variance] + (residual.map { [$0] } ?? [])
        guard let p = packed(inputs) else {
            let h = inputs.map { hostCopy(of: $0) }
            let r = ReferenceBackend.shared.batchNormNeuronScan(h[0], gamma: h[1], beta: h[2], mean: h[3], variance: h[4],
                                                                epsilon: epsilon, residual: h.count > 5 ? h[5] : nil,
                                                                steps: steps, neuron)
            return (deviceCopy(of: r.spikes), SavedBatchNormNeuron(input: x, gamma: gamma, beta: beta, mean: mean,
                                                                    variance: variance, epsilon: epsilon, residual: residual,
                                                                    steps: steps, neuron: neuron))
        }
        let (n, channels) = (x.count / max(steps, 1), x.shape[1])
        let plane = x.count / max(x.shape[0] * channels, 1)
        let spikes = output(x.shape)
        // Under --amp the input (a convolution's output) is kept in the 16-bit type, half the
        // bytes, and the neuron reads it rounded so, forward and backward alike: the backward pass
        // recomputes exactly the spikes the forward pass emitted.
        let precision = mixedPrecision
        let kept = precision.map { cast(p[0], to: $0.dtype) } ?? p[0]
        if n > 0 {
            launch("snn_bn_neuron_forward", elements: n,
                   [arg(p[0]), .int32(precision == .bf16 ? 1 : precision == .fp16 ? 2 : 0), arg(p.count > 5 ? p[5] : nil), arg(p[1]),
                    arg(p[2]), arg(p[3]), arg(p[4]), .float(Float(epsilon)), arg(spikes), .int64(Int64(n)), .int32(Int32(steps)),
                    .int32(Int32(channels)), .int64(Int64(plane))]
                   + CUDAKernels.NeuronArguments(neuron).kernelArguments(backward: false))
        }
        return (spikes, SavedBatchNormNeuron(input: kept, gamma: p[1], beta: p[2], mean: p[3], variance: p[4], epsilon: epsilon,
                                             residual: residual, steps: steps, neuron: neuron))
    }

    public func batchNormNeuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState)
        -> (input: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor?) {
        let s = SavedBatchNormNeuron.from(saved, op: "batchNormNeuronScan")
        // A residual of spikes saved as bytes is read as bytes (quantum above 0), without
        // restoring it to float32 first.
        let codes = s.residual?.compact.flatMap { $0.codes.device == device && $0.codes.isContiguous ? $0 : nil }
        // An input kept in a 16-bit type under --amp (see the forward pass) is read as it is.
        let kept = s.input.device == device && s.input.isContiguous
        let form: Int32 = !kept ? 0 : s.input.dtype == .bfloat16 ? 3 : s.input.dtype == .float16 ? 4 : 0
        let restored = codes == nil ? s.residual?.value : nil
        let others = [s.gamma, s.beta, s.mean, s.variance] + (restored.map { [$0] } ?? [])
        let packedOthers = packed([gradSpikes] + others)
        guard let packedInput = form != 0 ? s.input : packed(s.input), let packedOthers else {
            let residual = restored ?? s.residual?.value
            let inputs = [gradSpikes, s.input, s.gamma, s.beta, s.mean, s.variance] + (residual.map { [$0] } ?? [])
            let h = inputs.enumerated().map { hostCopy(of: $0.element, dtype: $0.offset == 1 && form != 0 ? .float32 : nil) }
            let hostSaved = SavedBatchNormNeuron(input: h[1], gamma: h[2], beta: h[3], mean: h[4], variance: h[5],
                                                 epsilon: s.epsilon, residual: h.count > 6 ? h[6] : nil, steps: s.steps,
                                                 neuron: s.neuron)
            let r = ReferenceBackend.shared.batchNormNeuronScanBackward(h[0], saved: hostSaved)
            return (deviceCopy(of: r.input), deviceCopy(of: r.gamma), deviceCopy(of: r.beta), r.residual.map(deviceCopy))
        }
        let p = [packedOthers[0], packedInput] + packedOthers.dropFirst() + (codes.map { [$0.codes] } ?? [])
        let x = p[1], steps = s.steps, n = x.count / max(steps, 1), channels = x.shape[1]
        let plane = x.count / max(x.shape[0] * channels, 1)
        let gradInput = output(x.shape), gradResidual = s.residual == nil ? nil : output(x.shape)
        let (sumGrad, sumGradNormalized) = (output([n]), output([n]))
        let (gradGamma, gradBeta) = (output([channels]), output([channels]))
        let common: [KernelArgument] = [arg(p[0]), arg(x), .int32(form), arg(p.count > 6 ? p[6] : nil),
                                        .float(Float(codes?.quantum ?? 0)), arg(p[2]), arg(p[3]), arg(p[4]), arg(p[5]),
                                        .float(Float(s.epsilon)), arg(gradInput), arg(gradResidual), arg(sumGrad),
                                        arg(sumGradNormalized)]
        let sizes: [KernelArgument] = [.int64(Int64(n)), .int32(Int32(steps)), .int32(Int32(channels)), .int64(Int64(plane))]
            + CUDAKernels.NeuronArguments(s.neuron).kernelArguments(backward: true)
        guard n > 0, channels > 0 else {   // no neurons: the sums are empty
            fill(gradGamma, with: 0)
            fill(gradBeta, with: 0)
            return (gradInput, gradGamma, gradBeta, gradResidual)
        }
        // The scan backwards, the channel sums and the input gradient in one launch, where the
        // GPU runs cooperative launches.
        if usesCooperativeLaunch,
           launchCooperative("snn_bn_neuron_backward_fused", elements: n, common + [arg(gradBeta), arg(gradGamma), gridBarrier()] + sizes) {
            return (gradInput, gradGamma, gradBeta, gradResidual)
        }
        launch("snn_bn_neuron_backward", elements: n, common + sizes)
        let samples = n / max(channels * plane, 1)
        launch("snn_bn_channel_sums", blocks: channels,
               [arg(sumGrad), arg(sumGradNormalized), arg(gradBeta), arg(gradGamma), .int32(Int32(samples)),
                .int32(Int32(channels)), .int64(Int64(plane))])
        inputGradient(x, form: form, gradInput, gamma: p[2], mean: p[4], variance: p[5], epsilon: s.epsilon, gradGamma: gradGamma,
                      gradBeta: gradBeta, frames: x.shape[0], channels: channels, plane: plane)
        return (gradInput, gradGamma, gradBeta, gradResidual)
    }

    public func surrogateGradient(_ u: Tensor, _ surrogate: Surrogate) -> Tensor {
        guard let pu = packed(u) else { return onHost([u]) { $0.surrogateGradient($1[0], surrogate) } }
        let parameters = CUDAKernels.NeuronArguments(NeuronParameters(tau: 2, threshold: 1, reset: .soft, surrogate: surrogate))
        let out = output(u.shape)
        if u.count > 0 {
            launch("snn_surrogate_gradient", elements: u.count,
                   [arg(pu), arg(out), .int64(Int64(u.count)), .int32(parameters.surrogate), .float(parameters.parameter)])
        }
        return out
    }

    public func trtRegularizer(_ weights: [Tensor], lambda: Double, coefficients: [Double], epsilon: Double)
        -> (value: Tensor, gradients: [Tensor]) {
        guard let contiguousWeights = packed(weights) else {
            let r = ReferenceBackend.shared.trtRegularizer(weights.map { hostCopy(of: $0) }, lambda: lambda,
                                                           coefficients: coefficients, epsilon: epsilon)
            return (deviceCopy(of: r.value), r.gradients.map(deviceCopy))
        }
        let block = 256
        let blocks = contiguousWeights.map { max(($0.count + block - 1) / block, 1) }
        let partials = output([blocks.reduce(0, +)], .float64)
        let c = constant(coefficients.map(Float.init))
        var gradients: [Tensor] = [], first = 0
        for (w, count) in zip(contiguousWeights, blocks) {
            let g = output(w.shape)
            launch("snn_trt_regularizer", blocks: count,
                   [arg(w), arg(g), .address(address(partials) + UInt64(first * 8)), .int64(Int64(w.count)), arg(c),
                    .int32(Int32(coefficients.count)), .float(Float(lambda)), .float(Float(epsilon))])
            gradients.append(g)
            first += count
        }
        let value = output([])
        launch("snn_sum_partials", blocks: 1, [arg(partials), arg(value), .int32(Int32(first))])
        return (value, gradients)
    }
}
