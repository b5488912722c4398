import CDNNL
import Foundation
import SNNTensor

/// Every call into oneDNN (2.x C API) lives in this file, so a move to the 3.x API, whose
/// descriptors differ, touches one place.
///
/// Design: primitives are created once per shape and cached ("plans"); the backend's tensors
/// are plain NCHW, so each primitive is created with `format_tag_any` and the plan reorders
/// from and to NCHW at its boundary when oneDNN prefers a blocked layout (nChw16c on
/// AVX-512). Scratchpads are user-managed and allocated per call, so primitives are safe to
/// share; one lock serialises library calls so concurrent callers (tests run in parallel)
/// never start two OpenMP teams at once.
enum DNNL {
    /// The CPU engine and its stream.
    static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        return e!  // checked above
    }()
    static let stream: dnnl_stream_t = {
        var s: dnnl_stream_t?
        check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        return s!  // checked above
    }()

    /// Serialises library calls (see the type's comment).
    static let lock = NSLock()

    /// Stops with the function's name and oneDNN's status. A failing oneDNN call here means a
    /// bug in how we describe the problem (shapes are validated before), or an allocation
    /// failure, which we cannot recover from mid-op either.
    static func check(_ status: dnnl_status_t, _ function: String) {
        if status != dnnl_success {
            preconditionFailure("[oneDNN] \(function) failed with status \(status.rawValue) (\(describe(status)))")
        }
    }

    private static func describe(_ status: dnnl_status_t) -> String {
        switch status {
        case dnnl_out_of_memory: return "out of memory"
        case dnnl_invalid_arguments: return "invalid arguments"
        case dnnl_unimplemented: return "unimplemented"
        case dnnl_runtime_error: return "runtime error"
        default: return "error"
        }
    }

    /// A `dnnl_dims_t` (12 integers; C passes it as a pointer) from Swift integers.
    static func dims(_ values: [Int]) -> [Int64] {
        values.map(Int64.init) + [Int64](repeating: 0, count: 12 - values.count)
    }

    /// A float32 memory descriptor of `shape` in `tag` layout (`dnnl_format_tag_any` lets the
    /// primitive choose).
    static func md(_ shape: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var m = dnnl_memory_desc_t()
        let d = dims(shape)
        check(dnnl_memory_desc_init_by_tag(&m, Int32(shape.count), d, dnnl_f32, tag), "dnnl_memory_desc_init_by_tag")
        return m
    }

    /// The plain row-major tag for a rank.
    static func plainTag(_ rank: Int) -> dnnl_format_tag_t {
        switch rank {
        case 1: return dnnl_a
        case 2: return dnnl_ab
        case 4: return dnnl_abcd
        case 5: return dnnl_abcde
        default: preconditionFailure("[oneDNN] no plain layout for rank \(rank)")
        }
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var (x, y) = (a, b)
        return dnnl_memory_desc_equal(&x, &y) != 0
    }

    static func size(_ m: dnnl_memory_desc_t) -> Int {
        var x = m
        return dnnl_memory_desc_get_size(&x)
    }
}

/// A created primitive with its descriptor; destroyed with the plan that owns it.
final class DNNLPrimitive {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    /// What the primitive does, for error messages.
    let name: String

    /// Creates the primitive for an op descriptor (`desc` points at any `dnnl_*_desc_t`).
    init(_ desc: UnsafeRawPointer, hint: DNNLPrimitive? = nil, _ function: String) {
        var attr: dnnl_primitive_attr_t?
        DNNL.check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        DNNL.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode")
        var p: dnnl_primitive_desc_t?
        DNNL.check(dnnl_primitive_desc_create(&p, desc, attr, DNNL.engine, hint?.pd), "dnnl_primitive_desc_create(\(function))")
        dnnl_primitive_attr_destroy(attr)
        var prim: dnnl_primitive_t?
        DNNL.check(dnnl_primitive_create(&prim, p), "dnnl_primitive_create(\(function))")
        name = function
        pd = p!  // checked above
        primitive = prim!  // checked above
    }

    /// A reorder from `source` to `target` layout.
    init(reorderFrom source: dnnl_memory_desc_t, to target: dnnl_memory_desc_t) {
        var (s, t) = (source, target)
        var attr: dnnl_primitive_attr_t?
        DNNL.check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        DNNL.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode")
        var p: dnnl_primitive_desc_t?
        DNNL.check(dnnl_reorder_primitive_desc_create(&p, &s, DNNL.engine, &t, DNNL.engine, attr), "dnnl_reorder_primitive_desc_create")
        dnnl_primitive_attr_destroy(attr)
        var prim: dnnl_primitive_t?
        DNNL.check(dnnl_primitive_create(&prim, p), "dnnl_primitive_create(reorder)")
        name = "reorder"
        pd = p!  // checked above
        primitive = prim!  // checked above
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The memory descriptor the primitive chose for `what` (e.g. `dnnl_query_src_md`).
    func md(_ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, what, index).pointee
    }

    /// Runs the primitive on raw buffers (`arg` is a `DNNL_ARG_*`), with a fresh scratchpad.
    func execute(_ args: [(arg: Int32, md: dnnl_memory_desc_t, data: UnsafeMutableRawPointer)]) {
        var memories: [dnnl_memory_t?] = []
        var execArgs: [dnnl_exec_arg_t] = []
        defer { for m in memories { dnnl_memory_destroy(m) } }
        let scratchMD = md(dnnl_query_scratchpad_md)
        let scratchBytes = DNNL.size(scratchMD)
        let scratch = scratchBytes > 0 ? Storage(uninitializedByteCount: scratchBytes) : nil
        var all = args
        if let scratch { all.append((Int32(DNNL_ARG_SCRATCHPAD), scratchMD, scratch.data)) }
        for a in all {
            var m: dnnl_memory_t?
            var desc = a.md
            DNNL.check(dnnl_memory_create(&m, &desc, DNNL.engine, a.data), "dnnl_memory_create")
            memories.append(m)
            execArgs.append(dnnl_exec_arg_t(arg: a.arg, memory: m))
        }
        DNNL.check(dnnl_primitive_execute(primitive, DNNL.stream, Int32(execArgs.count), execArgs), "dnnl_primitive_execute(\(name))")
        DNNL.check(dnnl_stream_wait(DNNL.stream), "dnnl_stream_wait")
        withExtendedLifetime(scratch) {}
    }
}

/// Moves data between the plain NCHW layout of our tensors and the layout a primitive chose.
struct DNNLBoundary {
    let plain: dnnl_memory_desc_t
    let chosen: dnnl_memory_desc_t
    let toChosen: DNNLPrimitive?
    let toPlain: DNNLPrimitive?

    /// - Parameters: `inbound`/`outbound` say which reorders will be needed.
    init(plain: dnnl_memory_desc_t, chosen: dnnl_memory_desc_t, inbound: Bool, outbound: Bool) {
        self.plain = plain
        self.chosen = chosen
        let same = DNNL.equal(plain, chosen)
        toChosen = same || !inbound ? nil : DNNLPrimitive(reorderFrom: plain, to: chosen)
        toPlain = same || !outbound ? nil : DNNLPrimitive(reorderFrom: chosen, to: plain)
    }

    /// The data in the chosen layout: `plainData` itself or a reordered copy (kept alive by
    /// the returned storage).
    func enter(_ plainData: UnsafeMutableRawPointer) -> (UnsafeMutableRawPointer, Storage?) {
        guard let toChosen else { return (plainData, nil) }
        let s = Storage(uninitializedByteCount: DNNL.size(chosen))
        toChosen.execute([(Int32(DNNL_ARG_FROM), plain, plainData), (Int32(DNNL_ARG_TO), chosen, s.data)])
        return (s.data, s)
    }

    /// A buffer for a primitive's output in the chosen layout: `plainData` itself when no
    /// reorder is needed.
    func outputBuffer(_ plainData: UnsafeMutableRawPointer) -> (UnsafeMutableRawPointer, Storage?) {
        guard toPlain != nil else { return (plainData, nil) }
        let s = Storage(uninitializedByteCount: DNNL.size(chosen))
        return (s.data, s)
    }

    /// Copies an output produced in the chosen layout into `plainData`.
    func leave(_ chosenData: UnsafeMutableRawPointer, into plainData: UnsafeMutableRawPointer) {
        guard let toPlain else { return }
        toPlain.execute([(Int32(DNNL_ARG_FROM), chosen, chosenData), (Int32(DNNL_ARG_TO), plain, plainData)])
    }
}

/// A thread-safe cache of plans keyed by the problem description.
final class PlanCache<Key: Hashable, Plan> {
    private var plans: [Key: Plan] = [:]

    /// The plan for `key`, built on first use. Call with `DNNL.lock` held.
    func plan(_ key: Key, _ build: () -> Plan) -> Plan {
        if let p = plans[key] { return p }
        let p = build()
        plans[key] = p
        return p
    }
}
