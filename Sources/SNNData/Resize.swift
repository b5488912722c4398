/// Resizing of frame planes, as PyTorch's `interpolate(mode: "bilinear", antialias: true,
/// align_corners: false)` and PIL's bilinear filter compute it: a separable triangle filter
/// whose support widens with the downscale factor, so small events are averaged, not skipped.
public enum Resize {
    /// Per output index: the first source index and the normalised weights.
    static func weights(input: Int, output: Int) -> [(start: Int, weights: [Float])] {
        preciseWeights(input: input, output: output).map { ($0.start, $0.weights.map(Float.init)) }
    }

    /// ``weights(input:output:)`` in double precision, as PIL computes them.
    static func preciseWeights(input: Int, output: Int) -> [(start: Int, weights: [Double])] {
        let scale = Double(input) / Double(output)
        let support = max(scale, 1.0)  // the triangle's half-width in source pixels
        return (0..<output).map { o in
            let center = (Double(o) + 0.5) * scale
            let lo = max(Int((center - support + 0.5).rounded(.down)), 0)
            let hi = min(Int((center + support + 0.5).rounded(.down)), input)
            var w = (lo..<hi).map { j in max(0, 1 - abs((Double(j) + 0.5 - center) / support)) }
            let total = w.reduce(0, +)
            if total > 0 { w = w.map { $0 / total } }
            return (lo, w)
        }
    }

    /// Resizes `planes` planes of `height×width` floats at `source` to `outHeight×outWidth` at
    /// `destination`.
    public static func bilinear(_ source: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                                into destination: UnsafeMutablePointer<Float>, outHeight: Int, outWidth: Int) {
        let rows = weights(input: height, output: outHeight), cols = weights(input: width, output: outWidth)
        var horizontal = [Float](repeating: 0, count: height * outWidth)
        for p in 0..<planes {
            let src = source + p * height * width
            // Rows first: height × outWidth.
            for y in 0..<height {
                for (x, c) in cols.enumerated() {
                    var s: Float = 0
                    for (k, w) in c.weights.enumerated() { s += w * src[y * width + c.start + k] }
                    horizontal[y * outWidth + x] = s
                }
            }
            let dst = destination + p * outHeight * outWidth
            for (y, r) in rows.enumerated() {
                for x in 0..<outWidth {
                    var s: Float = 0
                    for (k, w) in r.weights.enumerated() { s += w * horizontal[(r.start + k) * outWidth + x] }
                    dst[y * outWidth + x] = s
                }
            }
        }
    }
}

extension Resize {
    /// Resizes the `crop` region of an 8-bit RGB image to `outWidth×outHeight` as PIL's
    /// `Image.resize(..., BILINEAR)` does on 8-bit images, which is what torchvision's transforms
    /// use on the images its loader opens. Returns interleaved RGB.
    public static func bilinearRGB(_ image: RGBImage, crop: (x: Int, y: Int, width: Int, height: Int),
                                   outWidth: Int, outHeight: Int) -> [UInt8] {
        image.pixels.withUnsafeBufferPointer {
            bilinear8($0.baseAddress!, width: image.width, height: image.height, channels: 3, crop: crop,
                      outWidth: outWidth, outHeight: outHeight)
        }
    }

    /// The filter of ``weights(input:output:)`` flattened for the 8-bit passes: per output index
    /// the first source index, the tap count and `taps` weights (zero-padded) in PIL's fixed
    /// point, `round(w · 2^22)`.
    struct FlatWeights {
        static let precision = 22
        let start: [Int], count: [Int], weights: [Int32], taps: Int
        init(input: Int, output: Int) {
            let w = Resize.preciseWeights(input: input, output: output)
            taps = w.map(\.weights.count).max() ?? 1
            start = w.map(\.start)
            count = w.map(\.weights.count)
            var flat = [Int32](repeating: 0, count: output * taps)
            for (o, c) in w.enumerated() {
                for (k, v) in c.weights.enumerated() { flat[o * taps + k] = Int32((0.5 + v * Double(1 << FlatWeights.precision)).rounded(.down)) }
            }
            weights = flat
        }
    }

    /// PIL's bilinear resize of 8-bit interleaved pixels (`[y][x][channel]`): the antialiased
    /// triangle filter of ``bilinear``, the horizontal pass first, each pass rounded to 8 bits;
    /// a pass whose size does not change is skipped. Resizes the `crop` region.
    public static func bilinear8(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int, channels: Int,
                                 crop: (x: Int, y: Int, width: Int, height: Int), outWidth: Int, outHeight: Int) -> [UInt8] {
        precondition(crop.x >= 0 && crop.y >= 0 && crop.width > 0 && crop.height > 0
                     && crop.x + crop.width <= width && crop.y + crop.height <= height,
                     "[Resize] crop \(crop) outside the \(width)×\(height) image")
        // PIL's arithmetic: integer taps of 22 fractional bits, a rounding bias, an 8-bit clip.
        let (bias, shift) = (Int32(1) << (FlatWeights.precision - 1), Int32(FlatWeights.precision))
        @inline(__always) func round8(_ v: Int32) -> UInt8 { UInt8(Swift.min(Swift.max(v >> shift, 0), 255)) }
        let rowLength = outWidth * channels
        var horizontal = [UInt8](repeating: 0, count: crop.height * rowLength)
        horizontal.withUnsafeMutableBufferPointer { h in
            let h = h.baseAddress!
            if crop.width == outWidth {
                for y in 0..<crop.height {
                    (h + y * rowLength).update(from: pixels + ((crop.y + y) * width + crop.x) * channels, count: rowLength)
                }
                return
            }
            let cols = FlatWeights(input: crop.width, output: outWidth)
            cols.start.withUnsafeBufferPointer { start in
                cols.count.withUnsafeBufferPointer { count in
                    cols.weights.withUnsafeBufferPointer { weights in
                        for y in 0..<crop.height {
                            let row = pixels + ((crop.y + y) * width + crop.x) * channels
                            let out = h + y * rowLength
                            for x in 0..<outWidth {
                                let s = row + start[x] * channels, w = weights.baseAddress! + x * cols.taps
                                if channels == 3 {
                                    var (r, g, b) = (bias, bias, bias)
                                    for k in 0..<count[x] {
                                        r &+= w[k] &* Int32(s[3 * k]); g &+= w[k] &* Int32(s[3 * k + 1]); b &+= w[k] &* Int32(s[3 * k + 2])
                                    }
                                    (out[3 * x], out[3 * x + 1], out[3 * x + 2]) = (round8(r), round8(g), round8(b))
                                } else {
                                    for ch in 0..<channels {
                                        var acc = bias
                                        for k in 0..<count[x] { acc &+= w[k] &* Int32(s[k * channels + ch]) }
                                        out[x * channels + ch] = round8(acc)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard crop.height != outHeight else { return horizontal }
        let rows = FlatWeights(input: crop.height, output: outHeight)
        var out = [UInt8](repeating: 0, count: outHeight * rowLength)
        var acc = [Int32](repeating: 0, count: rowLength)
        horizontal.withUnsafeBufferPointer { h in
            out.withUnsafeMutableBufferPointer { o in
                acc.withUnsafeMutableBufferPointer { acc in
                    for y in 0..<outHeight {
                        acc.update(repeating: bias)
                        for k in 0..<rows.count[y] {
                            let w = rows.weights[y * rows.taps + k], src = h.baseAddress! + (rows.start[y] + k) * rowLength
                            for i in 0..<rowLength { acc[i] &+= w &* Int32(src[i]) }
                        }
                        for i in 0..<rowLength { o[y * rowLength + i] = round8(acc[i]) }
                    }
                }
            }
        }
        return out
    }
}
