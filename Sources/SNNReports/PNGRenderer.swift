import Foundation

/// PNG images of our SVG figures, drawn by librsvg into a cairo image surface.
///
/// librsvg, cairo and GObject are loaded when first needed (`dlopen`), not linked: the
/// relocatable `snn` then runs where they are absent, and a report there goes on with SVG and
/// CSV only (``unavailable`` says why, in one line). Each C function is bound once to a
/// `@convention(c)` constant; failures (a `GError`, a cairo status) throw ``PNGError`` naming
/// the function.
public final class PNGRenderer: @unchecked Sendable {
    /// The renderer of this process, or nil when a library is missing (see ``unavailable``).
    public static var shared: PNGRenderer? { try? loaded.get() }

    /// Why ``shared`` is nil, as one line ("PNG figures skipped: librsvg not found (...)"), or nil.
    public static var unavailable: String? {
        if case .failure(let error) = loaded { return "PNG figures skipped: \(error)" }
        return nil
    }

    /// The libraries' file names; `SNN_LIBRSVG` replaces librsvg's (a path or a name).
    static let libraries = (rsvg: ProcessInfo.processInfo.environment["SNN_LIBRSVG"] ?? "librsvg-2.so.2",
                            cairo: "libcairo.so.2", gobject: "libgobject-2.0.so.0")

    private static let loaded: Result<PNGRenderer, PNGError> = {
        do { return .success(try PNGRenderer(rsvg: libraries.rsvg, cairo: libraries.cairo, gobject: libraries.gobject)) } catch let error as PNGError {
            return .failure(error)
        } catch {
            return .failure(PNGError("\(error)"))
        }
    }()

    // librsvg: RsvgHandle *, gboolean (int), GError ** and const RsvgRectangle * (four doubles:
    // x, y, width, height). A GError is { GQuark domain; gint code; gchar *message; }.
    private typealias NewFromData = @convention(c) (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> OpaquePointer?
    private typealias IntrinsicSize = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?) -> Int32
    private typealias RenderDocument = @convention(c) (OpaquePointer?, OpaquePointer?, UnsafePointer<Double>?,
                                                      UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    // GObject and GLib.
    private typealias Unref = @convention(c) (OpaquePointer?) -> Void
    private typealias ErrorFree = @convention(c) (UnsafeMutableRawPointer?) -> Void
    // cairo: cairo_status_t and cairo_format_t are C enums (int).
    private typealias SurfaceCreate = @convention(c) (Int32, Int32, Int32) -> OpaquePointer?
    private typealias SurfaceStatus = @convention(c) (OpaquePointer?) -> Int32
    private typealias SurfaceVoid = @convention(c) (OpaquePointer?) -> Void
    private typealias Create = @convention(c) (OpaquePointer?) -> OpaquePointer?
    private typealias Scale = @convention(c) (OpaquePointer?, Double, Double) -> Void
    private typealias SetSourceRGB = @convention(c) (OpaquePointer?, Double, Double, Double) -> Void
    private typealias GetData = @convention(c) (OpaquePointer?) -> UnsafeMutablePointer<UInt8>?
    private typealias GetInt = @convention(c) (OpaquePointer?) -> Int32
    private typealias StatusToString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    /// `cairo_write_func_t`: (closure, data, length) -> cairo_status_t.
    private typealias WriteFunc = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, UInt32) -> Int32
    private typealias WriteToPNGStream = @convention(c) (OpaquePointer?, WriteFunc?, UnsafeMutableRawPointer?) -> Int32

    private let newFromData: NewFromData
    private let intrinsicSize: IntrinsicSize
    private let renderDocument: RenderDocument
    private let unref: Unref
    private let errorFree: ErrorFree
    private let surfaceCreate: SurfaceCreate
    private let surfaceStatus: SurfaceStatus
    private let surfaceFlush: SurfaceVoid
    private let surfaceDestroy: SurfaceVoid
    private let create: Create
    private let status: SurfaceStatus
    private let destroy: SurfaceVoid
    private let scale: Scale
    private let setSourceRGB: SetSourceRGB
    private let paint: SurfaceVoid
    private let getData: GetData
    private let getStride: GetInt
    private let writeToPNGStream: WriteToPNGStream
    private let statusToString: StatusToString

    /// Loads the three libraries by file name (a path or a name the dynamic loader finds).
    ///
    /// - Throws: ``PNGError`` naming the library that is missing and its Debian package, or the
    ///   function a library lacks.
    init(rsvg: String, cairo: String, gobject: String) throws {
        func open(_ file: String, _ what: String, _ package: String) throws -> UnsafeMutableRawPointer {
            guard let handle = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
                throw PNGError("\(what) not found (looked for \(file); Debian package \(package))")
            }
            return handle
        }
        let (r, c, g) = (try open(rsvg, "librsvg", "librsvg2-2"), try open(cairo, "libcairo", "libcairo2"),
                         try open(gobject, "libgobject", "libglib2.0-0"))
        func bind<T>(_ handle: UnsafeMutableRawPointer, _ file: String, _ name: String, _: T.Type) throws -> T {
            guard let symbol = dlsym(handle, name) else {
                throw PNGError("\(file) has no \(name) (librsvg 2.52 or later and cairo 1.10 or later are needed)")
            }
            return unsafeBitCast(symbol, to: T.self)
        }
        newFromData = try bind(r, rsvg, "rsvg_handle_new_from_data", NewFromData.self)
        intrinsicSize = try bind(r, rsvg, "rsvg_handle_get_intrinsic_size_in_pixels", IntrinsicSize.self)
        renderDocument = try bind(r, rsvg, "rsvg_handle_render_document", RenderDocument.self)
        unref = try bind(g, gobject, "g_object_unref", Unref.self)
        // libgobject depends on libglib, so its handle finds g_error_free.
        errorFree = try bind(g, gobject, "g_error_free", ErrorFree.self)
        surfaceCreate = try bind(c, cairo, "cairo_image_surface_create", SurfaceCreate.self)
        surfaceStatus = try bind(c, cairo, "cairo_surface_status", SurfaceStatus.self)
        surfaceFlush = try bind(c, cairo, "cairo_surface_flush", SurfaceVoid.self)
        surfaceDestroy = try bind(c, cairo, "cairo_surface_destroy", SurfaceVoid.self)
        create = try bind(c, cairo, "cairo_create", Create.self)
        status = try bind(c, cairo, "cairo_status", SurfaceStatus.self)
        destroy = try bind(c, cairo, "cairo_destroy", SurfaceVoid.self)
        scale = try bind(c, cairo, "cairo_scale", Scale.self)
        setSourceRGB = try bind(c, cairo, "cairo_set_source_rgb", SetSourceRGB.self)
        paint = try bind(c, cairo, "cairo_paint", SurfaceVoid.self)
        getData = try bind(c, cairo, "cairo_image_surface_get_data", GetData.self)
        getStride = try bind(c, cairo, "cairo_image_surface_get_stride", GetInt.self)
        writeToPNGStream = try bind(c, cairo, "cairo_surface_write_to_png_stream", WriteToPNGStream.self)
        statusToString = try bind(c, cairo, "cairo_status_to_string", StatusToString.self)
    }

    /// `svg` as a PNG file's bytes, `scale` pixels per SVG pixel, on a white background.
    ///
    /// - Throws: ``PNGError`` when librsvg refuses the SVG or cairo fails.
    public func png(fromSVG svg: String, scale: Double = 2) throws -> Data {
        try withSurface(svg, scale: scale) { surface, _, _ in
            /// Collects what cairo writes, so the caller writes the file in one atomic step.
            final class Sink { var data = Data() }
            let sink = Sink()
            let write: WriteFunc = { closure, bytes, length in
                guard let closure, let bytes else { return 11 }  // CAIRO_STATUS_WRITE_ERROR
                Unmanaged<Sink>.fromOpaque(closure).takeUnretainedValue().data.append(bytes, count: Int(length))
                return 0
            }
            try check(writeToPNGStream(surface, write, Unmanaged.passUnretained(sink).toOpaque()), "cairo_surface_write_to_png_stream")
            return sink.data
        }
    }

    /// The rendered pixels of `svg`: row-major, premultiplied ARGB in one `UInt32` each (cairo's
    /// ARGB32), `width × height` of them.
    ///
    /// - Throws: ``PNGError`` when librsvg refuses the SVG or cairo fails.
    public func pixels(fromSVG svg: String, scale: Double = 2) throws -> (width: Int, height: Int, argb: [UInt32]) {
        try withSurface(svg, scale: scale) { surface, width, height in
            let stride = Int(getStride(surface))
            guard let base = getData(surface), stride >= 4 * width else { throw PNGError("cairo_image_surface_get_data: no pixels") }
            var argb: [UInt32] = []
            argb.reserveCapacity(width * height)
            for row in 0..<height {
                let line = UnsafeRawPointer(base + row * stride)
                for column in 0..<width { argb.append(line.load(fromByteOffset: 4 * column, as: UInt32.self)) }
            }
            return (width, height, argb)
        }
    }

    /// Draws `svg` into a fresh white ARGB32 surface of its intrinsic size × `scale` and hands the
    /// flushed surface and its size in pixels to `body`.
    private func withSurface<T>(_ svg: String, scale factor: Double, _ body: (OpaquePointer, Int, Int) throws -> T) throws -> T {
        precondition(factor > 0 && factor.isFinite, "[PNGRenderer] expected a positive scale, got \(factor)")
        let bytes = Array(svg.utf8)
        var error: UnsafeMutableRawPointer?
        guard let handle = bytes.withUnsafeBufferPointer({ newFromData($0.baseAddress, $0.count, &error) }) else {
            throw consume(error, "rsvg_handle_new_from_data")
        }
        defer { unref(handle) }
        var (w, h) = (0.0, 0.0)
        guard intrinsicSize(handle, &w, &h) != 0, w > 0, h > 0 else {
            throw PNGError("rsvg_handle_get_intrinsic_size_in_pixels: the SVG has no width and height in pixels")
        }
        let (width, height) = (Int((w * factor).rounded(.up)), Int((h * factor).rounded(.up)))
        // cairo's image surfaces are at most 32767 pixels each way.
        guard width <= 32767, height <= 32767 else { throw PNGError("the image would be \(width)×\(height) pixels; at most 32767 each way") }
        guard let surface = surfaceCreate(0, Int32(width), Int32(height)) else { throw PNGError("cairo_image_surface_create: no surface") }  // CAIRO_FORMAT_ARGB32
        defer { surfaceDestroy(surface) }
        try check(surfaceStatus(surface), "cairo_image_surface_create")
        guard let cr = create(surface) else { throw PNGError("cairo_create: no context") }
        defer { destroy(cr) }
        try check(status(cr), "cairo_create")
        // White first: the figures' own background rect is there, but a transparent PNG pasted on
        // a dark page would lose its black text if an SVG ever left it out.
        setSourceRGB(cr, 1, 1, 1)
        paint(cr)
        scale(cr, factor, factor)
        let viewport = [0, 0, w, h]
        guard renderDocument(handle, cr, viewport, &error) != 0 else { throw consume(error, "rsvg_handle_render_document") }
        try check(status(cr), "rsvg_handle_render_document")
        surfaceFlush(surface)
        try check(surfaceStatus(surface), "cairo_surface_flush")
        return try body(surface, width, height)
    }

    /// A ``PNGError`` with `function` and the `GError`'s message, which it frees.
    private func consume(_ error: UnsafeMutableRawPointer?, _ function: String) -> PNGError {
        guard let error else { return PNGError("\(function) failed") }
        defer { errorFree(error) }
        // The message follows the 4-byte domain and the 4-byte code.
        let message = error.load(fromByteOffset: 8, as: UnsafePointer<CChar>?.self)
        return PNGError("\(function): \(message.map { String(cString: $0) } ?? "failed")")
    }

    /// Throws unless `code` is `CAIRO_STATUS_SUCCESS`.
    private func check(_ code: Int32, _ function: String) throws {
        guard code != 0 else { return }
        throw PNGError("\(function): \(statusToString(code).map { String(cString: $0) } ?? "cairo status \(code)")")
    }
}

/// A PNG figure could not be made: a library missing, or librsvg or cairo failed.
public struct PNGError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
