// libFuzzer target `safetensors`: SNNTensor's safetensors decoder. Built by scripts/fuzz.sh.
import Foundation
import SNNTensor

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    _ = try? SafeTensors.decode(data, path: "fuzz")
    return 0
}
