// libFuzzer target `pickle`: SafeUnpickler on its own, as a data pickle and with the torch.save
// vocabulary (tensors, storages, persistent ids). Built by scripts/fuzz.sh (SNNData compiled
// with -enable-testing for the internal vocabulary).
import Foundation
@testable import SNNData

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    if let value = try? SafeUnpickler(data, path: "fuzz").value() { _ = value.description }
    if let value = try? SafeUnpickler(data, path: "fuzz", vocabulary: TorchArchive.vocabulary).value() { _ = value.description }
    return 0
}
