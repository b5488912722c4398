import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A library opened at run time that cannot be used: not found, not loadable, or missing a
/// function. The message names the library and what was tried.
public struct LibraryError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `dlsym` on one library opened at run time, with errors that name it.
public struct Symbols {
    public let handle: UnsafeMutableRawPointer
    public let path: String
    /// `MPI`, `NCCL`, `CUDA driver`: the messages' prefix.
    public let library: String
    /// What the file should have been: `an NCCL 2 library`.
    public let expected: String

    public init(handle: UnsafeMutableRawPointer, path: String, library: String, expected: String) {
        (self.handle, self.path, self.library, self.expected) = (handle, path, library, expected)
    }

    /// The symbol's address.
    ///
    /// - Throws: ``LibraryError`` naming the file and the missing symbol.
    public func address(_ name: String) throws -> UnsafeMutableRawPointer {
        guard let address = dlsym(handle, name) else {
            throw LibraryError("[\(library)] \(path) has no \(name): not \(expected)")
        }
        return address
    }

    /// The function `name` as the `@convention(c)` type `T`.
    public func function<T>(_ name: String, _ type: T.Type) throws -> T { unsafeBitCast(try address(name), to: type) }
}
