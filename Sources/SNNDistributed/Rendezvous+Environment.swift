/// The launch variables of one process, read strictly: an empty variable counts as unset, and
/// every other value either parses or throws naming the variable and its value.
struct LaunchEnvironment {
    private let variables: [String: String]

    init(_ variables: [String: String]) { self.variables = variables }

    subscript(name: String) -> String? {
        guard let value = variables[name], !value.isEmpty else { return nil }
        return value
    }

    static func invalid(_ name: String, _ value: String, _ expected: String) -> DistributedError {
        DistributedError("[rendezvous] \(name): expected \(expected), got \"\(value)\"")
    }

    /// A rank: a whole number ≥ 0, or nil when unset.
    func index(_ name: String) throws -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text), value >= 0 else { throw Self.invalid(name, text, "a whole number ≥ 0") }
        return value
    }

    /// A size: a whole number ≥ 1, or nil when unset.
    func count(_ name: String) throws -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text), value >= 1 else { throw Self.invalid(name, text, "a positive whole number") }
        return value
    }

    private func partial(_ set: String, without unset: String, _ launcher: String) -> DistributedError {
        DistributedError("[rendezvous] \(set)=\(self[set] ?? "") is set but \(unset) is not: \(launcher) sets both; "
                         + "set both or neither")
    }

    /// The rank and size `launcher` set, nil when it set neither.
    private func world(_ launcher: LauncherVariables) throws -> (rank: Int, size: Int)? {
        switch (try index(launcher.rank), try count(launcher.size)) {
        case (nil, nil):
            return nil
        case let (rank?, size?):
            guard rank < size else {
                throw Self.invalid(launcher.rank, self[launcher.rank] ?? "", "0..<\(size) (\(launcher.size)=\(size))")
            }
            return (rank, size)
        case (_?, nil):
            throw partial(launcher.rank, without: launcher.size, launcher.name)
        case (nil, _?):
            throw partial(launcher.size, without: launcher.rank, launcher.name)
        }
    }

    /// The local rank and size `launcher` set, nil when it set neither.
    func local(_ launcher: LauncherVariables, worldSize: Int, sizeName: String) throws -> (rank: Int, size: Int)? {
        switch (try index(launcher.localRank), try count(launcher.localSize)) {
        case (nil, nil):
            return nil
        case let (rank?, size?):
            guard rank < size else {
                throw Self.invalid(launcher.localRank, "\(rank)", "0..<\(size) (\(launcher.localSize)=\(size))")
            }
            guard size <= worldSize else {
                throw Self.invalid(launcher.localSize, "\(size)", "at most the world size (\(sizeName)=\(worldSize))")
            }
            return (rank, size)
        case (_?, nil):
            throw partial(launcher.localRank, without: launcher.localSize, launcher.name)
        case (nil, _?):
            throw partial(launcher.localSize, without: launcher.localRank, launcher.name)
        }
    }

    /// The place torchrun, mpirun or Hydra gave, nil when `launcher` set nothing. An MPI
    /// launcher without local variables inside a Slurm step takes Slurm's local layout.
    func launch(_ launcher: LauncherVariables) throws -> Rendezvous? {
        guard let world = try world(launcher) else { return nil }
        var local = try self.local(launcher, worldSize: world.size, sizeName: launcher.size)
        if local == nil && launcher.name != LauncherVariables.torchrun.name {
            local = try slurmLocal(worldSize: world.size)
        }
        return Rendezvous(rank: world.rank, worldSize: world.size, localRank: local?.rank ?? world.rank,
                          localWorldSize: local?.size ?? world.size, launcher: launcher.name)
    }

    // MARK: Slurm

    /// Inside `srun` (a job step), not the batch script or the salloc shell.
    var inSlurmStep: Bool { self["SLURM_STEP_ID"] != nil || self["SLURM_STEPID"] != nil }

    /// `srun`'s place, nil outside a job step.
    func slurm() throws -> Rendezvous? {
        guard inSlurmStep, let world = try world(.slurm) else { return nil }
        guard let local = try slurmLocal(worldSize: world.size) else {
            throw partial("SLURM_PROCID", without: "SLURM_LOCALID", "srun")
        }
        return Rendezvous(rank: world.rank, worldSize: world.size, localRank: local.rank, localWorldSize: local.size,
                          launcher: "slurm")
    }

    /// PMIx (`srun --mpi=pmix`): the rank from `PMIX_RANK`, everything else from Slurm.
    func pmix() throws -> Rendezvous? {
        guard let rank = try index("PMIX_RANK") else { return nil }
        guard inSlurmStep, let size = try count("SLURM_NTASKS") else {
            throw DistributedError("[rendezvous] PMIX_RANK=\(rank) is set but no world size: PMIx gives it only through "
                                   + "its library; launch with mpirun (OMPI_COMM_WORLD_SIZE) or srun --mpi=pmix (SLURM_NTASKS)")
        }
        guard rank < size else { throw Self.invalid("PMIX_RANK", "\(rank)", "0..<\(size) (SLURM_NTASKS=\(size))") }
        let local = try slurmLocal(worldSize: size)
        return Rendezvous(rank: rank, worldSize: size, localRank: local?.rank ?? rank, localWorldSize: local?.size ?? size,
                          launcher: "pmix")
    }

    /// `SLURM_LOCALID` and this node's task count, nil outside a step or without `SLURM_LOCALID`.
    private func slurmLocal(worldSize: Int) throws -> (rank: Int, size: Int)? {
        guard inSlurmStep, let rank = try index("SLURM_LOCALID") else { return nil }
        let (size, name) = try slurmTasksOnThisNode()
        guard rank < size else { throw Self.invalid("SLURM_LOCALID", "\(rank)", "0..<\(size) (\(name)=\(self[name] ?? ""))") }
        guard size <= worldSize else {
            throw Self.invalid(name, self[name] ?? "", "at most \(worldSize) tasks on a node (the world size)")
        }
        return (rank, size)
    }

    /// The tasks on this node and the variable that said so. The step's own list comes first:
    /// `SLURM_NTASKS_PER_NODE` is what was asked of the job (`--ntasks-per-node`), and a step
    /// may use fewer.
    private func slurmTasksOnThisNode() throws -> (Int, String) {
        if let list = self["SLURM_STEP_TASKS_PER_NODE"] {
            return (try tasks(inList: list, name: "SLURM_STEP_TASKS_PER_NODE"), "SLURM_STEP_TASKS_PER_NODE")
        }
        if let count = try count("SLURM_NTASKS_PER_NODE") { return (count, "SLURM_NTASKS_PER_NODE") }
        if let list = self["SLURM_TASKS_PER_NODE"] {
            return (try tasks(inList: list, name: "SLURM_TASKS_PER_NODE"), "SLURM_TASKS_PER_NODE")
        }
        throw DistributedError("[rendezvous] SLURM_LOCALID=\(self["SLURM_LOCALID"] ?? "") is set but none of "
                               + "SLURM_STEP_TASKS_PER_NODE, SLURM_NTASKS_PER_NODE, SLURM_TASKS_PER_NODE is: "
                               + "cannot tell the tasks per node")
    }

    private func tasks(inList list: String, name: String) throws -> Int {
        guard let entries = SlurmList.taskCounts(list) else {
            throw Self.invalid(name, list, "a per-node task list such as 2(x3),1")
        }
        if let node = try index("SLURM_NODEID") {
            guard let tasks = SlurmList.tasks(onNode: node, of: entries) else {
                throw Self.invalid("SLURM_NODEID", "\(node)", "a node of \(name)=\(list)")
            }
            return tasks
        }
        let distinct = Set(entries.map(\.tasks))
        guard distinct.count == 1, let tasks = distinct.first else {
            throw DistributedError("[rendezvous] \(name)=\(list) differs between nodes, and SLURM_NODEID is not set "
                                   + "to say which is this one")
        }
        return tasks
    }

    // MARK: Master

    /// `MASTER_ADDR`, else in a Slurm step the first host of its node list.
    func masterAddress() throws -> String? {
        if let address = self["MASTER_ADDR"] { return try Rendezvous.checkedAddress(address, name: "MASTER_ADDR") }
        guard inSlurmStep else { return nil }
        for name in ["SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"] {
            guard let list = self[name] else { continue }
            guard let host = SlurmList.firstHost(of: list) else {
                throw Self.invalid(name, list, "a Slurm host list such as node[01-04,7],gpu1")
            }
            return host
        }
        return nil
    }

    /// `MASTER_PORT`, checked; else in a Slurm step a port derived from the job id,
    /// `20000 + 2 × (SLURM_JOB_ID mod 10000)`, the same on every task of the job and even, so the
    /// port above it (where SwiftSNN's ranks meet) stays within 20001...39999.
    func masterPort() throws -> Int? {
        guard let text = self["MASTER_PORT"] else {
            guard inSlurmStep, let job = try index("SLURM_JOB_ID") ?? index("SLURM_JOBID") else { return nil }
            return 20000 + 2 * (job % 10000)
        }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw Self.invalid("MASTER_PORT", text, "a port in 1...65535")
        }
        return port
    }
}
