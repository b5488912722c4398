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
    /// The most pixels an image may declare: PIL refuses more than this as a decompression bomb.
    public static let maxPixels = 178_956_970

    /// What a JPEG's header declares.
    public struct Header: Sendable {
        public let width: Int
        public let height: Int
        /// "RGB", "YCbCr", "Gray", "CMYK" or "YCCK".
        public let colorspace: String
        /// Chroma subsampling: "4:4:4", "4:2:2", "4:2:0", "gray", "4:4:0", "4:1:1".
        public let subsampling: String
    }

    /// Reads and decodes the JPEG file at `path`.
    public static func read(_ path: String) throws -> RGBImage {
        try decode(try EventFiles.contents(path), path: path)
    }

    /// The header of the JPEG file at `path`, without decoding the image.
    public static func readHeader(_ path: String) throws -> Header {
        let data = try EventFiles.contents(path)
        return try withDecoder(path: path) { handle in
            try data.withUnsafeBytes { try header(handle, $0, path: path) }
        }
    }

    /// Decodes JPEG bytes; `path` labels errors.
    public static func decode(_ data: Data, path: String) throws -> RGBImage {
        try withDecoder(path: path) { handle in
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> RGBImage in
                let h = try header(handle, raw, path: path)
                let cmyk = h.colorspace == "CMYK" || h.colorspace == "YCCK"
                let channels = cmyk ? 4 : 3
                var out = [UInt8](repeating: 0, count: h.width * h.height * channels)
                let status = out.withUnsafeMutableBufferPointer { dst in
                    tjDecompress2(handle, raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), dst.baseAddress,
                                  Int32(h.width), 0, Int32(h.height), Int32(cmyk ? TJPF_CMYK.rawValue : TJPF_RGB.rawValue), 0)
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

    /// Encodes an RGB image (4:2:0, the given quality): for benchmarks and tests.
    public static func encode(_ image: RGBImage, quality: Int = 90) throws -> Data {
        guard let handle = tjInitCompress() else {
            throw DataFileError(path: "<memory>", record: nil, offset: 0, reason: "libjpeg-turbo could not start an encoder")
        }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let status = image.pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue),
                        &buffer, &size, Int32(TJSAMP_420.rawValue), Int32(quality), 0)
        }
        defer { tjFree(buffer) }
        guard status == 0, let buffer else {
            throw DataFileError(path: "<memory>", record: nil, offset: 0, reason: "JPEG encoding failed: \(message(handle))")
        }
        return Data(bytes: buffer, count: Int(size))
    }

    private static func withDecoder<R>(path: String, _ body: (tjhandle) throws -> R) throws -> R {
        guard let handle = tjInitDecompress() else {
            throw DataFileError(path: path, record: nil, offset: 0, reason: "libjpeg-turbo could not start a decoder")
        }
        defer { tjDestroy(handle) }
        return try body(handle)
    }

    private static func header(_ handle: tjhandle, _ raw: UnsafeRawBufferPointer, path: String) throws -> Header {
        guard raw.count >= 4, raw[0] == 0xFF, raw[1] == 0xD8 else {
            throw DataFileError(path: path, record: nil, offset: 0,
                                reason: "not a JPEG file (it does not start with the SOI marker FF D8)")
        }
        var (w, h, sub, cs): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        if tjDecompressHeader3(handle, raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), &w, &h, &sub, &cs) != 0 {
            throw DataFileError(path: path, record: nil, offset: 0, reason: "unreadable JPEG header: \(message(handle))")
        }
        guard w > 0, h > 0 else {
            throw DataFileError(path: path, record: nil, offset: 0,
                                reason: "unreadable JPEG header: it declares no image size (no frame header; the file is truncated or damaged)")
        }
        guard Int(w) * Int(h) <= maxPixels else {
            throw DataFileError(path: path, record: nil, offset: 0,
                                reason: "the JPEG declares \(w)×\(h) pixels (at most \(maxPixels) are accepted)")
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
        throw DataFileError(path: path, record: nil, offset: truncated ? data.count : 0,
                            reason: truncated ? "the JPEG data ends early; the file is truncated (\(text))" : "corrupt JPEG data: \(text)")
    }

    private static func message(_ handle: tjhandle) -> String {
        tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown libjpeg-turbo error"
    }
}
