import CDNNL
import Foundation
import SNNTensor

/// Every call into oneDNN (2.x C API) lives in this file, so a move to the 3.x API, whose
/// operation descriptors are gone (primitive descriptors are created directly), touches one
/// place.
///
/// Design:
/// - Primitives are created once per problem and cached ("plans", see ``PlanCache``).
/// - Our tensors are plain NCHW. A compute primitive is created with `format_tag_any`, so
///   oneDNN picks its fastest layout (nChw16c on AVX-512), and its plan reorders from and to
///   NCHW at the boundary (``DNNLBoundary``).
/// - Scratchpads are user-managed and live, like the blocked copies of reordered tensors, in
///   one grow-only ``DNNLArena``: a fresh multi-megabyte allocation per call may be handed
///   back to the system when freed and page-faulted in again on the next call.
/// - One lock (``DNNL/lock``) serialises every library call: the arena and the cached
///   primitives are shared, and two concurrent callers (tests run in parallel) would otherwise
///   start two OpenMP teams on the same cores.
enum DNNL {
    /// The CPU engine.
    static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        guard let e else { preconditionFailure("[oneDNN] dnnl_engine_create returned no engine") }
        return e
    }()

    /// The in-order stream every primitive runs on.
    static let stream: dnnl_stream_t = {
        var s: dnnl_stream_t?
        check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        guard let s else { preconditionFailure("[oneDNN] dnnl_stream_create returned no stream") }
        return s
    }()

    /// Serialises library calls and guards the arena and the plan caches (see the type's comment).
    static let lock = NSLock()

    /// Runs `body` with ``lock`` held, then returns the arena's buffers to the allocator:
    /// reorder copies and scratchpads live only while their op runs (the host allocator's
    /// cache hands the same blocks to the next op), so they do not add the largest layer's
    /// copies to the whole step's peak.
    static func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer {
            DNNLArena.shared.release()
            lock.unlock()
        }
        return try body()
    }

    /// Stops with the function's name and oneDNN's status.
    ///
    /// A failing call here is a bug in how we describe the problem (the front-ends validate
    /// shapes first) or an allocation failure inside oneDNN; neither can be recovered from in
    /// the middle of an op, and the backend protocol does not throw.
    static func check(_ status: dnnl_status_t, _ function: String) {
        if status != dnnl_success {
            preconditionFailure("[oneDNN] \(function) failed: \(describe(status)) (status \(status.rawValue))")
        }
    }

    /// oneDNN's name for a status.
    static func describe(_ status: dnnl_status_t) -> String {
        switch status {
        case dnnl_success: return "success"
        case dnnl_out_of_memory: return "out of memory"
        case dnnl_invalid_arguments: return "invalid arguments"
        case dnnl_unimplemented: return "unimplemented"
        case dnnl_iterator_ends: return "iterator ends"
        case dnnl_runtime_error: return "runtime error"
        case dnnl_not_required: return "not required"
        default: return "unknown error"
        }
    }

    /// A `dnnl_dims_t` (12 integers, passed to C as a pointer) from Swift integers.
    static func dims(_ values: [Int]) -> [Int64] {
        precondition(values.count <= 12, "[oneDNN] expected at most 12 dimensions, got \(values.count)")
        return values.map(Int64.init) + [Int64](repeating: 0, count: 12 - values.count)
    }

    /// A float32 memory descriptor of `shape` in `tag` layout (`dnnl_format_tag_any` lets the
    /// primitive choose).
    static func md(_ shape: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var m = dnnl_memory_desc_t()
        check(dnnl_memory_desc_init_by_tag(&m, Int32(shape.count), dims(shape), dnnl_f32, tag), "dnnl_memory_desc_init_by_tag")
        return m
    }

    /// Whether two descriptors describe the same layout.
    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var (x, y) = (a, b)
        return dnnl_memory_desc_equal(&x, &y) != 0
    }

    /// The bytes a descriptor spans, padding included.
    static func size(_ m: dnnl_memory_desc_t) -> Int {
        var x = m
        return dnnl_memory_desc_get_size(&x)
    }

    /// The channel block of oneDNN's fastest activation layout on this CPU: 16 (nChw16c) with
    /// AVX-512, 8 (nChw8c) with AVX or AVX2, nil where plain layouts are as good.
    static let channelBlock: Int? = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        // ISA values are nested bit masks: a richer ISA contains the bits of the ones below.
        if isa & dnnl_cpu_isa_avx512_core.rawValue == dnnl_cpu_isa_avx512_core.rawValue { return 16 }
        if isa & dnnl_cpu_isa_avx.rawValue == dnnl_cpu_isa_avx.rawValue { return 8 }
        return nil
    }()

    /// A contiguous float32 tensor's first element as the raw pointer oneDNN takes.
    static func raw(_ t: Tensor) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(t.pointer(as: Float.self)) }
}

/// One argument of a primitive execution: which (`DNNL_ARG_*`), its layout and its data.
typealias DNNLArgument = (arg: Int32, md: dnnl_memory_desc_t, data: UnsafeMutableRawPointer)

/// Grow-only, 64-byte aligned buffers reused from call to call. Use with ``DNNL/lock`` held.
///
/// Each slot has one user at a time within an op (the scratchpad during one execution, the
/// blocked copy of one operand, ...), so a slot may be reallocated between uses. The arena
/// keeps the largest size each slot has needed: for the benchmark convolution that is about
/// 8 MB per activation slot plus the scratchpad (about 50 MB when Winograd runs).
final class DNNLArena {
    /// The roles buffers play within one op.
    enum Slot: Int, CaseIterable {
        case scratchpad, operand0, operand1, result, workspace, extra
    }

    static let shared = DNNLArena()
    private var storages: [Storage?] = Array(repeating: nil, count: Slot.allCases.count)

    /// At least `bytes` bytes for `slot`; the contents are undefined.
    func buffer(_ slot: Slot, bytes: Int) -> UnsafeMutableRawPointer {
        if let s = storages[slot.rawValue], s.byteCount >= bytes { return s.data }
        // Drop the old buffer first so that peak memory holds one of the two.
        storages[slot.rawValue] = nil
        let s = Storage(uninitializedByteCount: max(bytes, 64))
        storages[slot.rawValue] = s
        return s.data
    }

    /// Drops every buffer (call with ``DNNL/lock`` held, after the op that used them).
    func release() {
        for i in storages.indices { storages[i] = nil }
    }
}

/// A created primitive with its primitive descriptor; destroyed with the plan that owns it.
final class DNNLPrimitive {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    /// What the primitive does, for error messages.
    let name: String
    private let scratchpad: dnnl_memory_desc_t
    private let scratchpadBytes: Int

    /// Creates the primitive for an operation descriptor (`desc` points at any
    /// `dnnl_*_desc_t`), or returns nil when oneDNN has no implementation for it.
    convenience init?(_ desc: UnsafeRawPointer, hint: DNNLPrimitive? = nil, _ function: String, allowUnimplemented: Bool) {
        let attr = DNNLPrimitive.userScratchpadAttributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        var p: dnnl_primitive_desc_t?
        let status = dnnl_primitive_desc_create(&p, desc, attr, DNNL.engine, hint?.pd)
        if status == dnnl_unimplemented && allowUnimplemented { return nil }
        DNNL.check(status, "dnnl_primitive_desc_create(\(function))")
        guard let p else { preconditionFailure("[oneDNN] dnnl_primitive_desc_create(\(function)) returned nothing") }
        self.init(pd: p, function)
    }

    /// Attributes asking for a user-managed scratchpad (the caller destroys them).
    private static func userScratchpadAttributes() -> dnnl_primitive_attr_t? {
        var attr: dnnl_primitive_attr_t?
        DNNL.check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        DNNL.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
                   "dnnl_primitive_attr_set_scratchpad_mode")
        return attr
    }

    /// Creates the primitive for an operation descriptor; traps when oneDNN cannot.
    convenience init(_ desc: UnsafeRawPointer, hint: DNNLPrimitive? = nil, _ function: String) {
        // Non-optional by construction: allowUnimplemented is false.
        self.init(desc, hint: hint, function, allowUnimplemented: false)!
    }

    /// A reorder from `source` to `target` layout.
    convenience init(reorderFrom source: dnnl_memory_desc_t, to target: dnnl_memory_desc_t) {
        var (s, t) = (source, target)
        let attr = DNNLPrimitive.userScratchpadAttributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        var p: dnnl_primitive_desc_t?
        DNNL.check(dnnl_reorder_primitive_desc_create(&p, &s, DNNL.engine, &t, DNNL.engine, attr),
                   "dnnl_reorder_primitive_desc_create")
        guard let p else { preconditionFailure("[oneDNN] dnnl_reorder_primitive_desc_create returned nothing") }
        self.init(pd: p, "reorder")
    }

    private init(pd: dnnl_primitive_desc_t, _ function: String) {
        var prim: dnnl_primitive_t?
        let status = dnnl_primitive_create(&prim, pd)
        if status != dnnl_success { dnnl_primitive_desc_destroy(pd) }
        DNNL.check(status, "dnnl_primitive_create(\(function))")
        guard let prim else { preconditionFailure("[oneDNN] dnnl_primitive_create(\(function)) returned nothing") }
        self.pd = pd
        primitive = prim
        name = function
        scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        scratchpadBytes = DNNL.size(scratchpad)
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The memory descriptor the primitive chose for `what` (e.g. `dnnl_query_src_md`).
    func md(_ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, what, index).pointee
    }

    /// The implementation oneDNN picked (e.g. `jit:avx512_core`), for benchmarks and logs.
    var implementation: String {
        var info: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success, let info else { return "?" }
        return String(cString: info)
    }

    /// Runs the primitive synchronously on raw buffers. Call with ``DNNL/lock`` held.
    func execute(_ args: [DNNLArgument]) {
        var all = args
        if scratchpadBytes > 0 {
            all.append((Int32(DNNL_ARG_SCRATCHPAD), scratchpad, DNNLArena.shared.buffer(.scratchpad, bytes: scratchpadBytes)))
        }
        // Memory objects are thin wrappers over our pointers; creating them per call costs
        // microseconds, and keeps the primitive free of per-call state.
        var memories: [dnnl_memory_t?] = []
        defer { for m in memories { dnnl_memory_destroy(m) } }
        var execArgs: [dnnl_exec_arg_t] = []
        for a in all {
            var m: dnnl_memory_t?
            var desc = a.md
            DNNL.check(dnnl_memory_create(&m, &desc, DNNL.engine, a.data), "dnnl_memory_create(\(name))")
            memories.append(m)
            execArgs.append(dnnl_exec_arg_t(arg: a.arg, memory: m))
        }
        DNNL.check(dnnl_primitive_execute(primitive, DNNL.stream, Int32(execArgs.count), execArgs),
                   "dnnl_primitive_execute(\(name))")
        DNNL.check(dnnl_stream_wait(DNNL.stream), "dnnl_stream_wait(\(name))")
    }
}

/// Moves one operand between the plain layout of our tensors and the layout a primitive chose.
struct DNNLBoundary {
    let plain: dnnl_memory_desc_t
    let chosen: dnnl_memory_desc_t
    private let toChosen: DNNLPrimitive?
    private let toPlain: DNNLPrimitive?
    private let bytes: Int

    /// - Parameters: `inbound` / `outbound`: whether data enters the primitive through this
    ///   operand (it is an input) or leaves it (an output); only those reorders are built.
    init(plain: dnnl_memory_desc_t, chosen: dnnl_memory_desc_t, inbound: Bool, outbound: Bool) {
        self.plain = plain
        self.chosen = chosen
        let same = DNNL.equal(plain, chosen)
        toChosen = same || !inbound ? nil : DNNLPrimitive(reorderFrom: plain, to: chosen)
        toPlain = same || !outbound ? nil : DNNLPrimitive(reorderFrom: chosen, to: plain)
        bytes = DNNL.size(chosen)
    }

    /// Whether the primitive reads and writes our buffers in place (no reorder).
    var isPlain: Bool { toChosen == nil && toPlain == nil }

    /// The input in the chosen layout: `plainData` itself, or a reordered copy in `slot`.
    ///
    /// `aligned` asks for a 64-byte aligned buffer even without a reorder (oneDNN's Winograd
    /// kernels use aligned vector loads and crash on a view's offset pointer).
    func enter(_ plainData: UnsafeMutableRawPointer, slot: DNNLArena.Slot, aligned: Bool = false) -> UnsafeMutableRawPointer {
        if let toChosen {
            let buffer = DNNLArena.shared.buffer(slot, bytes: bytes)
            Profiler.measure("reorders") {
                toChosen.execute([(Int32(DNNL_ARG_FROM), plain, plainData), (Int32(DNNL_ARG_TO), chosen, buffer)])
            }
            return buffer
        }
        if aligned && Int(bitPattern: plainData) % 64 != 0 {
            let buffer = DNNLArena.shared.buffer(slot, bytes: bytes)
            buffer.copyMemory(from: plainData, byteCount: bytes)
            return buffer
        }
        return plainData
    }

    /// Where the primitive should write an output: `plainData` itself when no reorder is
    /// needed, else a buffer in `slot` to pass to ``leave(_:into:)`` afterwards. Fresh output
    /// tensors are 64-byte aligned.
    func outputBuffer(_ plainData: UnsafeMutableRawPointer, slot: DNNLArena.Slot) -> UnsafeMutableRawPointer {
        toPlain == nil ? plainData : DNNLArena.shared.buffer(slot, bytes: bytes)
    }

    /// Copies an output the primitive wrote in the chosen layout into `plainData`.
    func leave(_ chosenData: UnsafeMutableRawPointer, into plainData: UnsafeMutableRawPointer) {
        guard let toPlain else { return }
        Profiler.measure("reorders") {
            toPlain.execute([(Int32(DNNL_ARG_FROM), chosen, chosenData), (Int32(DNNL_ARG_TO), plain, plainData)])
        }
    }
}

/// Plans keyed by problem description, built on first use. Use with ``DNNL/lock`` held.
final class PlanCache<Key: Hashable, Plan> {
    private var plans: [Key: Plan] = [:]

    /// The plan for `key`, built by `build` on first use.
    func plan(_ key: Key, _ build: () -> Plan) -> Plan {
        if let p = plans[key] { return p }
        let p = build()
        plans[key] = p
        return p
    }
}

extension dnnl_memory_desc_t {
    /// The logical dimensions.
    func logicalDims() -> [Int] {
        withUnsafeBytes(of: dims) { raw in (0..<Int(ndims)).map { Int(raw.load(fromByteOffset: $0 * 8, as: Int64.self)) } }
    }
}
