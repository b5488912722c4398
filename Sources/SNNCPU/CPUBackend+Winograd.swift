import COpenMP
import CSNNKernels
import Foundation
import Synchronization
import SNNTensor

/// SwiftSNN's own Winograd F(4×4, 3×3) convolution, for all three passes of 3×3 convolutions of
/// stride 1 and padding 1 (on 2 cores about 350–480 GFLOP/s counted as direct, `snn bench ops`,
/// where oneDNN 2.6's direct convolution runs at 150–230; oneDNN has a Winograd kernel only for
/// AVX-512, and only for forward and backward-data: see ``ConvAlgorithm`` for why this one runs
/// there too).
///
/// The output is cut into 4×4 tiles. Each filter's 3×3 taps become 36 numbers (`U = G g Gᵀ`),
/// each tile's 6×6 input patch too (`V = Bᵀ d B`), and the 36 elementwise products summed over
/// input channels are 36 matrix products `M[e] = U[e] · V[e]`; `Aᵀ M A` gives the tile. That is
/// 36 multiplications per 16 outputs and input channel instead of 144. The forward and data
/// gradient products are our own kernel (`snn_winograd_multiply`, 6×16 register blocks) over
/// filter transforms packed once per call; OpenBLAS, which repacked each 1 MB `U[e]` for every
/// run, spent 8.6 % of a VGGSNN step doing so. Runs of ``tilesPerRun(tiles:threads:)`` tiles are independent:
/// threads take whole runs, the next one not yet taken, and each run's products go on that
/// thread, so the result depends neither on the thread count nor on which thread ran a run.
/// The data gradient is the same convolution of the output gradient by the transposed filters
/// turned by 180°; the weight gradient, ``backwardWeight``, sums the
/// same transforms' products over tiles.
///
/// Results differ from direct convolution's by float rounding, more than direct convolution's
/// own: about 3e-6 of the largest output at 40 input channels and 1e-5 at 512 (`WinogradTests`
/// bounds it by 2e-5 against the reference backend). Where it runs is decided by ``chosen``.
enum WinogradConv {
    /// The longest run of tiles: each run's products are `[K × C] · [C × 128]`.
    static let maximumTilesPerRun = 128

    /// Tiles per run of the forward and data-gradient passes for a problem of `tiles` tiles on
    /// `threads` threads: of 128, 64 and 32, the one whose busiest thread finishes first, a run
    /// of 64 tiles counted as 1.12 and one of 32 as 1.3 tiles of 128 each (runs of 128 ran
    /// 10–20 % faster than runs of 64 on the 256- and 512-channel layers of VGGSNN and
    /// ResNet-19, `snn bench ops`, three interleaved rounds; runs of 32 slower still). A tile's
    /// result does not depend on the run it falls in, so neither does the convolution's.
    static func tilesPerRun(tiles: Int, threads: Int) -> Int {
        let choices: [(tiles: Int, cost: Double)] = [(128, 1.0), (64, 1.12), (32, 1.3)]
        func busiest(_ run: Int) -> Int { ((tiles + run - 1) / run + threads - 1) / threads * run }
        return choices.min { Double(busiest($0.tiles)) * $0.cost < Double(busiest($1.tiles)) * $1.cost }!.tiles
    }

    /// Below this many channels on either side the GEMMs are too thin to repay the transforms
    /// (a 2- or 3-channel input layer runs at 21–30 GFLOP/s-equivalent this way).
    static let minimumChannels = 16

    /// Whether the convolution is one this implements: 3×3, stride 1, padding 1, no dilation or
    /// groups, float32.
    static func covers(input: [Int], weight: [Int], _ p: Conv2dParameters) -> Bool {
        input.count == 4 && weight.count == 4 && weight[2] == 3 && weight[3] == 3 && p.groups == 1
            && p.strideH == 1 && p.strideW == 1 && p.padH == 1 && p.padW == 1 && p.dilationH == 1 && p.dilationW == 1
            && input.allSatisfy { $0 > 0 } && weight[0] > 0 && weight[1] == input[1]
    }

    enum Direction: Hashable { case forward, backwardData, backwardWeights }

    private struct Key: Hashable {
        let direction: Direction, input: [Int], weight: [Int], algorithm: ConvAlgorithm
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var decisions: [Key: Bool] = [:]

    /// Whether a covered convolution's `direction` runs here rather than on oneDNN, decided once
    /// per problem and policy:
    /// - `direct`: never; oneDNN's direct convolution everywhere.
    /// - `winograd`: here.
    /// - `auto` (default): here when at least ``minimumChannels`` channels go in and out and the
    ///   4×4 tiles waste at most half their outputs (a rule from the measurements in the README,
    ///   the same on every run, so a seed gives the same numbers).
    /// - `timed`: here when `timeWinograd()` beats `timeOneDNN()` (each runs twice, the first time
    ///   the problem is met, the second run timed): the faster choice for this machine, but one a
    ///   busy machine can flip between runs, so runs are then not reproducible bit for bit.
    ///
    /// This holds on AVX-512 hosts too, where oneDNN has a Winograd kernel of its own for the
    /// forward and data-gradient passes: there a VGGSNN step (T=10, batch 16) held 1,485 MiB of
    /// tensors and 2,182 MiB resident with oneDNN's (its scratchpad is about 6× the input
    /// activation, plus reorders to and from its blocked layout) against 967 and 1,436 with this
    /// one, and ran no faster (`snn bench train`, README).
    static func chosen(_ direction: Direction, input: [Int], weight: [Int], _ p: Conv2dParameters,
                       _ algorithm: ConvAlgorithm, timeOneDNN: () -> Void, timeWinograd: () -> Void) -> Bool {
        guard algorithm != .direct, covers(input: input, weight: weight, p) else { return false }
        let key = Key(direction: direction, input: input, weight: weight, algorithm: algorithm)
        if let known = lock.withLock({ decisions[key] }) { return known }
        let decision: Bool
        switch algorithm {
        case .winograd: decision = true
        case .timed:
            // Each once untimed first: plans, primitives and scratch are built on first use.
            timeOneDNN()
            let oneDNN = seconds(timeOneDNN)
            timeWinograd()
            decision = seconds(timeWinograd) < oneDNN
        default: decision = pays(input: input, weight: weight)
        }
        lock.withLock { decisions[key] = decision }
        return decision
    }

    /// The default rule (see ``chosen``).
    static func pays(input: [Int], weight: [Int]) -> Bool {
        let (height, width) = (input[2], input[3])
        let tiled = ((height + 3) / 4 * 4) * ((width + 3) / 4 * 4)
        return Swift.min(weight[0], weight[1]) >= minimumChannels && 2 * height * width >= tiled
    }

    private static func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// `conv2d(x, weight, bias)` for a covered problem.
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let (x, weight, bias) = (x.contiguousData(), weight.contiguousData(), bias?.contiguousData())
        let y = Tensor.empty([x.shape[0], weight.shape[0], x.shape[2], x.shape[3]], device: .cpu)
        convolve(x, weight: weight, transposeFlip: false, bias: bias, into: y)
        return y
    }

    /// `conv2dBackwardData(gradOutput, weight)` for a covered problem with input shape `inputShape`.
    static func backwardData(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int]) -> Tensor {
        let (gy, weight) = (gradOutput.contiguousData(), weight.contiguousData())
        let gx = Tensor.empty(inputShape, device: .cpu)
        convolve(gy, weight: weight, transposeFlip: true, bias: nil, into: gx)
        return gx
    }

    /// Tiles per step of the weight gradient: the products `[K × P] · [P × C]` sum over P tiles,
    /// so longer steps make fuller GEMMs. Both this and ``maximumTilesPerRun`` stay within what one call
    /// of the C transforms takes, `SNN_WINOGRAD_MAX_TILES`.
    static let tilesPerGradientStep = 128

    /// Floats of workspace every direction of a problem with `channels` inputs and outputs in
    /// all takes: the largest any needs, so that the three directions of a layer reuse one block
    /// of the allocator's cache instead of holding three (ResNet-19's peak memory grew by a
    /// third less). Forward and data gradient: per thread a run's input transforms and products
    /// (`36·channels·128` at most) and scratch (`72·128`); weight gradient: a step's transforms
    /// (`36·channels·128`) and per-thread scratch (`72·128`) and packed transforms.
    static func workspaceFloats(channels: Int, threads: Int) -> Int {
        let pack = Int(snn_winograd_gradient_pack_floats(Int32(tilesPerGradientStep)))
        return Swift.max(threads * (36 * channels + 72) * maximumTilesPerRun,
                         36 * channels * tilesPerGradientStep + threads * (72 * tilesPerGradientStep + pack))
    }

    /// `conv2dBackwardWeight(gradOutput, input: x)` for a covered problem: per 4×4 tile the
    /// gradient of the 3×3 filter is `Gᵀ [(A dY Aᵀ) ⊙ (Bᵀ d B)] G` (the adjoint of the forward
    /// transforms), so the 36 sums over tiles are GEMMs and `G` is applied once at the end.
    ///
    /// Each step of ``tilesPerGradientStep`` tiles: every thread transforms its share of the input
    /// and gradient channels; after a barrier, thread `t` adds the products of elements
    /// `t, t + threads, …` to their sums (`snn_winograd_multiply_gradient`, our own kernel: with
    /// OpenBLAS's SGEMM, which packed both operands on every call, the products took about 45 %
    /// more time, `perf record` over ResNet-19's step); a second barrier ends the step. Each element's sum
    /// runs over the steps in order on one thread, so the result does not depend on the thread
    /// count.
    static func backwardWeight(_ gradOutput: Tensor, input x: Tensor, weightShape: [Int], withBias: Bool)
        -> (weight: Tensor, bias: Tensor?) {
        let (gy, x) = (gradOutput.contiguousData(), x.contiguousData())
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let k = weightShape[0]
        let elements = 36, step = tilesPerGradientStep
        let tiles = n * ((h + 3) / 4) * ((w + 3) / 4)
        let steps = (tiles + step - 1) / step

        // The step's transforms (input [36][C][P], gradient [36][K][P]), the sums [36][K][C]
        // and per-thread scratch.
        let threads = Swift.max(1, OpenMP.maxThreads)
        let workspace = Tensor.empty([workspaceFloats(channels: c + k, threads: threads)], device: .cpu)
        let v = workspace.pointer(as: Float.self)
        let g = v + elements * c * step
        let scratch = g + elements * k * step
        let packs = scratch + threads * 72 * step, packFloats = Int(snn_winograd_gradient_pack_floats(Int32(step)))
        let sumsStorage = Tensor.empty([elements * k * c], device: .cpu)
        let m = sumsStorage.pointer(as: Float.self)
        let px = UnsafePointer(x.pointer(as: Float.self)), pgy = UnsafePointer(gy.pointer(as: Float.self))
        let (c32, k32, h32, w32) = (Int32(c), Int32(k), Int32(h), Int32(w))
        OpenMP.parallel { thread, team in
            let work = scratch + (thread % threads) * 72 * step
            let channels = Parallel.range(thread, of: team, c), outChannels = Parallel.range(thread, of: team, k)
            for s in 0..<steps {
                let first = s * step
                let count = Swift.min(step, tiles - first)
                if !channels.isEmpty {
                    snn_winograd_input(px, c32, Int32(channels.lowerBound), Int32(channels.upperBound), h32, w32, first,
                                       Int32(count), Int32(count), v, work)
                }
                if !outChannels.isEmpty {
                    snn_winograd_gradient(pgy, k32, Int32(outChannels.lowerBound), Int32(outChannels.upperBound), h32, w32,
                                          first, Int32(count), g, work)
                }
                if team > 1 { GOMP_barrier() }
                var e = thread
                while e < elements {
                    snn_winograd_multiply_gradient(g + e * k * count, v + e * c * count, k32, c32, Int32(count),
                                                   s == 0 ? 0 : 1, m + e * k * c, packs + (thread % threads) * packFloats)
                    e += team
                }
                if team > 1 { GOMP_barrier() }
            }
        }
        let gw = Tensor.empty(weightShape, device: .cpu)
        let pw = gw.pointer(as: Float.self)
        Parallel.forEachRange(k, cost: c * elements) { range in
            snn_winograd_filter_gradient(m, k32, c32, Int32(range.lowerBound), Int32(range.upperBound), pw)
        }
        let gb = withBias ? SpikeConv.biasGradient(gy) : nil
        return withExtendedLifetime((x, gy, workspace, sumsStorage)) { (gw, gb) }
    }

    /// `y = x ⋆ g` over 4×4 tiles, `g` being `weight` (`[K][C][3][3]`) or, with `transposeFlip`,
    /// `weight` read as `[C][K][3][3]` transposed and turned.
    private static func convolve(_ x: Tensor, weight: Tensor, transposeFlip: Bool, bias: Tensor?, into y: Tensor) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let k = y.shape[1]
        let elements = 36
        let tiles = n * ((h + 3) / 4) * ((w + 3) / 4)
        let threads = Swift.max(1, OpenMP.maxThreads)
        let tilesPerRun = WinogradConv.tilesPerRun(tiles: tiles, threads: threads)
        let runs = (tiles + tilesPerRun - 1) / tilesPerRun

        // Filters' transforms [36][K][C], packed in blocks of 6 output channels, split over them.
        let uStorage = Tensor.empty([Int(snn_winograd_filter_floats(Int32(k), Int32(c)))], device: .cpu)
        let u = uStorage.pointer(as: Float.self)
        let pw = UnsafePointer(weight.pointer(as: Float.self))
        Parallel.forEachRange(k, cost: c * elements) { range in
            snn_winograd_filter(pw, Int32(k), Int32(c), transposeFlip ? 1 : 0, Int32(range.lowerBound),
                                Int32(range.upperBound), u)
        }

        // Per thread: the run's input transforms [36][C][P], products [36][K][P] and the
        // transforms' scratch; from the tensor allocator, which reuses earlier steps' blocks.
        let perThread = elements * (c + k) * tilesPerRun + 72 * tilesPerRun
        let workspace = Tensor.empty([workspaceFloats(channels: c + k, threads: threads)], device: .cpu)
        let scratch = workspace.pointer(as: Float.self)
        let px = UnsafePointer(x.pointer(as: Float.self))
        let py = y.pointer(as: Float.self)
        let pb = bias.map { UnsafePointer($0.pointer(as: Float.self)) }
        let (c32, k32, h32, w32, run32) = (Int32(c), Int32(k), Int32(h), Int32(w), Int32(tilesPerRun))
        // Each thread takes the next run not yet taken, so a thread that loses its core to
        // another process leaves its share to the others.
        let next = Atomic<Int>(0)
        OpenMP.parallel { thread, team in
            // A team smaller than planned (nested) uses the first buffers.
            let slot = thread % threads
            let v = scratch + slot * perThread
            let m = v + elements * c * tilesPerRun
            let work = m + elements * k * tilesPerRun
            while case let run = next.wrappingAdd(1, ordering: .relaxed).oldValue, run < runs {
                let first = run * tilesPerRun
                let count = Swift.min(tilesPerRun, tiles - first)
                snn_winograd_input(px, c32, 0, c32, h32, w32, first, Int32(count), run32, v, work)
                snn_winograd_multiply(u, v, k32, c32, Int32(count), run32, m)
                snn_winograd_output(m, k32, h32, w32, first, Int32(count), run32, pb, py, work)
            }
        }
        withExtendedLifetime((x, weight, bias, uStorage, workspace)) {}
    }
}
