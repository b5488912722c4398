import SNNData
import SNNModels
import SNNSpiking
import SNNTensor

/// Spike firing rates per spiking layer and timestep, synaptic operations and the usual energy
/// estimate of a network on data (TRT-SPEC.md §5).
public struct SpikeActivity: Sendable, Codable {
    /// One spiking layer: its state-dict prefix (`layers.3.lif`) and its mean firing rate, overall
    /// and at each timestep, over every neuron and sample.
    public struct Layer: Sendable, Codable {
        public var name: String
        public var rate: Double
        public var perTimestep: [Double]
    }

    /// The operations of one layer of the topology per sample over all T steps: multiply-accumulates
    /// where its input is analog (the first layer), synaptic operations (accumulates, one per spike
    /// and connection) where its input is spikes.
    public struct Operations: Sendable, Codable {
        public var index: Int
        public var token: String
        /// The spiking layer whose spikes feed this one, and their rate (`nil`: analog input).
        public var input: String?
        public var inputRate: Double?
        public var macsPerTimestep: Int
        public var macs: Double
        public var synapticOperations: Double
    }

    public var layers: [Layer]
    public var operations: [Operations]
    public var samples: Int
    public var timesteps: Int

    /// Multiply-accumulates and accumulates of one sample over T steps, and of the same network
    /// as an ANN (one pass, every connection a MAC).
    public var totalMACs: Double { operations.map(\.macs).reduce(0, +) }
    public var totalSynapticOperations: Double { operations.map(\.synapticOperations).reduce(0, +) }
    public var annMACs: Double { Double(operations.map(\.macsPerTimestep).reduce(0, +)) }

    /// Energy per sample in joules: `mac` and `ac` joules per multiply-accumulate and accumulate
    /// (45 nm: 4.6 pJ and 0.9 pJ, Horowitz 2014).
    public func energy(mac: Double = 4.6e-12, ac: Double = 0.9e-12) -> (snn: Double, ann: Double) {
        (totalMACs * mac + totalSynapticOperations * ac, annMACs * mac)
    }

    /// Runs the network in evaluation mode over `batches` of `data` and measures every spiking
    /// layer; the network's mode and recording flags are restored.
    ///
    /// Each layer of the topology after the first takes the spikes of the last spiking layer
    /// before it (a block's output neuron); its synaptic operations are that rate × its MACs per
    /// timestep × T. Average-pooled spikes count as spikes, and a residual block's inner
    /// convolution as fed by the block's input: the usual estimate, not an exact count.
    public static func measure(model: SpikingNetwork, data: any LabelledDataset, batches: [ArraySlice<Int>]) throws -> SpikeActivity {
        let lifs = model.spikingLayers
        let T = model.config.timesteps
        let flags = lifs.map { ($0.value.recordsFiringRate, $0.value.recordsTimestepRates) }
        let wasTraining = model.training
        model.eval()
        for (_, l) in lifs { (l.recordsFiringRate, l.recordsTimestepRates) = (true, true) }
        defer {
            for ((_, l), f) in zip(lifs, flags) { (l.recordsFiringRate, l.recordsTimestepRates) = f }
            model.train(wasTraining)
        }
        var sums = [[Double]](repeating: [Double](repeating: 0, count: T), count: lifs.count)
        var samples = 0
        try withoutGradients {
            for indices in batches {
                let batch = try data.batch(indices, epoch: 0)
                _ = model(batch.inputs.to(model.namedParameters().first?.value.device ?? .cpu))
                // Every layer's rates in one read (on a GPU one wait a batch).
                let recorded = lifs.map { $0.value.lastSpikeMeanPerTimestep }
                var read = Tensor.read(recorded.compactMap { $0 })[...]
                for (j, perT) in recorded.map({ $0 == nil ? [] : read.popFirst() ?? [] }).enumerated() {
                    for t in 0..<min(T, perT.count) { sums[j][t] += perT[t] * Double(batch.count) }
                }
                samples += batch.count
            }
        }
        let layers = zip(lifs, sums).map { lif, s -> Layer in
            let perT = s.map { $0 / Double(max(samples, 1)) }
            return Layer(name: lif.key, rate: perT.reduce(0, +) / Double(max(perT.count, 1)), perTimestep: perT)
        }
        // The output neuron of topology layer i: the last spiking layer under `layers.i.`.
        func output(of index: Int) -> Layer? { layers.last { $0.name.hasPrefix("layers.\(index).") } }
        var operations: [Operations] = []
        var feeding: Layer?
        for row in model.summary {
            let macs = Double(row.macsPerTimestep) * Double(T)
            if row.index == 0 || feeding == nil {
                operations.append(Operations(index: row.index, token: row.token, input: nil, inputRate: nil,
                                             macsPerTimestep: row.macsPerTimestep, macs: macs, synapticOperations: 0))
            } else if let f = feeding {
                operations.append(Operations(index: row.index, token: row.token, input: f.name, inputRate: f.rate,
                                             macsPerTimestep: row.macsPerTimestep, macs: 0, synapticOperations: f.rate * macs))
            }
            if let out = output(of: row.index) { feeding = out }
        }
        return SpikeActivity(layers: layers, operations: operations, samples: samples, timesteps: T)
    }
}
