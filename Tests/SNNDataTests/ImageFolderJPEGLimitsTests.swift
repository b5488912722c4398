import Foundation
import SNNCPU
import SNNData
import SNNTensor
import Testing

/// Hostile JPEGs built inside the tests: a tiny file declaring a huge image, thousands of
/// progressive scans, every truncation. Each must end in a ``DataFileError`` naming the file,
/// what it declares and the limit, before the decoder allocates the image.
@Suite("JPEG limits")
struct ImageFolderJPEGLimitsTests {
    init() { CPUBackend.register() }

    /// A `width`×`height` image of smooth colours, encoded by libjpeg-turbo.
    static func encoded(_ width: Int, _ height: Int, progressive: Bool = false, uniform: Bool = false) throws -> Data {
        var pixels = [UInt8](repeating: 128, count: width * height * 3)
        if !uniform { for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: i * 7 / 3 + i / (3 * width)) } }
        return try JPEG.encode(RGBImage(width: width, height: height, pixels: pixels), progressive: progressive)
    }

    /// `jpeg` with its frame header (SOF0/SOF2) rewritten to declare `width`×`height`.
    static func declaring(_ jpeg: Data, width: Int, height: Int) throws -> Data {
        var b = [UInt8](jpeg)
        let sof = try #require((2..<(b.count - 9)).first { b[$0] == 0xFF && (b[$0 + 1] == 0xC0 || b[$0 + 1] == 0xC2) })
        (b[sof + 5], b[sof + 6], b[sof + 7], b[sof + 8]) = (UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF))
        return Data(b)
    }

    /// `jpeg` with `count` extra (empty) scans of component 1 inserted before its EOI marker.
    static func withExtraScans(_ jpeg: Data, _ count: Int) -> Data {
        let scan: [UInt8] = [0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x01, 0x00]
        return jpeg.prefix(jpeg.count - 2) + Data((0..<count).flatMap { _ in scan }) + Data([0xFF, 0xD9])
    }

    private func refuses(_ data: Data, limits: JPEG.Limits? = nil, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try JPEG.decode(data, path: "crafted.jpg", limits: limits)
            Issue.record("expected an error", sourceLocation: sourceLocation)
        } catch let e as DataFileError {
            #expect(e.path == "crafted.jpg" && words.allSatisfy("\(e)".contains), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("not a DataFileError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("a 700-byte progressive JPEG declaring 65500×2732 is refused before decoding")
    func decompressionBomb() throws {
        let bomb = try Self.declaring(try Self.encoded(16, 16, progressive: true), width: 65500, height: 2732)
        #expect(bomb.count < 1500)
        refuses(bomb, ["65500×2732", "178946000 pixels", "limit of 100000000", "JPEG.maxPixels"])
        // Raising the pixel limit alone is not enough: no complete image is that small.
        refuses(bomb, limits: JPEG.Limits(maxPixels: 200_000_000), ["65500×2732", "in a file of \(bomb.count) bytes", "pixels per byte"])
        // The header alone is refused the same way.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snn-bomb-\(getpid()).jpg").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try bomb.write(to: URL(fileURLWithPath: path))
        #expect { try JPEG.readHeader(path) } throws: { "\($0)".contains(path) && "\($0)".contains("65500×2732") }
        // The largest image libjpeg-turbo takes, 65500×65500 (just under 2^32 pixels), in a baseline file;
        // past it (65535 fits the header's 16 bits) libjpeg-turbo's own check answers.
        refuses(try Self.declaring(try Self.encoded(16, 16), width: 65500, height: 65500), ["65500×65500", "4290250000 pixels"])
        refuses(try Self.declaring(try Self.encoded(16, 16), width: 65535, height: 65535), ["unreadable JPEG header", "65500"])
    }

    @Test("the pixel limits hold at their boundaries")
    func pixelBoundaries() throws {
        let jpeg = try Self.encoded(64, 64, uniform: true)
        #expect(try JPEG.decode(jpeg, path: "a.jpg", limits: JPEG.Limits(maxPixels: 4096)).pixels.count == 4096 * 3)
        refuses(jpeg, limits: JPEG.Limits(maxPixels: 4095), ["64×64", "limit of 4095"])
        let perByte = (4096 + jpeg.count - 1) / jpeg.count
        #expect(try JPEG.decode(jpeg, path: "a.jpg", limits: JPEG.Limits(maxPixelsPerByte: perByte)).width == 64)
        refuses(jpeg, limits: JPEG.Limits(maxPixelsPerByte: perByte - 1), ["64×64", "pixels per byte"])
        // A uniform 4:2:0 image is close to the densest a JPEG gets, and within the default.
        let big = try Self.encoded(1024, 1024, uniform: true)
        #expect(4 * 1024 * 1024 / big.count < JPEG.Limits.standard.maxPixelsPerByte / 2)
        #expect(try JPEG.decode(big, path: "big.jpg").width == 1024)
        #expect(JPEG.maxPixels == JPEG.limits.maxPixels && JPEG.Limits.standard.maxPixels == 100_000_000)
    }

    @Test("a progressive JPEG with 2000 scans is refused by counting its SOS markers")
    func tooManyScans() throws {
        let progressive = try Self.encoded(16, 16, progressive: true)
        let hostile = Self.withExtraScans(progressive, 2000)
        refuses(hostile, ["more than 500 scans", "JPEG.limits.maxScans"])
        // The real file's scan count is the boundary: with the limit at it, it decodes.
        let scans = try #require((1...64).first { (try? JPEG.decode(progressive, path: "p.jpg", limits: JPEG.Limits(maxScans: $0))) != nil })
        #expect(scans > 1, "a progressive file has several scans")
        refuses(progressive, limits: JPEG.Limits(maxScans: scans - 1), ["more than \(scans - 1) scans"])
        #expect(try JPEG.decode(Self.encoded(16, 16), path: "s.jpg", limits: JPEG.Limits(maxScans: 1)).width == 16)
        // Markers after EOI are never read, so they do not count; FF 00 and RSTn inside entropy-coded data are not markers.
        let trailing = progressive + Data((0..<600).flatMap { _ in [0xFF, 0xDA, 0x00, 0x02] as [UInt8] })
        #expect(try JPEG.decode(trailing, path: "t.jpg").width == 16)
    }

    @Test("every truncation of a JPEG ends in an image or an error naming the file")
    func truncations() throws {
        for jpeg in [try Self.encoded(24, 20, progressive: true), try Self.encoded(24, 20)] {
            for n in 0..<jpeg.count {
                do { _ = try JPEG.decode(jpeg.prefix(n), path: "cut.jpg") } catch let e as DataFileError {
                    #expect(e.path == "cut.jpg")
                }
            }
        }
    }

    @Test("ImageFolderDataset applies its JPEG limits to every image")
    func datasetLimits() throws {
        let root = try TestFiles.temporaryRoot("jpeg-limits")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = root.appendingPathComponent("val/n01440764")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(contentsOf: URL(fileURLWithPath: "\(TestFiles.shared)/imagenet-sample/imagenette-224/val/n01440764/ILSVRC2012_val_00009111.JPEG"))
            .write(to: dir.appendingPathComponent("a.JPEG"))
        let strict = try ImageFolderDataset(root: root.path, train: false, classes: .all, seed: 0, jpegLimits: JPEG.Limits(maxPixels: 224 * 224 - 1))
        #expect { try strict.batch([0], epoch: 0) } throws: { "\($0)".contains("a.JPEG") && "\($0)".contains("limit of 50175") }
        let normal = try ImageFolderDataset(root: root.path, train: false, classes: .all, seed: 0)
        #expect(try normal.batch([0], epoch: 0).inputs.shape == [1, 3, 224, 224])
    }
}
