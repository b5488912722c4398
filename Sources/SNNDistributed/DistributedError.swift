/// A launch that cannot be understood or a collective that failed, on one line.
///
/// Rendezvous errors name the variable or flag and its value
/// (`[rendezvous] WORLD_SIZE: expected a positive whole number, got "0"`); MPI errors name the
/// function, the rank and MPI's own text
/// (`[MPI_Allreduce] rank 1 of 2, Open MPI v4.1.4: MPI_ERR_COUNT: invalid count argument`).
public struct DistributedError: Error, CustomStringConvertible {
    /// The whole message.
    public let description: String

    public init(_ description: String) { self.description = description }
}
