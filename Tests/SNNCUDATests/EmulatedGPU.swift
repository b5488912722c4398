import Testing

/// The suites that use the emulated GPU in this process: they share its driver (whose
/// allocation and launch counts they check) and the one backend registered for `.cuda(0)`, so
/// they run one at a time; side by side, one suite's tensors changed another's counts.
@Suite("The emulated GPU", .serialized)
enum EmulatedGPU {}
