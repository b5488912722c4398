import ArgumentParser
import Foundation
import SNNCPU
import SNNDistributed

/// Where this process stands in a data-parallel run: flags, else the launcher's environment
/// (torchrun, Slurm, Open MPI, MPICH), else a world of one.
struct DistributedOptions: ParsableArguments {
    @Option(help: "This process's rank (default: from the launcher's environment).")
    var rank: Int?
    @Option(name: [.customLong("world-size"), .customLong("world_size")], help: "Processes in the run (default: from the launcher's environment, else 1).")
    var worldSize: Int?
    @Option(name: [.customLong("master-addr"), .customLong("master_addr")], help: "Rank 0's host (default: MASTER_ADDR, or Slurm's first node).")
    var masterAddr: String?
    @Option(name: [.customLong("master-port"), .customLong("master_port")], help: "Rank 0's port (default: MASTER_PORT).")
    var masterPort: Int?

    @Option(name: [.customLong("join-timeout")], help: "Seconds the processes of a launch without MPI (torchrun, srun, --rank) have to meet before they give up.")
    var joinTimeout: Double = 120

    /// The communicator of this process (made once: MPI starts once per process).
    func communicator() throws -> any Communicator {
        if let made = DistributedOptions.made { return made }
        let made: any Communicator
        do {
            let rendezvous = try Rendezvous.resolve(rank: rank, worldSize: worldSize, masterAddress: masterAddr, masterPort: masterPort,
                                                    environment: ProcessInfo.processInfo.environment)
            guard joinTimeout > 0 else { throw CLIError("--join-timeout: expected a positive number of seconds, got \(joinTimeout)") }
            made = try Distributed.communicator(for: rendezvous, joinTimeout: joinTimeout)
            DistributedOptions.launcher = Self.launcherNames[rendezvous.launcher] ?? rendezvous.launcher
            DistributedOptions.localRank = rendezvous.localRank
            // Processes sharing a machine share its cores (unless OMP_NUM_THREADS says otherwise):
            // each taking all of them would make their thread pools fight over every core.
            if rendezvous.localWorldSize > 1 && ProcessInfo.processInfo.environment["OMP_NUM_THREADS"] == nil {
                CPUBackend.limitThreads(ProcessInfo.processInfo.activeProcessorCount / rendezvous.localWorldSize)
            }
        } catch {
            throw CLIError("\(error)")
        }
        DistributedOptions.made = made
        return made
    }

    nonisolated(unsafe) private static var made: (any Communicator)?
    /// Who started the processes, as users call it (`torchrun`, `srun`, `mpirun`), once
    /// ``communicator()`` ran.
    nonisolated(unsafe) private(set) static var launcher = "none"
    /// This process's rank among those on its machine, once ``communicator()`` ran (0 alone).
    nonisolated(unsafe) private(set) static var localRank = 0
    private static let launcherNames = ["openmpi": "mpirun", "pmix": "srun --mpi=pmix", "pmi": "mpiexec (PMI)", "slurm": "srun",
                                        "flags": "--rank/--world-size"]
}
