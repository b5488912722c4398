import Foundation
import SNNTestSupport
import Testing

private let check = ["bench", "allreduce", "--check", "--sizes", "4096,1e6", "--iterations", "2"]

@Suite("snn bench allreduce under mpirun", .serialized)
struct BenchAllReduceTests {
    @Test("2 and 4 ranks: every rank's sum is right, and rank 0 prints one row per size", arguments: [2, 4])
    func sums(ranks: Int) throws {
        guard let result = try MPIRun.mpirun(ranks, check) else { return }
        #expect(result.status == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("all-reduce: sum of float32 in place, \(ranks) ranks, MPI (Open MPI v") })
        #expect(lines.contains { $0.contains("bytes") && $0.contains("busbw (GB/s)") })
        for (bytes, elements) in [(4096, 1024), (1_000_000, 250_000)] {
            let row = lines.first { $0.split(separator: " ").prefix(2) == ["\(bytes)", "\(elements)"] }
            #expect(row.map { $0.split(separator: " ").count == 5 } == true, "no row for \(bytes) bytes in:\n\(result.output)")
        }
        #expect(lines.contains("check passed: every element of every rank's sum is \(ranks * (ranks + 1) / 2) (the sum of rank+1 "
                               + "over \(ranks) ranks); float64 sums and a broadcast from rank \(ranks - 1) agree too"), "\(result.output)")
        #expect(lines.filter { $0.hasPrefix("check passed") }.count == 1, "only rank 0 prints")
    }

    @Test("--device cuda: buffers in each rank's (emulated) GPU memory, summed by NCCL (emulated), or through host memory without it",
          arguments: [true, false])
    func onGPU(nccl: Bool) throws {
        let environment = try EmulatedCUDADriver.environment().merging(nccl ? ["SNN_EMULATED_NCCL_TRACE": "1"] : ["SNN_NCCL": "0"]) { $1 }
        guard let result = try MPIRun.mpirun(2, ["bench", "allreduce", "--device", "cuda", "--check", "--sizes", "4096,40004",
                                                 "--iterations", "2"], environment: environment, timeout: 120) else { return }
        #expect(result.status == 0 && result.output.contains("check passed: every element of every rank's sum is 3"), "\(result.output)")
        let carrier = nccl ? "buffers on each rank's GPU (rank 0 on cuda:0), summed on the GPUs by NCCL 2.21.5"
                           : "buffers on each rank's GPU (rank 0 on cuda:0), summed through host memory (no NCCL: SNN_NCCL=0)"
        #expect(result.output.contains("all-reduce: sum of float32 in place, 2 ranks, \(carrier); "), "\(result.output)")
        // Through NCCL, on both ranks: 2 sizes × (2 warm-up + 2 timed) all-reduces, and the broadcast.
        for rank in 0..<2 {
            let summed = result.output.components(separatedBy: "emulated NCCL: rank \(rank) summed ").count - 1
            #expect(summed == (nccl ? 8 : 0), "rank \(rank): \(summed) all-reduces through NCCL")
            #expect(result.output.contains("emulated NCCL: rank \(rank) received 10004 bytes from rank 1") == nccl, "\(result.output)")
        }
    }

    @Test("buffers longer than one MPI call are split, on 3 ranks")
    func chunks() throws {
        // 10,001 floats in calls of 999: ten full calls and a short one.
        let arguments = ["bench", "allreduce", "--check", "--sizes", "4096,40004", "--iterations", "2", "--chunk-elements", "999"]
        guard let result = try MPIRun.mpirun(3, arguments) else { return }
        #expect(result.status == 0 && result.output.contains("check passed: every element of every rank's sum is 6"), "\(result.output)")
    }

    @Test("a rank that fails ends every rank (MPI_Abort), naming itself")
    func failingRank() throws {
        guard let result = try MPIRun.mpirun(4, check + ["--fail-rank", "1"]) else { return }
        #expect(result.status != 0)
        #expect(result.output.contains("snn bench allreduce: rank 1 of 4 failed: failure injected by --fail-rank 1"), "\(result.output)")
        #expect(result.seconds < 20)
    }

    @Test("a rank killed in the middle ends the job, and mpirun names it")
    func killedRank() throws {
        guard let result = try MPIRun.mpirun(4, check + ["--crash-rank", "2"]) else { return }
        #expect(result.status != 0)
        #expect(result.output.contains("rank 2") && result.output.contains("signal 9"), "\(result.output)")
        #expect(result.seconds < 20)
    }

    @Test("MPICH under its Hydra launcher (when MPICH is installed: apt-get install mpich)",
          .enabled(if: MPIRun.onPath("mpiexec.mpich") != nil, "MPICH's mpiexec.mpich is not installed; Open MPI is what make test installs"))
    func mpich() throws {
        guard let launcher = MPIRun.onPath("mpiexec.mpich") else { return }
        let result = try MPIRun.run(launcher, ["-n", "3", SNNBinary.executable.path] + check)
        #expect(result.status == 0 && !result.timedOut, "\(result.output)")
        #expect(result.output.contains("3 ranks, MPI (MPICH ") && result.output.contains("check passed"), "\(result.output)")
        // The wrong MPI for the launcher: each process would run MPI alone; refused, naming both.
        let libraries = ["/usr/lib/x86_64-linux-gnu/libmpich.so.12", "/usr/lib/aarch64-linux-gnu/libmpich.so.12"]
        guard let mpich = libraries.first(where: { FileManager.default.fileExists(atPath: $0) }) else { return }
        guard let wrong = try MPIRun.mpirun(2, check, environment: ["SNN_MPI_LIBRARY": mpich]) else { return }
        #expect(wrong.status != 0)
        // Whichever rank reports first (rank 0 or 1) names itself.
        #expect(wrong.output.contains("says rank 0 of 1, but the launcher (openmpi) says rank "), "\(wrong.output)")
        #expect(wrong.output.contains(" of 2: this MPI is not the one that launched the job"), "\(wrong.output)")
    }
}
