import Foundation
import SNNTensor
import SNNTestSupport
import Testing

/// Data-parallel `snn train` under mpirun against one process with `--accumulate`: the same
/// micro-batches, so the same weights.
@Suite("snn train under mpirun", .serialized)
struct DistributedTrainTests {
    /// A short synthetic run's flags (one thread per process: oneDNN may sum in another order
    /// at another thread count).
    private static let run = ["train", "--synthetic-samples", "64", "--batch_size", "8", "--T", "2", "--topology", "CONVAP-4-3-1-1_L-8",
                              "--epochs", "2", "--workers", "0"]

    /// The parameters of a run's last checkpoint (batch norm's running statistics are each
    /// process's own, as in PyTorch's DDP, so they are not compared).
    private func parameters(_ folder: String, runningStatistics: Bool = false) throws -> [String: [Float]] {
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(folder)/result")
        let tensors = try SafeTensors.load("\(folder)/result/\(try #require(runs.first))/weights/last.safetensors")
        var result: [String: [Float]] = [:]
        for (key, value) in tensors where !key.hasPrefix("optimizer") && (runningStatistics || !key.contains("running_")) && !key.contains("num_batches") {
            result[key] = value.toFloats()
        }
        return result
    }

    /// Expects the last checkpoints of runs `a` and `b` to hold the same parameters (and batch
    /// norm's running statistics when asked), each within `tolerance` of its largest value.
    private func expectSameWeights(_ a: String, _ b: String, runningStatistics: Bool = false, tolerance: Float) throws {
        let (x, y) = (try parameters(a, runningStatistics: runningStatistics), try parameters(b, runningStatistics: runningStatistics))
        #expect(Set(x.keys) == Set(y.keys) && !x.isEmpty)
        if runningStatistics { #expect(x.keys.contains { $0.contains("running_var") }) }
        for (key, values) in x {
            let other = try #require(y[key])
            let scale = max(other.map { abs($0) }.max() ?? 0, 1e-12)
            let worst = zip(values, other).map { abs($0 - $1) }.max() ?? 0
            #expect(worst / scale <= tolerance, "\(key): max |Δ| / max |w| = \(worst / scale)")
        }
    }

    private func folder(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-dp-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    @Test("2 processes with batch 8 give bitwise the weights of 1 process with --accumulate 2; 4 within 1e-6 of --accumulate 4")
    func exactness() throws {
        for ranks in [2, 4] {
            let (a, b) = (folder("ranks\(ranks)"), folder("accumulate\(ranks)"))
            defer { for f in [a, b] { try? FileManager.default.removeItem(atPath: f) } }
            guard let parallel = try MPIRun.mpirun(ranks, DistributedTrainTests.run + ["--output", a], environment: ["OMP_NUM_THREADS": "1"]) else { return }
            #expect(parallel.status == 0, "\(parallel.output)")
            #expect(parallel.output.contains("data-parallel: \(ranks) processes started by mpirun over MPI"), "\(parallel.output)")
            // Rank 0 alone prints: one summary line.
            #expect(parallel.output.components(separatedBy: "summary: ").count == 2, "\(parallel.output)")
            let (status, output) = try SNNBinary.run(DistributedTrainTests.run + ["--accumulate", "\(ranks)", "--output", b],
                                                     environment: ["OMP_NUM_THREADS": "1"])
            #expect(status == 0, "\(output)")
            let (x, y) = (try parameters(a), try parameters(b))
            #expect(Set(x.keys) == Set(y.keys) && !x.isEmpty)
            for (key, values) in x {
                let other = try #require(y[key])
                if ranks == 2 {
                    #expect(values == other, "\(key) differs")
                } else {
                    let scale = max(other.map { abs($0) }.max() ?? 0, 1e-12)
                    let worst = zip(values, other).map { abs($0 - $1) }.max() ?? 0
                    #expect(Double(worst / scale) <= 1e-6, "\(key): max |Δ| / max |w| = \(worst / scale)")
                }
            }
            // The same epoch's test accuracy: evaluation is split over the processes and summed.
            // (Open MPI gives ranks a terminal: the line may follow a progress bar's escape codes.)
            let epochLines = { (text: String) in
                text.components(separatedBy: "\n").compactMap { line in line.range(of: "epoch 2/2 ").map { String(line[$0.lowerBound...]) } }
            }
            let parallelLine = try #require(epochLines(parallel.output).first)
            let singleLine = try #require(epochLines(output).first)
            func field(_ line: String, _ name: String) -> String? {
                line.components(separatedBy: "  ").first { $0.hasPrefix(name) }
            }
            #expect(field(parallelLine, "train loss") == field(singleLine, "train loss") || ranks == 4, "\(parallelLine)\n\(singleLine)")
        }
    }

    @Test("an uneven last step (batches of 8 and 3): 2 processes still equal --accumulate 2 bit for bit")
    func unevenLastStep() throws {
        let (a, b) = (folder("uneven2"), folder("unevenK"))
        defer { for f in [a, b] { try? FileManager.default.removeItem(atPath: f) } }
        // 75 training samples: 9 batches of 8 and one of 3, so the last step has 8 and 3.
        let flags = DistributedTrainTests.run.map { $0 == "64" ? "75" : $0 }
        guard let parallel = try MPIRun.mpirun(2, flags + ["--output", a], environment: ["OMP_NUM_THREADS": "1"]) else { return }
        #expect(parallel.status == 0, "\(parallel.output)")
        #expect(parallel.output.contains("75 train") && parallel.output.contains("with 1 thread each"), "\(parallel.output)")
        let (status, output) = try SNNBinary.run(flags + ["--accumulate", "2", "--output", b], environment: ["OMP_NUM_THREADS": "1"])
        #expect(status == 0, "\(output)")
        let (x, y) = (try parameters(a), try parameters(b))
        #expect(!x.isEmpty && x == y)
    }

    @Test("a resume inside an epoch with another number of processes is refused, naming both")
    func resumeAcrossWorldSizes() throws {
        let a = folder("resume")
        defer { try? FileManager.default.removeItem(atPath: a) }
        guard let first = try MPIRun.mpirun(2, DistributedTrainTests.run + ["--max-steps", "2", "--output", a],
                                           environment: ["OMP_NUM_THREADS": "1"]) else { return }
        #expect(first.status == 0, "\(first.output)")
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(a)/result")
        let checkpoint = "\(a)/result/\(try #require(runs.first))/weights/last"
        let (status, output) = try SNNBinary.run(["train", "--resume", "1", "--resume_path", checkpoint])
        #expect(status != 0)
        #expect(output.contains("written in the middle of epoch 1 (step 2) by 2 process(es) × 1 micro-batch(es) per step; 1 × 1 would map"),
                "\(output)")
        // The same product (1 process, 2 micro-batches) resumes.
        let (s2, o2) = try SNNBinary.run(["train", "--resume", "1", "--resume_path", checkpoint, "--accumulate", "2"],
                                         environment: ["OMP_NUM_THREADS": "1"])
        #expect(s2 == 0, "\(o2)")
    }

    @Test("a process that fails alone (its own --weights missing) ends the job within seconds, naming its rank")
    func oneRankFails() throws {
        guard let launcher = MPIRun.mpirunOrIssue() else { return }
        let a = folder("fails")
        defer { try? FileManager.default.removeItem(atPath: a) }
        let snn = SNNBinary.executable.path
        // MPMD: rank 0 trains, rank 1 is given weights that do not exist.
        let arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "1", snn] + DistributedTrainTests.run + ["--output", a]
            + [":", "-np", "1", snn] + DistributedTrainTests.run + ["--output", a, "--weights", "/nonexistent.safetensors"]
        let result = try MPIRun.run(launcher, arguments)
        #expect(!result.timedOut && result.seconds < 20, "\(result.output)")
        #expect(result.status != 0)
        #expect(result.output.contains("Error: rank 1 of 2: --weights: /nonexistent.safetensors: no such file"), "\(result.output)")
    }

    @Test("--sync-bn: 2 processes with batch 8 train as 1 process with batch 16 (batch norm over both batches), running statistics included")
    func syncBatchNorm() throws {
        let (a, b) = (folder("syncbn"), folder("syncbn-single"))
        defer { for f in [a, b] { try? FileManager.default.removeItem(atPath: f) } }
        guard let parallel = try MPIRun.mpirun(2, DistributedTrainTests.run + ["--sync-bn", "--output", a],
                                               environment: ["OMP_NUM_THREADS": "1"]) else { return }
        #expect(parallel.status == 0, "\(parallel.output)")
        #expect(parallel.output.contains("batch norm over all processes' batches (--sync-bn)"), "\(parallel.output)")
        let single = DistributedTrainTests.run.map { $0 == "8" ? "16" : $0 }
        let (status, output) = try SNNBinary.run(single + ["--output", b], environment: ["OMP_NUM_THREADS": "1"])
        #expect(status == 0, "\(output)")
        // Float rounding only: the statistics are summed in another order.
        try expectSameWeights(a, b, runningStatistics: true, tolerance: 2e-5)
    }

    @Test("on the (emulated) GPU: 2 processes, each on the GPU of its local rank, give the weights of 1 process with --accumulate 2, with NCCL (emulated) and through host memory",
          arguments: [true, false])
    func onGPU(nccl: Bool) throws {
        let (a, b) = (folder("gpu-\(nccl)"), folder("gpu-accumulate-\(nccl)"))
        defer { for f in [a, b] { try? FileManager.default.removeItem(atPath: f) } }
        let gpu = ["train", "--synthetic-samples", "32", "--batch_size", "8", "--T", "2", "--topology", "CONVAP-4-3-1-1_L-8",
                   "--epochs", "1", "--workers", "0", "--device", "cuda", "--amp", "0"]
        let environment = try EmulatedCUDADriver.environment().merging(nccl ? ["SNN_EMULATED_NCCL_TRACE": "1"] : ["SNN_NCCL": "0"]) { $1 }
        guard let parallel = try MPIRun.mpirun(2, gpu + ["--output", a], environment: environment, timeout: 120) else { return }
        #expect(parallel.status == 0, "\(parallel.output)")
        let sums = nccl ? "gradients summed on the GPUs by NCCL 2.21.5" : "gradients summed through host memory (no NCCL: SNN_NCCL=0)"
        #expect(parallel.output.contains("each on the GPU of its local rank (rank 0 on cuda:0), \(sums)"), "\(parallel.output)")
        // NCCL's collectives, not host copies: the parameters broadcast from rank 0 at the start,
        // and the gradients summed every step (2 steps of 2 × 8 samples), on both ranks.
        for rank in 0..<2 {
            let summed = parallel.output.components(separatedBy: "emulated NCCL: rank \(rank) summed ").count - 1
            #expect(summed == (nccl ? 2 : 0), "rank \(rank): \(summed) all-reduces through NCCL")
            #expect(parallel.output.contains("emulated NCCL: rank \(rank) received ") == nccl)
        }
        let (status, output) = try SNNBinary.run(gpu + ["--accumulate", "2", "--output", b], environment: environment)
        #expect(status == 0, "\(output)")
        try expectSameWeights(a, b, tolerance: 1e-6)
    }

    @Test("--sync-bn on the (emulated) GPU: batch norm's sums go through NCCL on the stream (no host copy), and 2 processes with batch 8 train as 1 with batch 16")
    func syncBatchNormOnGPU() throws {
        let (a, b) = (folder("gpu-syncbn"), folder("gpu-syncbn-single"))
        defer { for f in [a, b] { try? FileManager.default.removeItem(atPath: f) } }
        let gpu = ["train", "--synthetic-samples", "32", "--batch_size", "8", "--T", "2", "--topology", "CONVAP-4-3-1-1_L-8",
                   "--epochs", "1", "--workers", "0", "--device", "cuda", "--amp", "0"]
        let environment = try EmulatedCUDADriver.environment().merging(["SNN_EMULATED_NCCL_TRACE": "1"]) { $1 }
        guard let parallel = try MPIRun.mpirun(2, gpu + ["--sync-bn", "--output", a], environment: environment, timeout: 120) else { return }
        #expect(parallel.status == 0, "\(parallel.output)")
        #expect(parallel.output.contains("gradients summed on the GPUs by NCCL 2.21.5; batch norm over all processes' batches (--sync-bn)"),
                "\(parallel.output)")
        // Each of the 2 steps: the one batch norm's statistics forward and its gradient sums
        // backward, then the gradients: 3 all-reduces per step through NCCL.
        for rank in 0..<2 {
            let summed = parallel.output.components(separatedBy: "emulated NCCL: rank \(rank) summed ").count - 1
            #expect(summed == 6, "rank \(rank): \(summed) all-reduces through NCCL")
        }
        let single = gpu.map { $0 == "8" ? "16" : $0 }
        let (status, output) = try SNNBinary.run(single + ["--output", b], environment: environment)
        #expect(status == 0, "\(output)")
        try expectSameWeights(a, b, runningStatistics: true, tolerance: 2e-5)
    }

    @Test("bench train under mpirun on the (emulated) GPU: the gradients go through NCCL (emulated), and the JSON says so")
    func benchOnGPU() throws {
        let environment = try EmulatedCUDADriver.environment().merging(["SNN_EMULATED_NCCL_TRACE": "1"]) { $1 }
        guard let result = try MPIRun.mpirun(2, ["bench", "train", "--device", "cuda", "--topology", "CONVAP-4-3-1-1_L-8",
                                                 "--dataset", "synthetic", "--T", "2", "--batch_size", "4", "--steps", "1",
                                                 "--warmup", "1", "--json"], environment: environment, timeout: 120) else { return }
        #expect(result.status == 0, "\(result.output)")
        let json = try #require(result.standardOutput.split(separator: "\n").first { $0.hasPrefix("{") }, "\(result.output)")
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["processes"] as? Int == 2 && object?["gradient_sums"] as? String == "gradients summed on the GPUs by NCCL 2.21.5",
                "\(json)")
        #expect(((object?["breakdown_seconds"] as? [String: Double])?["all-reduce"] ?? -1) >= 0, "\(json)")
        for rank in 0..<2 {
            #expect(result.output.components(separatedBy: "emulated NCCL: rank \(rank) summed ").count - 1 >= 2, "\(result.output)")
        }
    }

    @Test("NCCL on one GPU process and not on the other: both sum through host memory, saying which rank lacks it and why")
    func ncclOnOneRankOnly() throws {
        guard let launcher = MPIRun.mpirunOrIssue() else { return }
        let a = folder("gpu-nccl-rank0")
        defer { try? FileManager.default.removeItem(atPath: a) }
        let flags = ["train", "--synthetic-samples", "16", "--batch_size", "8", "--T", "2", "--topology", "CONVAP-4-3-1-1_L-8",
                     "--epochs", "1", "--workers", "0", "--device", "cuda", "--amp", "0", "--output", a]
        // Rank 1 is pointed at an NCCL that is not there.
        let script = #"[ "$OMPI_COMM_WORLD_RANK" = 1 ] && export SNN_NCCL_LIBRARY=/nonexistent/libnccl.so.2; exec "$0" "$@""#
        let environment = try EmulatedCUDADriver.environment().merging(["SNN_EMULATED_NCCL_TRACE": "1"]) { $1 }
        let result = try MPIRun.run(launcher, ["--allow-run-as-root", "--oversubscribe", "-np", "2", "/bin/sh", "-c", script,
                                               SNNBinary.executable.path] + flags, environment: environment, timeout: 120)
        #expect(result.status == 0 && !result.timedOut, "\(result.output)")
        #expect(result.output.contains("gradients summed through host memory (no NCCL: rank 1 of 2: [NCCL] "
                                       + "SNN_NCCL_LIBRARY=/nonexistent/libnccl.so.2 could not be loaded"), "\(result.output)")
        #expect(!result.output.contains("emulated NCCL:"), "no rank used NCCL: \(result.output)")
    }

    @Test("torchrun's variables, no MPI launcher: 2 processes join over MPI and give bitwise the weights of --accumulate 2")
    func joinedLikeTorchrun() throws {
        let (a, b) = (folder("joined"), folder("joined-accumulate"))
        defer { for f in [a, b] { try? FileManager.default.removeItem(atPath: f) } }
        let joined = try MPIRun.joined(2, environment: ["OMP_NUM_THREADS": "1"]) { _ in DistributedTrainTests.run + ["--output", a] }
        #expect(joined.status == [0, 0] && !joined.timedOut, "\(joined.output)")
        #expect(joined.output[0].contains("data-parallel: 2 processes started by torchrun over MPI"), "\(joined.output[0])")
        #expect(!joined.output[1].contains("summary: "), "rank 1 printed: \(joined.output[1])")
        let (status, output) = try SNNBinary.run(DistributedTrainTests.run + ["--accumulate", "2", "--output", b],
                                                 environment: ["OMP_NUM_THREADS": "1"])
        #expect(status == 0, "\(output)")
        let (x, y) = (try parameters(a), try parameters(b))
        #expect(Set(x.keys) == Set(y.keys) && !x.isEmpty)
        for (key, values) in x { #expect(values == y[key], "\(key) differs") }
    }

    @Test("a joined process that fails alone stops the other within seconds, each naming the rank")
    func joinedRankFails() throws {
        let a = folder("joined-fails")
        defer { try? FileManager.default.removeItem(atPath: a) }
        let joined = try MPIRun.joined(2, environment: ["OMP_NUM_THREADS": "1"]) { rank in
            DistributedTrainTests.run + ["--output", a] + (rank == 1 ? ["--weights", "/nonexistent.safetensors"] : [])
        }
        #expect(!joined.timedOut && joined.seconds < 20, "\(joined.output)")
        #expect(joined.status[0] != 0 && joined.status[1] != 0)
        #expect(joined.output[1].contains("Error: rank 1 of 2: --weights: /nonexistent.safetensors: no such file"), "\(joined.output[1])")
        #expect(joined.output[0].contains("rank 0 of 2: rank 1 stopped without finishing"), "\(joined.output[0])")
    }

    @Test("a rank that never comes: rank 0 names it by the deadline")
    func joinedRankMissing() throws {
        let port = try MPIRun.freePortPair()
        let (status, output) = try SNNBinary.run(DistributedTrainTests.run + ["--output", folder("missing"), "--join-timeout", "2"],
                                                 environment: ["RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                                               "MASTER_PORT": "\(port)"])
        #expect(status != 0)
        #expect(output.contains("[MPI join] rank 0 of 2 waited 2 s on port \(port + 1): rank 1 never connected"), "\(output)")
    }

    @Test("the real launchers, where installed: torchrun --no-python and srun")
    func realLaunchers() throws {
        let a = folder("launchers")
        defer { try? FileManager.default.removeItem(atPath: a) }
        var tried = 0
        if let torchrun = MPIRun.onPath("torchrun") {
            tried += 1
            // torchrun imports torch first: from a cold page cache (after a build) that alone took
            // 56 s here, so the limit is generous; the run itself takes seconds.
            let result = try MPIRun.run(torchrun, ["--nproc_per_node", "2", "--master_port", "\(try MPIRun.freePortPair())", "--no-python",
                                                   SNNBinary.executable.path] + DistributedTrainTests.run + ["--output", a], timeout: 300)
            #expect(result.status == 0 && !result.timedOut, "\(result.output)")
            #expect(result.output.contains("data-parallel: 2 processes started by torchrun over MPI"), "\(result.output)")
        }
        if let srun = MPIRun.onPath("srun"), (try? MPIRun.run("/bin/sh", ["-c", "sinfo -h -o %t | grep -q idle"], timeout: 10))?.status == 0 {
            tried += 1
            let result = try MPIRun.run(srun, ["-n", "2", SNNBinary.executable.path] + DistributedTrainTests.run + ["--output", a],
                                        timeout: 60)
            #expect(result.status == 0 && !result.timedOut, "\(result.output)")
            #expect(result.output.contains("data-parallel: 2 processes started by srun over MPI"), "\(result.output)")
        }
        if tried == 0 { print("neither torchrun nor a Slurm cluster here: the launchers' own test did not run") }
    }
}
