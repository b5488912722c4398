#if canImport(Glibc)
import Glibc
#endif

/// `dlsym` on one library opened at run time, with errors that name it.
struct Symbols {
    let handle: UnsafeMutableRawPointer
    let path: String
    /// `MPI`, `NCCL`: the messages' prefix.
    let library: String
    /// What the file should have been: `an NCCL 2 library`.
    let expected: String

    func address(_ name: String) throws -> UnsafeMutableRawPointer {
        guard let address = dlsym(handle, name) else {
            throw DistributedError("[\(library)] \(path) has no \(name): not \(expected)")
        }
        return address
    }

    func function<T>(_ name: String, _ type: T.Type) throws -> T { unsafeBitCast(try address(name), to: type) }
}
