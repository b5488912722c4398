// libFuzzer target `jpeg`: JPEG decoding (libjpeg-turbo behind the size and scan limits).
// Built by scripts/fuzz.sh; not part of the package build.
import Foundation
import SNNData

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    _ = try? JPEG.decode(data, path: "fuzz")
    return 0
}
