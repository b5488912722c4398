// libFuzzer target `cifar`: the CIFAR-10/100 binary readers and the CIFAR-python readers (a
// pickled dict read with SafeUnpickler) on the same bytes. Built by scripts/fuzz.sh.
import Foundation
import SNNData

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCIFAR(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    for variant in [CIFARBinary.Variant.cifar10, .cifar100] {
        _ = try? CIFARBinary.decode(data, path: "fuzz", variant: variant)
        if let batch = try? CIFARPython.decode(data, path: "fuzz", variant: variant) {
            // What the data set relies on: 3072 pixel bytes per label.
            precondition(batch.pixels.count == batch.labels.count * 3072, "CIFAR-python batch of \(batch.labels.count) labels has \(batch.pixels.count) pixel bytes")
        }
    }
    return 0
}
