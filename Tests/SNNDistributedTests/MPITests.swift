import Foundation
@testable import SNNDistributed
import Testing

/// What can be checked in this process without starting MPI (an MPI can be initialised once per
/// process and never again): finding and binding the library, its version, the factory's choices.
/// Collectives between processes are tested through `snn bench allreduce` under mpirun
/// (Tests/snnTests/BenchAllReduceTests.swift).
@Suite("MPI library and communicator factory")
struct MPITests {
    @Test("the libraries tried: SNN_MPI_LIBRARY alone, else Open MPI first, MPICH first under Hydra")
    func candidates() {
        #expect(MPILibrary.candidates(environment: [:]) == ["libmpi.so.40", "libmpi.so.12", "libmpich.so.12", "libmpi.so"])
        #expect(MPILibrary.candidates(environment: ["PMI_RANK": "0"]) == ["libmpi.so.12", "libmpich.so.12", "libmpi.so.40", "libmpi.so"])
        #expect(MPILibrary.candidates(environment: ["PMI_RANK": "0", "OMPI_COMM_WORLD_RANK": "0"]).first == "libmpi.so.40")
        #expect(MPILibrary.candidates(environment: ["SNN_MPI_LIBRARY": "/opt/mpi/lib/libmpi.so"]) == ["/opt/mpi/lib/libmpi.so"])
        #expect(MPILibrary.candidates(environment: ["SNN_MPI_LIBRARY": ""]).count == 4)
    }

    @Test("no MPI: one line naming what was tried and how to install it")
    func missingLibrary() {
        do {
            _ = try MPILibrary.load(names: ["libsnn-no-such-mpi.so.40", "libsnn-no-such-mpi.so"], explicit: false)
            Issue.record("expected an error")
        } catch {
            let message = "\(error)"
            #expect(message == "[MPI] no MPI library found (tried libsnn-no-such-mpi.so.40, libsnn-no-such-mpi.so): install Open MPI "
                    + "(apt-get install openmpi-bin) or set SNN_MPI_LIBRARY=/path/libmpi.so")
        }
        do {
            _ = try MPILibrary.load(environment: ["SNN_MPI_LIBRARY": "/nonexistent/libmpi.so"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".hasPrefix("[MPI] SNN_MPI_LIBRARY=/nonexistent/libmpi.so could not be loaded: "))
            #expect("\(error)".contains("No such file"))
        }
    }

    @Test("a library that is not MPI is named")
    func notMPI() {
        do {
            _ = try MPILibrary.load(names: ["libm.so.6"], explicit: true)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "[MPI] libm.so.6 has no MPI_Initialized: not an MPI 3 library of the ABI it looked like")
        }
    }

    @Test("Open MPI loads with its ABI, and names itself (needs openmpi-bin: make test installs it)")
    func openMPI() throws {
        let library: MPILibrary
        do {
            library = try MPILibrary.load(names: ["libmpi.so.40"], explicit: true)
        } catch {
            Issue.record("Open MPI is not installed (\(error)): apt-get install libopenmpi-dev openmpi-bin, or run make test")
            return
        }
        #expect(library.abi == .openMPI)
        // MPI_Get_library_version may be called before MPI_Init (MPI 3.0); MPI_Error_string may
        // not in Open MPI 4, which aborts the process.
        let version = library.version()
        #expect(version.hasPrefix("Open MPI v"), "\(version)")
        #expect(MPILibrary.shortVersion(version).hasPrefix("Open MPI v") && !MPILibrary.shortVersion(version).contains(","))
        var flag: Int32 = 1
        #expect(library.initialized(&flag) == 0 && flag == 0)
    }

    @Test("the short library version")
    func shortVersion() {
        #expect(MPILibrary.shortVersion("Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022")
                == "Open MPI v4.1.4")
        #expect(MPILibrary.shortVersion("MPICH Version:\t4.0.2\nMPICH Release date:\tThu Apr  7 12:34:45 CDT 2022\n") == "MPICH 4.0.2")
        #expect(MPILibrary.shortVersion("Intel(R) MPI Library 2021.10 for Linux* OS\n") == "Intel(R) MPI Library 2021.10 for Linux* OS")
    }

    @Test("the factory: a world of one runs alone; a launch without MPI needs a master to join at")
    func factory() throws {
        #expect(try Distributed.communicator(for: Rendezvous()) is SingleProcess)
        for launcher in ["torchrun", "slurm", "flags"] {
            do {
                _ = try Distributed.communicator(for: Rendezvous(rank: 1, worldSize: 2, launcher: launcher))
                Issue.record("expected \(launcher) without a master to be refused")
            } catch {
                #expect("\(error)" == "[MPI join] rank 1 of 2 (\(launcher)): no master address and port to meet at "
                        + "(set MASTER_ADDR and MASTER_PORT, or --master-addr and --master-port)")
            }
        }
    }
}
