import SNNCUDA
import SNNDistributed
import SNNTensor

/// How the processes of a data-parallel run on GPUs sum their gradients: NCCL on the GPUs'
/// streams where every process has it, else through host memory over MPI.
enum GPUCollectives {
    /// Gives `communicator` NCCL over the processes' GPUs when `device` is a GPU, the job has
    /// several processes and every one finds NCCL (`SNN_NCCL=0` declines it); returns how device
    /// tensors will be summed (`summed on the GPUs by NCCL 2.30.7`), for the run's first line.
    /// Every rank calls it at the same point.
    ///
    /// - Throws: when every rank has NCCL but its communicator cannot be made (the caller ends
    ///   the job: other ranks may be waiting in NCCL).
    static func attach(to communicator: any Communicator, device: Device) throws -> String {
        guard communicator.size > 1, case .cuda(let ordinal) = device, let mpi = communicator as? MPICommunicator else {
            return "summed through host memory"
        }
        let backend = try CUDABackend.open(ordinal)
        try backend.gpu.makeCurrent()   // NCCL joins the GPU whose context is current
        let (nccl, reason) = try NCCLCommunicator.make(over: mpi, device: device, stream: backend.stream,
                                                       address: backend.deviceAddress(of:))
        guard let nccl else { return "summed through host memory (no NCCL: \(reason))" }
        mpi.deviceCollectives = nccl
        return "summed on the GPUs by \(nccl.name)"
    }
}
