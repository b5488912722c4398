import CTurboJPEG
import Foundation

/// An 8-bit RGB image, pixels interleaved row by row (`[y][x][c]`).
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "[RGBImage] expected \(width * height * 3) bytes, got \(pixels.count)")
        (self.width, self.height, self.pixels) = (width, height, pixels)
    }
}

/// JPEG decoding with libjpeg-turbo (accurate integer DCT and smooth chroma upsampling, the
/// defaults PIL decodes with, so pixels equal what torchvision's loader sees).
///
/// Grayscale files become RGB with three equal channels; CMYK and YCCK files (a few ImageNet
/// images are) are converted as Adobe writes them (inverted CMYK): `r = c·k / 255`. Recoverable
/// oddities libjpeg only warns about (extraneous bytes before a marker) are accepted, as PIL
/// accepts them; a file that ends early is an error, as it is for PIL.
public enum JPEG {
    /// Bounds on what one JPEG may make the decoder do, checked before anything is allocated:
    /// a JPEG's header can declare 65535×65535 pixels in a few hundred bytes, and a progressive
    /// file can hold thousands of scans, each a pass over the whole image.
    public struct Limits: Sendable, Equatable {
        /// The most pixels (width × height) an image may declare.
        public var maxPixels: Int
        /// The most pixels per byte of file a Huffman-coded image may declare. Every 8×8 block
        /// costs at least one bit of entropy-coded data (progressive; two when sequential), so a
        /// complete image has at most 512 pixels per byte; a header declaring far more belongs
        /// to a truncated or crafted file whose missing data libjpeg would fill with grey at full
        /// size. Arithmetic-coded images can compress further and are bounded by `maxPixels` only.
        public var maxPixelsPerByte: Int
        /// The most scans (SOS markers) a file may hold. Sequential files have one per component
        /// at most, real progressive ones about ten; libjpeg-turbo's own guard
        /// (`TJFLAG_LIMITSCANS`, applied while this is at most 500) also stops at 500.
        public var maxScans: Int

        public init(maxPixels: Int = 100_000_000, maxPixelsPerByte: Int = 1024, maxScans: Int = 500) {
            (self.maxPixels, self.maxPixelsPerByte, self.maxScans) = (maxPixels, maxPixelsPerByte, maxScans)
        }

        /// 100 megapixels (a 12,000 × 8,000 photograph fits), 1024 pixels per byte, 500 scans.
        public static let standard = Limits()
    }

    /// The limits the readers apply when a call names none; the command line may raise them
    /// (e.g. `JPEG.maxPixels = 200_000_000`) for data sets of very large images.
    public static var limits: Limits {
        get { limitsLock.withLock { currentLimits } }
        set { limitsLock.withLock { currentLimits = newValue } }
    }

    /// The most pixels an image may declare (``limits``'s `maxPixels`; 100 million by default).
    public static var maxPixels: Int {
        get { limits.maxPixels }
        set { limitsLock.withLock { currentLimits.maxPixels = newValue } }
    }

    private static let limitsLock = NSLock()
    nonisolated(unsafe) private static var currentLimits = Limits.standard  // guarded by limitsLock

    /// What a JPEG's header declares.
    public struct Header: Sendable {
        public let width: Int
        public let height: Int
        /// "RGB", "YCbCr", "Gray", "CMYK" or "YCCK".
        public let colorspace: String
        /// Chroma subsampling: "4:4:4", "4:2:2", "4:2:0", "gray", "4:4:0", "4:1:1".
        public let subsampling: String
    }

    /// Reads and decodes the JPEG file at `path`, within `limits` (``limits`` when nil).
    public static func read(_ path: String, limits: Limits? = nil) throws -> RGBImage {
        try decode(try EventFiles.contents(path), path: path, limits: limits)
    }

    /// The header of the JPEG file at `path`, without decoding the image; an image outside
    /// `limits` is an error here too.
    public static func readHeader(_ path: String, limits: Limits? = nil) throws -> Header {
        let data = try EventFiles.contents(path)
        let limits = limits ?? JPEG.limits
        return try withDecoder(path: path) { handle in
            try data.withUnsafeBytes { try header(handle, $0, path: path, limits: limits) }
        }
    }

    /// Decodes JPEG bytes; `path` labels errors. The declared size and the scan count are
    /// checked against `limits` before the pixels are allocated or any scan decoded.
    public static func decode(_ data: Data, path: String, limits: Limits? = nil) throws -> RGBImage {
        let limits = limits ?? JPEG.limits
        return try withDecoder(path: path) { handle in
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> RGBImage in
                let h = try header(handle, raw, path: path, limits: limits)
                let cmyk = h.colorspace == "CMYK" || h.colorspace == "YCCK"
                let channels = cmyk ? 4 : 3
                var out = [UInt8](repeating: 0, count: h.width * h.height * channels)
                let flags = limits.maxScans <= 500 ? TJFLAG_LIMITSCANS : 0
                let status = out.withUnsafeMutableBufferPointer { dst in
                    tjDecompress2(handle, raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), dst.baseAddress,
                                  Int32(h.width), 0, Int32(h.height), Int32(cmyk ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), flags)
                }
                if status != 0 { try check(handle, path: path, data: raw) }
                guard cmyk else { return RGBImage(width: h.width, height: h.height, pixels: out) }
                var rgb = [UInt8](repeating: 0, count: h.width * h.height * 3)
                for i in 0..<(h.width * h.height) {
                    let k = UInt32(out[4 * i + 3])
                    for c in 0..<3 { rgb[3 * i + c] = UInt8((UInt32(out[4 * i + c]) * k + 127) / 255) }
                }
                return RGBImage(width: h.width, height: h.height, pixels: rgb)
            }
        }
    }

    /// What a walk over a JPEG's markers finds, without decoding anything.
    struct Markers {
        /// Start-of-scan markers before the end of the image.
        var scans = 0
        /// The frame is arithmetic-coded (SOF9-SOF11, SOF13-SOF15).
        var arithmetic = false
        /// Where the scan that broke `limit` starts.
        var offset = 0
    }

    /// Counts the scans of a JPEG, stopping at the one past `limit`: a linear pass over the
    /// bytes that skips each marker segment by its length and steps over entropy-coded data
    /// (where FF is followed by 00 stuffing or a restart marker, never by another marker).
    /// libjpeg-turbo 2.1's TurboJPEG API has no configurable scan limit (`TJPARAM_SCANLIMIT` is
    /// 3.0's), and its fixed one stops only after the image is allocated.
    static func markers(_ b: UnsafeRawBufferPointer, limit: Int) -> Markers {
        var found = Markers()
        var i = 2  // after SOI
        while i + 1 < b.count {
            guard b[i] == 0xFF else { i += 1; continue }  // entropy-coded data or stray bytes
            let m = b[i + 1]
            switch m {
            case 0xFF: i += 1  // fill byte
            case 0x00, 0x01, 0xD0...0xD8: i += 2  // stuffed FF, TEM, RSTn, SOI: no length
            case 0xD9: return found  // EOI: libjpeg reads nothing after it
            default:
                guard i + 3 < b.count else { return found }
                let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
                if m == 0xDA {
                    found.scans += 1
                    if found.scans > limit { found.offset = i; return found }
                }
                if [0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF].contains(m) { found.arithmetic = true }
                i += 2 + max(length, 2)
            }
        }
        return found
    }

    /// Encodes an RGB image (4:2:0, the given quality, sequential or progressive): for
    /// benchmarks and tests.
    public static func encode(_ image: RGBImage, quality: Int = 90, progressive: Bool = false) throws -> Data {
        guard let handle = tjInitCompress() else {
            throw DataFileError(path: "<memory>", reason: "libjpeg-turbo could not start an encoder")
        }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let status = image.pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue),
                        &buffer, &size, Int32(TJSAMP_420.rawValue), Int32(quality), progressive ? TJFLAG_PROGRESSIVE : 0)
        }
        defer { tjFree(buffer) }
        guard status == 0, let buffer else {
            throw DataFileError(path: "<memory>", reason: "JPEG encoding failed: \(message(handle))")
        }
        return Data(bytes: buffer, count: Int(size))
    }

    private static func withDecoder<R>(path: String, _ body: (tjhandle) throws -> R) throws -> R {
        guard let handle = tjInitDecompress() else {
            throw DataFileError(path: path, reason: "libjpeg-turbo could not start a decoder")
        }
        defer { tjDestroy(handle) }
        return try body(handle)
    }

    private static func header(_ handle: tjhandle, _ raw: UnsafeRawBufferPointer, path: String, limits: Limits) throws -> Header {
        guard raw.count >= 4, raw[0] == 0xFF, raw[1] == 0xD8 else {
            throw DataFileError(path: path,
                                reason: "not a JPEG file (it does not start with the SOI marker FF D8)")
        }
        var (w, h, sub, cs): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        if tjDecompressHeader3(handle, raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), &w, &h, &sub, &cs) != 0 {
            throw DataFileError(path: path, reason: "unreadable JPEG header: \(message(handle))")
        }
        guard w > 0, h > 0 else {
            throw DataFileError(path: path,
                                reason: "unreadable JPEG header: it declares no image size (no frame header; the file is truncated or damaged)")
        }
        let pixels = Int(w) * Int(h)  // both below 2^16
        guard pixels <= limits.maxPixels else {
            throw DataFileError(path: path,
                                reason: "the JPEG declares \(w)×\(h) = \(pixels) pixels, more than the limit of \(limits.maxPixels) (--max-image-pixels or JPEG.maxPixels raises it)")
        }
        let found = markers(raw, limit: limits.maxScans)
        let (perByte, overflow) = limits.maxPixelsPerByte.multipliedReportingOverflow(by: raw.count)
        guard found.arithmetic || overflow || pixels <= perByte else {
            throw DataFileError(path: path,
                                reason: "the JPEG declares \(w)×\(h) = \(pixels) pixels in a file of \(raw.count) bytes, more than the limit of \(limits.maxPixelsPerByte) pixels per byte (\(perByte)) a complete image can reach; it is truncated or crafted (JPEG.limits.maxPixelsPerByte raises it)")
        }
        guard found.scans <= limits.maxScans else {
            throw DataFileError(path: path, record: found.scans - 1, offset: found.offset,
                                reason: "the JPEG holds more than \(limits.maxScans) scans (the limit; --max-jpeg-scans or JPEG.limits.maxScans raises it); decoding each would take a pass over the whole image")
        }
        let colorspaces = ["RGB", "YCbCr", "Gray", "CMYK", "YCCK"]
        let subsamplings = ["4:4:4", "4:2:2", "4:2:0", "gray", "4:4:0", "4:1:1"]
        return Header(width: Int(w), height: Int(h),
                      colorspace: colorspaces.indices.contains(Int(cs)) ? colorspaces[Int(cs)] : "unknown",
                      subsampling: subsamplings.indices.contains(Int(sub)) ? subsamplings[Int(sub)] : "unknown")
    }

    /// After a failed `tjDecompress2`: accepts warnings PIL accepts, throws for the rest.
    private static func check(_ handle: tjhandle, path: String, data: UnsafeRawBufferPointer) throws {
        let text = message(handle)
        let truncated = text.contains("Premature end")
        if tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) && !truncated { return }
        throw DataFileError(path: path, record: nil, offset: truncated ? data.count : nil,
                            reason: truncated ? "the JPEG data ends early; the file is truncated (\(text))" : "corrupt JPEG data: \(text)")
    }

    private static func message(_ handle: tjhandle) -> String {
        tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown libjpeg-turbo error"
    }
}
