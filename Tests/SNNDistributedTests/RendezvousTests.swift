@testable import SNNDistributed
import Testing

/// The error `resolve` throws for `environment` (and flags), or a failure naming what it returned.
private func resolveError(rank: Int? = nil, worldSize: Int? = nil, masterPort: Int? = nil, _ environment: [String: String],
                          sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        let found = try Rendezvous.resolve(rank: rank, worldSize: worldSize, masterPort: masterPort, environment: environment)
        Issue.record("expected an error, got \(found)", sourceLocation: sourceLocation)
        return ""
    } catch {
        return "\(error)"
    }
}

/// What srun sets in a step of 2 nodes × 2 tasks, for the task `rank`.
private func srunStep(rank: Int) -> [String: String] {
    ["SLURM_STEP_ID": "0", "SLURM_PROCID": "\(rank)", "SLURM_NTASKS": "4", "SLURM_LOCALID": "\(rank % 2)",
     "SLURM_NODEID": "\(rank / 2)", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURM_STEP_NODELIST": "node[03-04]",
     "SLURM_JOB_NODELIST": "node[01-09]"]
}

@Suite("rendezvous")
struct RendezvousTests {
    @Test("nothing set: a world of one")
    func worldOfOne() throws {
        let r = try Rendezvous.resolve(environment: [:])
        #expect(r == Rendezvous(rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, launcher: "none"))
        #expect(!r.isMPILaunch)
        // Empty variables count as unset.
        #expect(try Rendezvous.resolve(environment: ["RANK": "", "WORLD_SIZE": ""]).launcher == "none")
    }

    @Test("torchrun's variables")
    func torchrun() throws {
        let env = ["RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "10.0.0.2",
                   "MASTER_PORT": "29500"]
        let r = try Rendezvous.resolve(environment: env)
        #expect(r == Rendezvous(rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddress: "10.0.0.2", masterPort: 29500,
                                launcher: "torchrun"))
        // Without local variables: every process on one host.
        let bare = try Rendezvous.resolve(environment: ["RANK": "2", "WORLD_SIZE": "3"])
        #expect(bare.localRank == 2 && bare.localWorldSize == 3 && bare.masterAddress == nil && bare.masterPort == nil)
    }

    @Test("Open MPI's mpirun")
    func openMPI() throws {
        let env = ["OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
                   "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "PMIX_RANK": "3"]
        let r = try Rendezvous.resolve(environment: env)
        #expect(r == Rendezvous(rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, launcher: "openmpi"))
        #expect(r.isMPILaunch)
    }

    @Test("MPICH's Hydra (PMI)")
    func hydra() throws {
        let env = ["PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"]
        #expect(try Rendezvous.resolve(environment: env) == Rendezvous(rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2, launcher: "pmi"))
    }

    @Test("srun --mpi=pmi2 and --mpi=pmix: the MPI rank, Slurm's layout")
    func slurmWithMPI() throws {
        var pmi2 = srunStep(rank: 3)
        (pmi2["PMI_RANK"], pmi2["PMI_SIZE"]) = ("3", "4")
        #expect(try Rendezvous.resolve(environment: pmi2)
                == Rendezvous(rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddress: "node03", launcher: "pmi"))
        var pmix = srunStep(rank: 2)
        pmix["PMIX_RANK"] = "2"
        #expect(try Rendezvous.resolve(environment: pmix)
                == Rendezvous(rank: 2, worldSize: 4, localRank: 0, localWorldSize: 2, masterAddress: "node03", launcher: "pmix"))
    }

    @Test("a Slurm job step")
    func slurm() throws {
        let r = try Rendezvous.resolve(environment: srunStep(rank: 3))
        #expect(r == Rendezvous(rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddress: "node03", launcher: "slurm"))
        // The job's list when the step's is absent; MASTER_ADDR and MASTER_PORT win.
        var env = srunStep(rank: 0)
        env["SLURM_STEP_NODELIST"] = nil
        #expect(try Rendezvous.resolve(environment: env).masterAddress == "node01")
        // Without MASTER_PORT, a port from the job id (the same on every task), below 40000.
        env["SLURM_JOB_ID"] = "1234567"
        #expect(try Rendezvous.resolve(environment: env).masterPort == 20000 + 2 * 4567)
        env["SLURM_JOB_ID"] = "banana"
        #expect(throws: DistributedError.self) { try Rendezvous.resolve(environment: env) }
        env["SLURM_JOB_ID"] = "1234567"
        (env["MASTER_ADDR"], env["MASTER_PORT"]) = ("head", "1234")
        let set = try Rendezvous.resolve(environment: env)
        #expect(set.masterAddress == "head" && set.masterPort == 1234)
    }

    @Test("Slurm tasks per node: the step's list, --ntasks-per-node, the job's list")
    func slurmTasksPerNode() throws {
        var env = srunStep(rank: 6)
        (env["SLURM_NTASKS"], env["SLURM_NODEID"], env["SLURM_LOCALID"]) = ("7", "3", "0")
        env["SLURM_STEP_TASKS_PER_NODE"] = "2(x3),1"
        #expect(try Rendezvous.resolve(environment: env).localWorldSize == 1)
        env["SLURM_NODEID"] = "2"
        #expect(try Rendezvous.resolve(environment: env).localWorldSize == 2)
        env["SLURM_STEP_TASKS_PER_NODE"] = nil
        env["SLURM_NTASKS_PER_NODE"] = "3"
        #expect(try Rendezvous.resolve(environment: env).localWorldSize == 3)
        env["SLURM_NTASKS_PER_NODE"] = nil
        (env["SLURM_TASKS_PER_NODE"], env["SLURM_NODEID"]) = ("4(x2)", nil)
        #expect(try Rendezvous.resolve(environment: env).localWorldSize == 4)
    }

    @Test("the batch script is one process, though sbatch sets SLURM_PROCID and SLURM_NTASKS")
    func slurmBatchScript() throws {
        let env = ["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0", "SLURM_TASKS_PER_NODE": "4",
                   "SLURM_JOB_NODELIST": "node[1-4]"]
        #expect(try Rendezvous.resolve(environment: env) == Rendezvous())
    }

    @Test("precedence: flags, torchrun, Open MPI, PMIx, PMI, Slurm")
    func precedence() throws {
        var env = srunStep(rank: 1)
        env.merge(["PMI_RANK": "2", "PMI_SIZE": "4"]) { $1 }
        #expect(try Rendezvous.resolve(environment: env).launcher == "pmi")
        env["PMIX_RANK"] = "2"
        #expect(try Rendezvous.resolve(environment: env).launcher == "pmix")
        // mpirun inside sbatch: the daemon's SLURM_PROCID is not the rank.
        env.merge(["OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"]) { $1 }
        let mpirun = try Rendezvous.resolve(environment: env)
        #expect(mpirun.launcher == "openmpi" && mpirun.rank == 3)
        env.merge(["RANK": "0", "WORLD_SIZE": "2"]) { $1 }
        #expect(try Rendezvous.resolve(environment: env).launcher == "torchrun")
        let flags = try Rendezvous.resolve(rank: 1, worldSize: 3, masterAddress: "h", masterPort: 80, environment: env)
        #expect(flags == Rendezvous(rank: 1, worldSize: 3, localRank: 1, localWorldSize: 3, masterAddress: "h", masterPort: 80,
                                    launcher: "flags"))
    }

    @Test("host lists: the first host, leading zeros kept")
    func hostLists() {
        let cases: [(String, String?)] = [
            ("node[03-05,9]", "node03"), ("gpu-a[1-2],gpu-b3", "gpu-a1"), ("n1,n2", "n1"), ("solo", "solo"),
            ("node[9-10]", "node9"), ("rack[1-2]-n[01-04]", "rack1-n01"), ("node[007]", "node007"),
            ("a[1-2],b[3-4],c", "a1"), ("node[0-99999999999999999999999]", "node0"),
            ("node[05-03]", nil), ("node[1-2", nil), ("node1-2]", nil), ("node[]", nil), ("node[a-b]", nil),
            ("n1,,n2", nil), (",n1", nil), ("n1,", nil), ("node[1-2-3]", nil), ("node[[1]]", nil), ("node[1,]", nil),
            ("node 1", nil), ("node[-3]", nil),
        ]
        for (list, first) in cases {
            #expect(SlurmList.firstHost(of: list) == first, "\(list)")
        }
    }

    @Test("per-node task lists")
    func taskLists() {
        let entries = SlurmList.taskCounts("2(x3),1")
        #expect(entries?.map(\.tasks) == [2, 1] && entries?.map(\.nodes) == [3, 1])
        if let entries {
            #expect((0..<5).map { SlurmList.tasks(onNode: $0, of: entries) } == [2, 2, 2, 1, nil])
        }
        for bad in ["", "2(x3", "2(3)", "x", "0", "2(x0)", "2,,1", "-1", "2(x3)1"] {
            #expect(SlurmList.taskCounts(bad) == nil, "\(bad)")
        }
    }

    @Test("errors name the variable and its value")
    func errors() {
        let cases: [([String: String], [String])] = [
            (["RANK": "0", "WORLD_SIZE": "0"], ["WORLD_SIZE", "\"0\"", "positive"]),
            (["RANK": "0", "WORLD_SIZE": "two"], ["WORLD_SIZE", "\"two\""]),
            (["RANK": "4", "WORLD_SIZE": "4"], ["RANK", "\"4\"", "0..<4"]),
            (["RANK": "-1", "WORLD_SIZE": "4"], ["RANK", "\"-1\""]),
            (["RANK": "1"], ["RANK=1", "WORLD_SIZE is not"]),
            (["WORLD_SIZE": "2"], ["WORLD_SIZE=2", "RANK is not"]),
            (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"], ["LOCAL_RANK=0", "LOCAL_WORLD_SIZE is not"]),
            (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"], ["LOCAL_RANK", "\"2\""]),
            (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "3"], ["LOCAL_WORLD_SIZE", "\"3\""]),
            (["RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "70000"], ["MASTER_PORT", "\"70000\"", "1...65535"]),
            (["RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "http"], ["MASTER_PORT", "\"http\""]),
            (["OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "2"], ["OMPI_COMM_WORLD_RANK", "\"2\""]),
            (["OMPI_COMM_WORLD_RANK": "0"], ["OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE is not"]),
            (["PMI_SIZE": "2"], ["PMI_SIZE=2", "PMI_RANK is not"]),
            (["PMIX_RANK": "1"], ["PMIX_RANK=1", "no world size"]),
            (["PMIX_RANK": "x"], ["PMIX_RANK", "\"x\""]),
            (srunStep(rank: 0).merging(["SLURM_STEP_NODELIST": "node[1-"]) { $1 }, ["SLURM_STEP_NODELIST", "\"node[1-\""]),
            (srunStep(rank: 0).merging(["SLURM_STEP_TASKS_PER_NODE": "2(x"]) { $1 }, ["SLURM_STEP_TASKS_PER_NODE", "\"2(x\""]),
            (srunStep(rank: 0).merging(["SLURM_NODEID": "5"]) { $1 }, ["SLURM_NODEID", "\"5\"", "2(x2)"]),
            (srunStep(rank: 0).merging(["SLURM_NTASKS": "0"]) { $1 }, ["SLURM_NTASKS", "\"0\""]),
            (srunStep(rank: 0).merging(["SLURM_LOCALID": "2"]) { $1 }, ["SLURM_LOCALID", "\"2\""]),
            (srunStep(rank: 0).filter { $0.key != "SLURM_LOCALID" }, ["SLURM_LOCALID is not"]),
            (srunStep(rank: 0).filter { !$0.key.hasSuffix("TASKS_PER_NODE") }, ["SLURM_STEP_TASKS_PER_NODE", "none of"]),
            (srunStep(rank: 0).merging(["SLURM_STEP_TASKS_PER_NODE": "2,1", "SLURM_NODEID": ""]) { $1 }, ["2,1", "SLURM_NODEID"]),
        ]
        for (env, needles) in cases {
            let message = resolveError(env)
            #expect(message.hasPrefix("[rendezvous] ") && !message.contains("\n"), "\(env)")
            for needle in needles { #expect(message.contains(needle), "\(message) lacks \(needle)") }
        }
    }

    @Test("flag errors name the flag")
    func flagErrors() {
        #expect(resolveError(rank: 1, [:]).contains("--rank 1 needs --world-size"))
        #expect(resolveError(worldSize: 2, [:]).contains("--world-size 2 needs --rank"))
        #expect(resolveError(rank: 0, worldSize: 0, [:]).contains("--world-size: expected a positive whole number, got \"0\""))
        #expect(resolveError(rank: 2, worldSize: 2, [:]).contains("--rank: expected 0..<2"))
        #expect(resolveError(rank: -1, worldSize: 2, [:]).contains("--rank"))
        #expect(resolveError(rank: 0, worldSize: 1, masterPort: 0, [:]).contains("--master-port: expected a port in 1...65535, got \"0\""))
        #expect(throws: DistributedError.self) { try Rendezvous.resolve(masterAddress: "", environment: [:]) }
    }
}
