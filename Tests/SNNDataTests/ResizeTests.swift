import Foundation
import SNNData
import Testing

/// Antialiased bilinear resizing against PyTorch's (fixture from scripts/make_resize_fixture.py).
@Suite("resize")
struct ResizeTests {
    struct Case: Decodable {
        let height: Int, width: Int
        let out_height: Int, out_width: Int
        let input: [Float], output: [Float]
    }

    @Test("matches torch.nn.functional.interpolate(bilinear, antialias=True) on event-count planes")
    func matchesPyTorch() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/resize.json")
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
        #expect(cases.count == 4)
        for c in cases {
            var out = [Float](repeating: 0, count: 2 * c.out_height * c.out_width)
            c.input.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    Resize.bilinear(src.baseAddress!, planes: 2, height: c.height, width: c.width,
                                    into: dst.baseAddress!, outHeight: c.out_height, outWidth: c.out_width)
                }
            }
            let worst = zip(out, c.output).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-5, "\(c.height)×\(c.width) → \(c.out_height)×\(c.out_width): max error \(worst)")
        }
    }
}
