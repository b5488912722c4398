/// Makes the communicator a launch calls for.
public enum Distributed {
    /// The communicator for `rendezvous`: a ``SingleProcess`` for a world of one, an
    /// ``MPICommunicator`` when an MPI launcher (mpirun, Hydra's mpiexec, `srun --mpi=pmix` or
    /// `--mpi=pmi2`) started the job.
    ///
    /// CPU collectives run over MPI only, so far: ranks given by torchrun, by a plain `srun`
    /// (no MPI plugin) or by `--rank`/`--world-size` have nothing to connect them (that will be
    /// NCCL's TCP rendezvous, for GPUs), and are refused with a message saying how to launch.
    ///
    /// - Throws: ``DistributedError`` for such a launch; when MPI cannot be loaded or started; or
    ///   when MPI's rank and size differ from the launcher's, which means the MPI loaded is not the
    ///   one whose launcher started the job (each process then runs MPI alone).
    public static func communicator(for rendezvous: Rendezvous) throws -> any Communicator {
        if rendezvous.worldSize == 1 { return SingleProcess() }
        guard rendezvous.isMPILaunch else { throw DistributedError(notMPIMessage(rendezvous)) }
        let mpi = try MPICommunicator.start()
        guard mpi.rank == rendezvous.rank, mpi.size == rendezvous.worldSize else {
            let launcher = "the launcher (\(rendezvous.launcher)) says rank \(rendezvous.rank) of \(rendezvous.worldSize)"
            throw DistributedError("[distributed] \(mpi.backendName) from \(mpi.libraryPath) says rank \(mpi.rank) of \(mpi.size), "
                                   + "but \(launcher): this MPI is not the one that launched the job; "
                                   + "set SNN_MPI_LIBRARY to that MPI's libmpi.so")
        }
        return mpi
    }

    private static func notMPIMessage(_ r: Rendezvous) -> String {
        let need = "CPU collectives need an MPI launch"
        switch r.launcher {
        case "torchrun":
            return "[distributed] torchrun started rank \(r.rank) of \(r.worldSize), but \(need): "
                + "mpirun -np \(r.worldSize) snn ... (torchrun's rendezvous will serve NCCL on GPUs, which is not available yet)"
        case "slurm":
            return "[distributed] srun started rank \(r.rank) of \(r.worldSize) without an MPI plugin, but \(need): "
                + "srun --mpi=pmix (or --mpi=pmi2) with an Open MPI or MPICH built against Slurm's PMI, "
                + "or mpirun inside the allocation"
        default:
            return "[distributed] --rank \(r.rank) --world-size \(r.worldSize) name a place but nothing connects the processes: "
                + "\(need) (mpirun -np \(r.worldSize) snn ..., without --rank and --world-size)"
        }
    }
}
