// Builds the emulated GPU the tests run on (`Tests/SNNCUDATests/Emulation`: a libcuda.so.1 whose
// memory is host memory and whose kernels run on the CPU, with cuBLAS, cuDNN and NCCL stand-ins)
// into a folder, for running `snn` on it by hand:
//
//     swift run -c release emulated-gpu .build/emulated-gpu
//     SNN_CUDA_LIBRARY_PATH=.build/emulated-gpu .build/release/snn selftest --device cuda --no-bench
//
// With SNN_EMULATED_NO_WORK=1 the libraries check and count every call but compute nothing, so
// `snn bench train --device cuda` times what issuing a step costs the host alone: the floor under
// a real GPU's step time that no GPU can lower.
import Foundation
import SNNTestSupport

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 1, let folder = arguments.first, !folder.hasPrefix("-") else {
    FileHandle.standardError.write(Data("usage: emulated-gpu FOLDER (builds the emulated GPU's libraries into FOLDER)\n".utf8))
    exit(2)
}
do {
    try EmulatedCUDADriver.build(into: folder)
    let path = URL(fileURLWithPath: folder).standardizedFileURL.path
    print("built the emulated GPU's libcuda.so.1, libcublas.so.13, libcudnn.so.9 and libnccl.so.2 in \(path)")
    print("run snn on it with SNN_CUDA_LIBRARY_PATH=\(path) (and SNN_EMULATED_NO_WORK=1 to time the host side alone)")
} catch {
    FileHandle.standardError.write(Data("emulated-gpu: \(error)\n".utf8))
    exit(1)
}
