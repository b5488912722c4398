// libFuzzer target `events`: the event-camera readers (ATIS 40-bit, AEDAT 2.0, AEDAT 3.1) on the
// same bytes. Built by scripts/fuzz.sh; not part of the package build.
import Foundation
import SNNData

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvents(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    // Every reader must either decode or throw; a crash, a hang or a memory blow-up is a bug.
    _ = try? EventFiles.decodeATIS(data, path: "fuzz", width: 34, height: 34)
    _ = try? EventFiles.decodeATIS(data, path: "fuzz", width: 240, height: 180)
    _ = try? EventFiles.decodeAEDAT2(data, path: "fuzz")
    _ = try? EventFiles.decodeAEDAT2(data, path: "fuzz", includeSpecial: true)
    _ = try? EventFiles.decodeAEDAT3(data, path: "fuzz")
    return 0
}
