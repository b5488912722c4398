/// Resizing of frame planes, as PyTorch's `interpolate(mode: "bilinear", antialias: true,
/// align_corners: false)` and PIL's bilinear filter compute it: a separable triangle filter
/// whose support widens with the downscale factor, so small events are averaged, not skipped.
public enum Resize {
    /// Per output index: the first source index and the normalised weights.
    static func weights(input: Int, output: Int) -> [(start: Int, weights: [Float])] {
        let scale = Double(input) / Double(output)
        let support = max(scale, 1.0)  // the triangle's half-width in source pixels
        return (0..<output).map { o in
            let center = (Double(o) + 0.5) * scale
            let lo = max(Int((center - support + 0.5).rounded(.down)), 0)
            let hi = min(Int((center + support + 0.5).rounded(.down)), input)
            var w = (lo..<hi).map { j in max(0, 1 - abs((Double(j) + 0.5 - center) / support)) }
            let total = w.reduce(0, +)
            if total > 0 { w = w.map { $0 / total } }
            return (lo, w.map(Float.init))
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
