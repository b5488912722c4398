/// Makes the communicator a launch calls for.
public enum Distributed {
    /// The communicator for `rendezvous`: a ``SingleProcess`` for a world of one; the world of
    /// `MPI_COMM_WORLD` when an MPI launcher (mpirun, Hydra's mpiexec, `srun --mpi=pmix` or
    /// `--mpi=pmi2`) started the job; otherwise (torchrun, a plain `srun`, `--rank`/`--world-size`)
    /// a world MPI joins from singletons at the master address (``MPICommunicator/join(_:timeout:)``).
    ///
    /// - Throws: ``DistributedError`` when MPI cannot be loaded or started, the processes cannot
    ///   join, or MPI's rank and size differ from the launcher's, which means the MPI loaded is not
    ///   the one whose launcher started the job (each process then runs MPI alone).
    public static func communicator(for rendezvous: Rendezvous, joinTimeout: Double = 120) throws -> any Communicator {
        if rendezvous.worldSize == 1 { return SingleProcess() }
        guard rendezvous.isMPILaunch else { return try MPICommunicator.join(rendezvous, timeout: joinTimeout) }
        let mpi = try MPICommunicator.start()
        guard mpi.rank == rendezvous.rank, mpi.size == rendezvous.worldSize else {
            let launcher = "the launcher (\(rendezvous.launcher)) says rank \(rendezvous.rank) of \(rendezvous.worldSize)"
            throw DistributedError("[distributed] \(mpi.backendName) from \(mpi.libraryPath) says rank \(mpi.rank) of \(mpi.size), "
                                   + "but \(launcher): this MPI is not the one that launched the job; "
                                   + "set SNN_MPI_LIBRARY to that MPI's libmpi.so")
        }
        return mpi
    }
}
