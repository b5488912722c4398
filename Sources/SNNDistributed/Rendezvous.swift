import Foundation

/// Where this process sits in a data-parallel job, as its launcher (or the command line) says.
///
/// ``resolve(rank:worldSize:masterAddress:masterPort:environment:)`` reads, first match wins:
/// 1. explicit flags (`--rank`, `--world-size`);
/// 2. torchrun: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`;
/// 3. Open MPI's mpirun: `OMPI_COMM_WORLD_RANK`, `_SIZE`, `_LOCAL_RANK`, `_LOCAL_SIZE`;
/// 4. PMIx (`srun --mpi=pmix`): `PMIX_RANK`, with the size and local layout from Slurm;
/// 5. PMI (MPICH's Hydra mpiexec, `srun --mpi=pmi2`): `PMI_RANK`, `PMI_SIZE`, `MPI_LOCALRANKID`,
///    `MPI_LOCALNRANKS`;
/// 6. a Slurm job step (`srun`): `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, the tasks per
///    node, and the first host of the step's node list as the master;
/// 7. nothing: a world of one (`launcher == "none"`).
///
/// The MPI launchers come before Slurm because mpirun inside an `sbatch` script starts its
/// daemons with srun, so every rank inherits a daemon's `SLURM_PROCID` (its node's index, not
/// the rank). Slurm counts only inside a job step (`SLURM_STEP_ID` set): the batch script itself
/// also has `SLURM_PROCID=0` and the job's `SLURM_NTASKS`, yet is one process.
/// A launcher that gives no local layout is taken to have started every process on one host.
public struct Rendezvous: Equatable, Sendable {
    /// This process's index, `0..<worldSize`.
    public var rank: Int
    /// The number of processes in the job.
    public var worldSize: Int
    /// This process's index among the processes on its host (picks its GPU).
    public var localRank: Int
    /// The number of processes on this host.
    public var localWorldSize: Int
    /// The host of rank 0, for launchers that rendezvous over TCP (torchrun, NCCL).
    public var masterAddress: String?
    /// The port on `masterAddress`.
    public var masterPort: Int?
    /// Who started this process: `none`, `flags`, `torchrun`, `openmpi`, `pmix`, `pmi`, `slurm`.
    public var launcher: String

    public init(rank: Int = 0, worldSize: Int = 1, localRank: Int = 0, localWorldSize: Int = 1, masterAddress: String? = nil,
                masterPort: Int? = nil, launcher: String = "none") {
        (self.rank, self.worldSize, self.localRank, self.localWorldSize) = (rank, worldSize, localRank, localWorldSize)
        (self.masterAddress, self.masterPort, self.launcher) = (masterAddress, masterPort, launcher)
    }

    /// Whether an MPI launcher started this process, so MPI itself knows the world.
    public var isMPILaunch: Bool { ["openmpi", "pmix", "pmi"].contains(launcher) }

    /// Reads this process's place from the flags, else from the launcher's variables (see the
    /// type's documentation for the order).
    ///
    /// - Throws: ``DistributedError`` naming the flag or variable and its value when a size is not
    ///   a positive whole number, a rank is negative or not below its size, a launcher's rank is
    ///   set without its size (or the reverse), a Slurm list is malformed, or a port is outside
    ///   1...65535.
    public static func resolve(rank: Int? = nil, worldSize: Int? = nil, masterAddress: String? = nil, masterPort: Int? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Rendezvous {
        let env = LaunchEnvironment(environment)
        var result: Rendezvous
        if rank != nil || worldSize != nil {
            result = try fromFlags(rank: rank, worldSize: worldSize, env)
        } else if let found = try env.launch(.torchrun) {
            result = found
        } else if let found = try env.launch(.openMPI) {
            result = found
        } else if let found = try env.pmix() {
            result = found
        } else if let found = try env.launch(.pmi) {
            result = found
        } else if let found = try env.slurm() {
            result = found
        } else {
            result = Rendezvous()
        }
        result.masterAddress = try masterAddress.map { try checkedAddress($0, name: "--master-address") } ?? env.masterAddress()
        result.masterPort = try masterPort.map { try checkedPort($0, name: "--master-port") } ?? env.masterPort()
        return result
    }

    private static func fromFlags(rank: Int?, worldSize: Int?, _ env: LaunchEnvironment) throws -> Rendezvous {
        guard let rank, let worldSize else {
            let (given, missing) = rank == nil
                ? ("--world-size \(worldSize ?? 0)", "--rank") : ("--rank \(rank ?? 0)", "--world-size")
            throw DistributedError("[rendezvous] \(given) needs \(missing) too")
        }
        guard worldSize >= 1 else { throw LaunchEnvironment.invalid("--world-size", "\(worldSize)", "a positive whole number") }
        guard (0..<worldSize).contains(rank) else {
            throw LaunchEnvironment.invalid("--rank", "\(rank)", "0..<\(worldSize) (--world-size \(worldSize))")
        }
        let local = try env.local(.torchrun, worldSize: worldSize, sizeName: "--world-size") ?? (rank, worldSize)
        return Rendezvous(rank: rank, worldSize: worldSize, localRank: local.rank, localWorldSize: local.size, launcher: "flags")
    }

    static func checkedPort(_ port: Int, name: String) throws -> Int {
        guard (1...65535).contains(port) else { throw LaunchEnvironment.invalid(name, "\(port)", "a port in 1...65535") }
        return port
    }

    static func checkedAddress(_ address: String, name: String) throws -> String {
        guard !address.isEmpty, !address.contains(where: \.isWhitespace) else {
            throw LaunchEnvironment.invalid(name, address, "a host name or address")
        }
        return address
    }
}

/// The variables one launcher sets.
struct LauncherVariables {
    let name: String
    let rank: String
    let size: String
    let localRank: String
    let localSize: String

    static let torchrun = LauncherVariables(name: "torchrun", rank: "RANK", size: "WORLD_SIZE", localRank: "LOCAL_RANK",
                                            localSize: "LOCAL_WORLD_SIZE")
    static let openMPI = LauncherVariables(name: "openmpi", rank: "OMPI_COMM_WORLD_RANK", size: "OMPI_COMM_WORLD_SIZE",
                                           localRank: "OMPI_COMM_WORLD_LOCAL_RANK", localSize: "OMPI_COMM_WORLD_LOCAL_SIZE")
    static let pmi = LauncherVariables(name: "pmi", rank: "PMI_RANK", size: "PMI_SIZE", localRank: "MPI_LOCALRANKID",
                                       localSize: "MPI_LOCALNRANKS")
    static let slurm = LauncherVariables(name: "slurm", rank: "SLURM_PROCID", size: "SLURM_NTASKS", localRank: "SLURM_LOCALID",
                                         localSize: "SLURM_STEP_TASKS_PER_NODE")
}
