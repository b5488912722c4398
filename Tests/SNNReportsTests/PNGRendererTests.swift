import Foundation
@testable import SNNReports
import Testing

/// PNG figures through librsvg and cairo, loaded at run time (`make deps` installs librsvg2-2).
@Suite("PNG figures")
struct PNGRendererTests {
    let chart = SVG.lineChart(title: "test accuracy", xLabel: "epoch", yLabel: "accuracy",
                              series: [SVG.Series(name: "TRT", points: [(1, 0.2), (2, 0.5), (3, 0.7)], color: SVG.palette[0])])
    let bars = SVG.barChart(title: "firing rate", yLabel: "rate", groups: ["layers.0.lif", "layers.1.lif"],
                            series: [(name: "TRT", values: [0.05, 0.1], color: SVG.palette[1])])

    func renderer() throws -> PNGRenderer {
        try #require(PNGRenderer.shared, "\(PNGRenderer.unavailable ?? "")")
    }

    /// A big-endian `UInt32` at `offset` of `data`.
    func bigEndian(_ data: Data, _ offset: Int) -> Int {
        data.dropFirst(offset).prefix(4).reduce(0) { $0 << 8 | Int($1) }
    }

    @Test("a PNG file of twice the SVG's size: signature, then IHDR with width and height")
    func pngFile() throws {
        for svg in [chart, bars] {
            let png = try renderer().png(fromSVG: svg)
            #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            #expect(String(decoding: png.dropFirst(12).prefix(4), as: UTF8.self) == "IHDR")
            #expect(bigEndian(png, 16) == 1280 && bigEndian(png, 20) == 720, "\(bigEndian(png, 16))×\(bigEndian(png, 20))")
            #expect(String(decoding: png.suffix(8).prefix(4), as: UTF8.self) == "IEND")
        }
        let small = try renderer().png(fromSVG: chart, scale: 1)
        #expect(bigEndian(small, 16) == 640 && bigEndian(small, 20) == 360)
    }

    @Test("the pixels hold the drawing: a white background, dark axes, the series' colour and the title's text")
    func pixels() throws {
        let image = try renderer().pixels(fromSVG: chart)
        #expect(image.width == 1280 && image.height == 720 && image.argb.count == 1280 * 720)
        func dark(_ p: UInt32) -> Bool { (p >> 16 & 0xFF) < 100 && (p >> 8 & 0xFF) < 100 && (p & 0xFF) < 100 && p >> 24 == 0xFF }
        #expect(image.argb.filter { $0 == 0xFFFF_FFFF }.count > image.argb.count / 2, "mostly white")
        #expect(image.argb.contains(where: dark), "axes and labels")
        // The series' stroke is 4 pixels wide at 2×: its middle is the palette colour exactly.
        #expect(image.argb.contains(0xFF00_72B2), "the series line")
        // Nothing but the title lies above y = 30 in the SVG (the plot's frame starts at 36).
        let titleBand = image.argb.prefix(60 * image.width)
        #expect(titleBand.filter(dark).count > 50, "the title's glyphs (fonts-dejavu-core)")
        let barImage = try renderer().pixels(fromSVG: bars)
        #expect(barImage.argb.filter { $0 == 0xFFD5_5E00 }.count > 1000, "the bars' fill")
    }

    @Test("an SVG librsvg refuses is an error naming the function")
    func badSVG() throws {
        #expect(throws: PNGError.self) { try renderer().png(fromSVG: "<svg") }
        do { _ = try renderer().png(fromSVG: "not xml") } catch { #expect("\(error)".hasPrefix("rsvg_handle_new_from_data: "), "\(error)") }
    }

    @Test("a missing library says which file it looked for and which Debian package has it")
    func missingLibrary() {
        do {
            _ = try PNGRenderer(rsvg: "/nonexistent/librsvg-2.so.2", cairo: "libcairo.so.2", gobject: "libgobject-2.0.so.0")
            Issue.record("loaded a library that does not exist")
        } catch {
            #expect("\(error)" == "librsvg not found (looked for /nonexistent/librsvg-2.so.2; Debian package librsvg2-2)")
        }
        do {
            _ = try PNGRenderer(rsvg: "librsvg-2.so.2", cairo: "libcairo.so.99", gobject: "libgobject-2.0.so.0")
            Issue.record("loaded a library that does not exist")
        } catch {
            #expect("\(error)" == "libcairo not found (looked for libcairo.so.99; Debian package libcairo2)")
        }
    }
}
