import ArgumentParser
import Foundation
import SNNDistributed
import SNNTensor

/// `snn bench allreduce`: the speed of the sum all-reduce between the processes of an MPI launch.
struct BenchAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the in-place float32 sum all-reduce between the processes of an MPI launch.",
        discussion: """
            Run it under a launcher: `mpirun -np 2 snn bench allreduce`. For each size, rank 0 \
            prints the median over --iterations of rank 0's time for one in-place all-reduce \
            (every rank passes a barrier first, so all start together), after --warmup untimed \
            ones; then the algorithm bandwidth, bytes/time, and the bus bandwidth, \
            2(n-1)/n · bytes/time for n ranks, as nccl-tests define them (GB = 10^9 bytes). \
            scripts/allreduce_bench.c measures MPI_Allreduce the same way in C. With --check, rank \
            r fills its buffer with r+1 before every call and every rank verifies each element of \
            the sum n(n+1)/2; a float64 sum and a broadcast are checked too. With --device cuda, \
            each rank's buffer is in the memory of the GPU of its local rank and is summed by NCCL \
            (through host memory where a rank has no NCCL, or with SNN_NCCL=0); the time runs until \
            the GPU has finished.
            """)

    @Option(help: "Comma-separated buffer sizes in bytes, multiples of 4 (float32); 1e6 notation accepted.")
    var sizes: String = "1e6,5e7"
    @Option(help: "Timed all-reduces per size; the median is reported.")
    var iterations: Int = 20
    @Option(help: "Untimed all-reduces per size before the timed ones.")
    var warmup: Int = 2
    @Flag(help: "Fill rank r's buffer with r+1 and verify every element of the sum; exit 1 on a mismatch.")
    var check = false
    @Option(help: "Where the buffers are: cpu (summed over MPI), or cuda / cuda:N (each rank's GPU, summed by NCCL).")
    var device: String = "cpu"

    // Fault injection for the tests: a rank that fails (throws) before the first collective, a
    // rank that is killed (SIGKILL) before the first timed one, and a smaller per-call limit so
    // the split of long buffers into several MPI calls runs on small ones.
    @Option(help: ArgumentHelp("Rank that fails before the first collective (tests).", visibility: .hidden))
    var failRank: Int?
    @Option(help: ArgumentHelp("Rank killed by SIGKILL before the first timed all-reduce (tests).", visibility: .hidden))
    var crashRank: Int?
    @Option(help: ArgumentHelp("Most elements per MPI call (tests).", visibility: .hidden))
    var chunkElements: Int?

    func validate() throws {
        _ = try byteSizes()
        guard iterations >= 1 else { throw FlagError("--iterations must be at least 1, got \(iterations)") }
        guard warmup >= 0 else { throw FlagError("--warmup must be non-negative, got \(warmup)") }
        if let chunkElements, chunkElements < 1 { throw FlagError("--chunk-elements must be at least 1, got \(chunkElements)") }
        try DeviceFlag.check(device)
    }

    /// `--sizes` as whole byte counts.
    private func byteSizes() throws -> [Int] {
        try sizes.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let text = item.trimmingCharacters(in: .whitespaces)
            guard let value = Double(text), value.isFinite, value == value.rounded(), value >= 4, value <= 0x10_0000_0000 else {
                throw FlagError("--sizes takes byte counts from 4 to 2^36 such as 4096,1e6; got \"\(text)\"")
            }
            guard Int(value) % 4 == 0 else { throw FlagError("--sizes: \(text) bytes is not a whole number of float32 values") }
            return Int(value)
        }
    }

    func run() throws {
        SNN.prepare()
        let sizes = try byteSizes()
        let rendezvous = try Rendezvous.resolve()
        let communicator = try Distributed.communicator(for: rendezvous)
        if communicator.size == 1 {
            let note = "note: one process, so nothing is exchanged; run under mpirun -np 2 to measure MPI\n"
            FileHandle.standardError.write(Data(note.utf8))
        }
        if let mpi = communicator as? MPICommunicator, let chunkElements { mpi.maxElementsPerCall = chunkElements }
        do {
            let dev = try DeviceFlag.open(device, localRank: rendezvous.localRank)
            let carrier = dev.isHostMemory ? communicator.backendName
                : "buffers on each rank's GPU (rank 0 on \(dev)), " + (try GPUCollectives.attach(to: communicator, device: dev))
            try measure(communicator, sizes: sizes, on: dev, carrier: carrier)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            // A failing rank ends the job: the others may be waiting for it in a collective.
            guard communicator.size > 1, let mpi = communicator as? MPICommunicator else { throw error }
            let message = "snn bench allreduce: rank \(communicator.rank) of \(communicator.size) failed: \(error)\n"
            FileHandle.standardError.write(Data(message.utf8))
            mpi.abort(code: 1)
        }
    }

    private func measure(_ communicator: any Communicator, sizes: [Int], on device: Device, carrier: String) throws {
        let (rank, n) = (communicator.rank, communicator.size)
        if failRank == rank { throw DistributedError("failure injected by --fail-rank \(rank)") }
        if rank == 0 {
            print("all-reduce: sum of float32 in place, \(n) rank\(n == 1 ? "" : "s"), \(carrier); "
                  + "median of \(iterations) after \(warmup) warm-up")
            print(pad("bytes", 12) + pad("elements", 12) + pad("time (us)", 12) + pad("algbw (GB/s)", 14)
                  + pad("busbw (GB/s)", 14))
        }
        var wrong = check ? Double(try checkOtherCollectives(communicator, on: device)) : 0
        for bytes in sizes {
            let result = try measure(communicator, elements: bytes / 4, on: device)
            wrong += Double(result.wrong)
            let algorithmBandwidth = Double(bytes) / result.seconds / 1e9
            let busBandwidth = algorithmBandwidth * 2 * Double(n - 1) / Double(n)
            if rank == 0 {
                print(pad("\(bytes)", 12) + pad("\(bytes / 4)", 12) + pad(String(format: "%.1f", result.seconds * 1e6), 12)
                      + pad(String(format: "%.3f", algorithmBandwidth), 14) + pad(String(format: "%.3f", busBandwidth), 14))
            }
        }
        guard check else { return }
        let total = try communicator.allReduceSum([wrong])[0]
        if total > 0 {
            if rank == 0 { print("check failed: \(Int(total)) wrong elements over all ranks") }
            throw ExitCode(1)
        }
        if rank == 0 {
            print("check passed: every element of every rank's sum is \(n * (n + 1) / 2) (the sum of rank+1 over \(n) ranks); "
                  + "float64 sums and a broadcast from rank \(n - 1) agree too")
        }
    }

    /// The collectives the table does not time: a float64 sum and a broadcast from the last rank
    /// (10,007 bytes, so a lowered --chunk-elements splits it unevenly). Returns this rank's
    /// wrong values, reported on stderr.
    private func checkOtherCollectives(_ communicator: any Communicator, on device: Device) throws -> Int {
        let (rank, n) = (communicator.rank, communicator.size)
        var wrong = 0
        let sums = try communicator.allReduceSum([Double(rank + 1), 0.25])
        if sums != [Double(n * (n + 1) / 2), 0.25 * Double(n)] {
            FileHandle.standardError.write(Data("rank \(rank): float64 all-reduce gave \(sums)\n".utf8))
            wrong += 1
        }
        let root = n - 1
        var bytes = (0..<10_007).map { UInt8(truncatingIfNeeded: $0 * 7 + rank) }
        try bytes.withUnsafeMutableBytes { try communicator.broadcast($0, root: root) }
        if let index = bytes.indices.first(where: { bytes[$0] != UInt8(truncatingIfNeeded: $0 * 7 + root) }) {
            let message = "rank \(rank): broadcast from rank \(root): byte \(index) is \(bytes[index])\n"
            FileHandle.standardError.write(Data(message.utf8))
            wrong += 1
        }
        if !device.isHostMemory {
            // The same bytes as floats in GPU memory (NCCL's broadcast on a GPU).
            let floats = Tensor((0..<2_501).map { Float($0 * 7 + rank) }, shape: [2_501]).to(device)
            try communicator.broadcast(floats, root: root)
            let got = floats.toFloats()
            if let index = got.indices.first(where: { got[$0] != Float($0 * 7 + root) }) {
                let message = "rank \(rank): broadcast on \(device) from rank \(root): element \(index) is \(got[index])\n"
                FileHandle.standardError.write(Data(message.utf8))
                wrong += 1
            }
        }
        return wrong
    }

    /// Rank 0's median seconds per all-reduce of `elements` floats, and this rank's wrong
    /// elements. The buffer is in host memory for the CPU; on a GPU it is a tensor in its memory,
    /// and each time runs until the GPU has finished.
    private func measure(_ communicator: any Communicator, elements: Int, on device: Device) throws -> (seconds: Double, wrong: Int) {
        let rank = communicator.rank, n = communicator.size
        let fill = check ? Float(rank + 1) : 0
        let expected = check ? Float(n * (n + 1) / 2) : 0
        var host = [Float](repeating: fill, count: device.isHostMemory ? elements : 0)
        let (filled, onDevice) = device.isHostMemory ? (nil, nil)
            : (Tensor.full([elements], Double(fill), device: device), Tensor.zeros([elements], device: device))
        var times: [Double] = []
        var wrong = 0
        for call in 0..<(warmup + iterations) {
            if check {
                if let onDevice, let filled { onDevice.assign(filled) } else { host.withUnsafeMutableBufferPointer { $0.update(repeating: fill) } }
            }
            try device.backend.synchronize()
            if call == warmup, crashRank == rank { kill(getpid(), SIGKILL) }
            try communicator.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            if let onDevice {
                try communicator.allReduceSum(onDevice)
                try device.backend.synchronize()
            } else {
                try host.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
            }
            let end = DispatchTime.now().uptimeNanoseconds
            if call >= warmup { times.append(Double(end - start) / 1e9) }
            guard check else { continue }
            let values = onDevice?.toFloats() ?? host
            if let index = values.firstIndex(where: { $0 != expected }) {
                if wrong == 0 {
                    let message = "rank \(rank): all-reduce of \(elements) floats\(device.isHostMemory ? "" : " on \(device)"): "
                        + "element \(index) is \(values[index]), expected \(expected)\n"
                    FileHandle.standardError.write(Data(message.utf8))
                }
                wrong += values.lazy.filter { $0 != expected }.count
            }
        }
        return (Output.median(times), wrong)
    }

    private func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
