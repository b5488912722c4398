// libFuzzer target `torch`: the torch.save reader (ZIP archive, pickle, strided storage views).
// The input is read as a whole .pth file; and, so that the fuzzer reaches the tensor views
// without having to forge CRC-32s, it is also wrapped as the data.pkl of a well-formed stored
// archive with two small storages. Built by scripts/fuzz.sh (SNNData with -enable-testing).
import Foundation
@testable import SNNData

/// A stored ZIP archive of `entries`, as torch.save writes one.
func storedZip(_ entries: [(String, [UInt8])]) -> Data {
    func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    var out: [UInt8] = [], central: [UInt8] = []
    for (name, bytes) in entries {
        let crc = Int(CRC32.checksum(bytes))
        let fields = le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(crc, 4) + le(bytes.count, 4) + le(bytes.count, 4) + le(name.utf8.count, 2) + le(0, 2)
        central += le(0x0201_4B50, 4) + le(20, 2) + fields + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(out.count, 4) + Array(name.utf8)
        out += le(0x0403_4B50, 4) + fields + Array(name.utf8) + bytes
    }
    let directory = out.count
    out += central
    out += le(0x0605_4B50, 4) + le(0, 4) + le(entries.count, 2) + le(entries.count, 2) + le(central.count, 4) + le(directory, 4) + le(0, 2)
    return Data(out)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    _ = try? TorchCheckpoint.stateDict(contents: data, path: "fuzz")
    if !ZipArchive.isZip(data) {
        let archive = storedZip([("archive/data.pkl", [UInt8](data)), ("archive/byteorder", Array("little".utf8)),
                                 ("archive/data/0", [UInt8](repeating: 0x3F, count: 64)), ("archive/data/1", [UInt8](repeating: 1, count: 24))])
        _ = try? TorchCheckpoint.stateDict(contents: archive, path: "fuzz")
    }
    return 0
}
