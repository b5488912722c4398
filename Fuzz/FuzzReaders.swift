// libFuzzer entry point for SwiftSNN's binary readers and the safe unpickler. Built by
// scripts/fuzz.sh with -sanitize=fuzzer,address; not part of the package build.
import Foundation
import SNNData

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReaders(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    // Every reader must either decode or throw; a crash or a hang is a bug.
    _ = try? EventFiles.decodeATIS(data, path: "fuzz", width: 240, height: 180)
    _ = try? EventFiles.decodeAEDAT2(data, path: "fuzz")
    _ = try? EventFiles.decodeAEDAT3(data, path: "fuzz")
    _ = try? JPEG.decode(data, path: "fuzz")
    _ = try? CIFARBinary.decode(data, path: "fuzz", variant: .cifar10)
    _ = try? CIFARBinary.decode(data, path: "fuzz", variant: .cifar100)
    _ = try? SafeUnpickler(data, path: "fuzz").value()
    _ = try? TorchCheckpoint.stateDict(contents: data, path: "fuzz")
    return 0
}
