import CHDF5
import Foundation
import SNNTensor

/// A problem with an HDF5 file: libhdf5's own message, with the file and the object in it.
public struct HDF5Error: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// libhdf5 as this project uses it: one thread at a time (the Debian build is not thread-safe),
/// its error stack read into messages instead of printed to stderr.
enum HDF5 {

    /// Serialises every use of the library, which keeps global state (the Debian build is not
    /// thread-safe).
    private static let lock = NSLock()

    /// Runs `body` holding the library.
    static func exclusive<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        _ = H5open()
        _ = H5Eset_auto2(0, nil, nil)  // H5E_DEFAULT: errors come back as messages, not printed
        return try body()
    }

    /// The messages on libhdf5's error stack, outermost first, repeated ones dropped.
    static func stackMessage() -> String {
        final class Box { var lines: [String] = [] }
        let box = Box()
        let walk: H5E_walk2_t = { _, error, context in
            guard let error, let context else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
            let text = error.pointee.desc.map { String(cString: $0) } ?? ""
            if !text.isEmpty && box.lines.last != text { box.lines.append(text) }
            return 0
        }
        _ = H5Ewalk2(0, H5E_WALK_DOWNWARD, walk, Unmanaged.passUnretained(box).toOpaque())
        _ = H5Eclear2(0)
        guard let first = box.lines.first else { return "libhdf5 gave no reason" }
        return box.lines.count == 1 ? first : "\(first) (\(box.lines.last!))"
    }

    /// `id` when it is valid, else an error naming `what` with libhdf5's reason.
    @discardableResult
    static func check(_ id: hid_t, _ what: @autoclosure () -> String) throws -> hid_t {
        guard id >= 0 else { throw HDF5Error("\(what()): \(stackMessage())") }
        return id
    }

    static func check(_ status: herr_t, _ what: @autoclosure () -> String) throws {
        guard status >= 0 else { throw HDF5Error("\(what()): \(stackMessage())") }
    }
}

/// Builds one HDF5 file in memory (libhdf5's core driver), then writes it atomically: a failed
/// or interrupted export never leaves a partial file, and never replaces the previous one.
final class HDF5Writer {
    private let file: hid_t
    private let name: String
    private var closed = false

    /// Call inside ``HDF5/exclusive(_:)``.
    /// - Parameter name: the file's name, for messages.
    init(name: String) throws {
        self.name = name
        let access = try HDF5.check(H5Pcreate(snn_h5p_file_access()), "\(name): cannot create file access properties")
        defer { H5Pclose(access) }
        try HDF5.check(H5Pset_fapl_core(access, 1 << 20, false), "\(name): cannot select the in-memory driver")
        // The in-memory file's name must be unique among open files; it is never on disk.
        file = try HDF5.check(H5Fcreate("\(name).\(UUID().uuidString)", snn_h5f_acc_trunc(), 0, access), "\(name): cannot create the file")
    }

    deinit { if !closed { H5Fclose(file) } }

    /// Creates the group at `path` (`node/nodes/conv`); its parent must exist.
    func group(_ path: String) throws {
        let g = try HDF5.check(H5Gcreate2(file, path, 0, 0, 0), "\(name): cannot create group \(path)")
        H5Gclose(g)
    }

    func write(_ path: String, floats: [Float], shape: [Int]) throws {
        precondition(floats.count == shape.reduce(1, *), "[HDF5Writer] \(path): \(floats.count) values for shape \(shape)")
        try floats.withUnsafeBytes { try dataset(path, type: snn_h5t_native_float(), shape: shape, data: $0.baseAddress) }
    }

    func write(_ path: String, integers: [Int], shape: [Int]) throws {
        precondition(integers.count == shape.reduce(1, *), "[HDF5Writer] \(path): \(integers.count) values for shape \(shape)")
        let values = integers.map(Int64.init)
        try values.withUnsafeBytes { try dataset(path, type: snn_h5t_native_int64(), shape: shape, data: $0.baseAddress) }
    }

    /// A scalar (0-d) 64-bit integer.
    func write(_ path: String, integer: Int) throws {
        var value = Int64(integer)
        try dataset(path, type: snn_h5t_native_int64(), shape: nil, data: &value)
    }

    /// A scalar (0-d) double.
    func write(_ path: String, double: Double) throws {
        var value = double
        try dataset(path, type: snn_h5t_native_double(), shape: nil, data: &value)
    }

    /// Variable-length UTF-8 strings (h5py's `string_dtype()`), a scalar when `shape` is nil.
    func write(_ path: String, strings: [String], shape: [Int]? = nil) throws {
        precondition(strings.count == (shape ?? []).reduce(1, *), "[HDF5Writer] \(path): \(strings.count) strings for shape \(shape ?? [])")
        let type = try HDF5.check(H5Tcopy(snn_h5t_c_s1()), "\(name): cannot make a string type")
        defer { H5Tclose(type) }
        try HDF5.check(H5Tset_size(type, snn_h5t_variable()), "\(name): cannot make a string type")
        try HDF5.check(H5Tset_cset(type, H5T_CSET_UTF8), "\(name): cannot make a string type")
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        var pointers = copies.map { UnsafePointer<CChar>($0) }
        try pointers.withUnsafeMutableBytes { try dataset(path, type: type, shape: shape, data: $0.baseAddress) }
    }

    /// The finished file's bytes (the file is closed).
    func bytes() throws -> Data {
        try HDF5.check(H5Fflush(file, H5F_SCOPE_GLOBAL), "\(name): cannot flush the file")
        let size = H5Fget_file_image(file, nil, 0)
        guard size > 0 else { throw HDF5Error("\(name): cannot read the file's image: \(HDF5.stackMessage())") }
        var data = Data(count: size)
        let read = data.withUnsafeMutableBytes { H5Fget_file_image(file, $0.baseAddress, size) }
        guard read == size else { throw HDF5Error("\(name): cannot read the file's image: \(HDF5.stackMessage())") }
        closed = true
        try HDF5.check(H5Fclose(file), "\(name): cannot close the file")
        return data
    }

    private func dataset(_ path: String, type: hid_t, shape: [Int]?, data: UnsafeRawPointer?) throws {
        let space: hid_t
        if let shape {
            let dims = shape.map { hsize_t($0) }
            space = try HDF5.check(H5Screate_simple(Int32(dims.count), dims, nil), "\(name): cannot describe the shape \(shape) of \(path)")
        } else {
            space = try HDF5.check(H5Screate(H5S_SCALAR), "\(name): cannot describe a scalar for \(path)")
        }
        defer { H5Sclose(space) }
        let set = try HDF5.check(H5Dcreate2(file, path, type, space, 0, 0, 0), "\(name): cannot create dataset \(path)")
        defer { H5Dclose(set) }
        if shape.map({ $0.contains(0) }) == true { return }
        try HDF5.check(H5Dwrite(set, type, 0, 0, 0, data), "\(name): cannot write dataset \(path)")
    }
}

/// An HDF5 file read as a tree: groups of groups and datasets, each dataset's values read in
/// full (integers, floating-point numbers or strings).
public indirect enum HDF5Object {
    case group([(name: String, object: HDF5Object)])
    case integers([Int], shape: [Int])
    case numbers([Double], shape: [Int])
    case strings([String], shape: [Int])

    /// The child `name` of a group.
    public subscript(_ name: String) -> HDF5Object? {
        guard case .group(let children) = self else { return nil }
        return children.first { $0.name == name }?.object
    }

    /// A dataset's shape (`[]` for a scalar); nil for a group.
    public var shape: [Int]? {
        switch self {
        case .group: return nil
        case .integers(_, let s), .numbers(_, let s), .strings(_, let s): return s
        }
    }

    /// A scalar or one-element string dataset's text.
    public var string: String? {
        if case .strings(let v, _) = self, v.count == 1 { return v[0] }
        return nil
    }

    /// Every value as a number (integers converted); nil for strings and groups.
    public var numbers: [Double]? {
        switch self {
        case .integers(let v, _): return v.map(Double.init)
        case .numbers(let v, _): return v
        default: return nil
        }
    }

    /// Reads the file at `path`. Datasets of more than `limit` values are refused (a damaged or
    /// hostile file cannot make this allocate without bound).
    public static func read(_ path: String, limit: Int = 1 << 28) throws -> HDF5Object {
        try HDF5.exclusive { try readFile(path, limit: limit) }
    }

    private static func readFile(_ path: String, limit: Int) throws -> HDF5Object {
        guard FileManager.default.fileExists(atPath: path) else { throw HDF5Error("\(path): no such file") }
        guard H5Fis_hdf5(path) > 0 else {
            _ = H5Eclear2(0)
            throw HDF5Error("\(path): not an HDF5 file (no HDF5 signature; a NIR file is HDF5, written by nir.write or snn export)")
        }
        let file = try HDF5.check(H5Fopen(path, snn_h5f_acc_rdonly(), 0), "\(path): cannot open it")
        defer { H5Fclose(file) }
        return try readGroup(file, "/", path: path, limit: limit, depth: 0)
    }

    private static func readGroup(_ group: hid_t, _ where_: String, path: String, limit: Int, depth: Int) throws -> HDF5Object {
        guard depth < 64 else { throw HDF5Error("\(path): groups nested more than 64 deep at \(where_)") }
        var info = H5G_info_t()
        try HDF5.check(H5Gget_info(group, &info), "\(path): cannot list group \(where_)")
        var children: [(String, HDF5Object)] = []
        for i in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, 0)
            guard length >= 0 else { throw HDF5Error("\(path): cannot read the name of entry \(i) of \(where_): \(HDF5.stackMessage())") }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            _ = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, buffer.count, 0)
            let name = String(cString: buffer)
            let full = where_ == "/" ? "/\(name)" : "\(where_)/\(name)"
            let object = try HDF5.check(H5Oopen(group, name, 0), "\(path): cannot open \(full)")
            defer { H5Oclose(object) }
            switch H5Iget_type(object) {
            case H5I_GROUP: children.append((name, try readGroup(object, full, path: path, limit: limit, depth: depth + 1)))
            case H5I_DATASET: children.append((name, try readDataset(object, full, path: path, limit: limit)))
            default: continue  // named types and the like carry no graph data
            }
        }
        return .group(children)
    }

    private static func readDataset(_ set: hid_t, _ where_: String, path: String, limit: Int) throws -> HDF5Object {
        let space = try HDF5.check(H5Dget_space(set), "\(path): cannot read the shape of \(where_)")
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 && rank <= 32 else { throw HDF5Error("\(path): \(where_) has an unreadable shape") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        if rank > 0 { _ = H5Sget_simple_extent_dims(space, &dims, nil) }
        let shape = dims.map { Int(clamping: $0) }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        guard !overflow && count <= limit else {
            throw HDF5Error("\(path): \(where_) holds \(shape.map(String.init).joined(separator: "×")) values, over the limit of \(limit)")
        }
        let fileType = try HDF5.check(H5Dget_type(set), "\(path): cannot read the type of \(where_)")
        defer { H5Tclose(fileType) }
        switch H5Tget_class(fileType) {
        case H5T_INTEGER:
            var values = [Int64](repeating: 0, count: count)
            if count > 0 {
                try HDF5.check(values.withUnsafeMutableBytes { H5Dread(set, snn_h5t_native_int64(), 0, 0, 0, $0.baseAddress) },
                               "\(path): cannot read \(where_)")
            }
            return .integers(values.map { Int($0) }, shape: shape)
        case H5T_FLOAT:
            var values = [Double](repeating: 0, count: count)
            if count > 0 {
                try HDF5.check(values.withUnsafeMutableBytes { H5Dread(set, snn_h5t_native_double(), 0, 0, 0, $0.baseAddress) },
                               "\(path): cannot read \(where_)")
            }
            return .numbers(values, shape: shape)
        case H5T_STRING:
            return .strings(try readStrings(set, fileType, count: count, where_, path: path), shape: shape)
        default:
            throw HDF5Error("\(path): \(where_) is neither numbers nor strings (HDF5 type class \(H5Tget_class(fileType).rawValue))")
        }
    }

    private static func readStrings(_ set: hid_t, _ fileType: hid_t, count: Int, _ where_: String, path: String) throws -> [String] {
        guard count > 0 else { return [] }
        let memory = try HDF5.check(H5Tcopy(snn_h5t_c_s1()), "\(path): cannot make a string type")
        defer { H5Tclose(memory) }
        // libhdf5 converts between strings of one character set only: ASCII or UTF-8 as stored.
        try HDF5.check(H5Tset_cset(memory, H5Tget_cset(fileType)), "\(path): cannot make a string type")
        if H5Tis_variable_str(fileType) > 0 {
            try HDF5.check(H5Tset_size(memory, snn_h5t_variable()), "\(path): cannot make a string type")
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            try HDF5.check(pointers.withUnsafeMutableBytes { H5Dread(set, memory, 0, 0, 0, $0.baseAddress) }, "\(path): cannot read \(where_)")
            defer { pointers.forEach { H5free_memory($0) } }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let size = H5Tget_size(fileType)
        guard size > 0 && size <= 1 << 20 else { throw HDF5Error("\(path): \(where_) has strings of \(size) bytes each") }
        try HDF5.check(H5Tset_size(memory, size), "\(path): cannot make a string type")
        var bytes = [UInt8](repeating: 0, count: size * count)
        try HDF5.check(bytes.withUnsafeMutableBytes { H5Dread(set, memory, 0, 0, 0, $0.baseAddress) }, "\(path): cannot read \(where_)")
        return (0..<count).map { i in
            let slice = bytes[(i * size)..<((i + 1) * size)]
            return String(decoding: slice.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
