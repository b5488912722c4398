import Foundation

/// Small, dependency-free SVG figures: line charts, grouped bars and a heatmap with contour
/// lines. Every figure has a title, labelled axes with ticks and, for several series, a legend;
/// text is escaped; the output is a standalone `<svg>` element.
public enum SVG {
    /// The colours of successive series (colour-blind-safe, Okabe–Ito).
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

    /// A named series of (x, y) points.
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var dashed: Bool
        public var color: String
        public init(name: String, points: [(x: Double, y: Double)], dashed: Bool = false, color: String) {
            (self.name, self.points, self.dashed, self.color) = (name, points, dashed, color)
        }
    }

    static let (width, height) = (640.0, 360.0)
    static let (left, right, top, bottom) = (64.0, 160.0, 36.0, 48.0)

    /// `text` safe inside SVG and HTML.
    public static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// About five round tick values covering `lo...hi`.
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        guard hi > lo else { return [lo] }
        let raw = (hi - lo) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        // Each tick as a multiple of the step (adding the step up would drift off the last one).
        let first = ceil(lo / step - 1e-9)
        var result: [Double] = []
        var k = 0.0
        while (first + k) * step <= hi + step * 1e-9 {
            let t = (first + k) * step
            result.append(abs(t) < step * 1e-9 ? 0 : t)
            k += 1
        }
        return result
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.1e", v) }
        return String(format: "%g", (v * 1e4).rounded() / 1e4)
    }

    /// The frame of a chart: title, axes, ticks and labels; returns the SVG text and the maps
    /// from data to pixel coordinates.
    static func frame(title: String, xLabel: String, yLabel: String, x: ClosedRange<Double>, y: ClosedRange<Double>,
                      xTicks: [Double]? = nil) -> (String, (Double) -> Double, (Double) -> Double) {
        let (pw, ph) = (width - left - right, height - top - bottom)
        let xs = x.upperBound > x.lowerBound ? x : (x.lowerBound - 0.5)...(x.upperBound + 0.5)
        let ys = y.upperBound > y.lowerBound ? y : (y.lowerBound - 0.5)...(y.upperBound + 0.5)
        let px = { (v: Double) in left + (v - xs.lowerBound) / (xs.upperBound - xs.lowerBound) * pw }
        let py = { (v: Double) in top + ph - (v - ys.lowerBound) / (ys.upperBound - ys.lowerBound) * ph }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text class=\"title\" x=\"\(left)\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#444\"/>\n"
        for t in xTicks ?? ticks(xs.lowerBound, xs.upperBound) where t >= xs.lowerBound && t <= xs.upperBound {
            s += "<line x1=\"\(px(t))\" y1=\"\(top + ph)\" x2=\"\(px(t))\" y2=\"\(top + ph + 4)\" stroke=\"#444\"/>"
            s += "<text x=\"\(px(t))\" y=\"\(top + ph + 17)\" text-anchor=\"middle\">\(label(t))</text>\n"
        }
        for t in ticks(ys.lowerBound, ys.upperBound) {
            s += "<line x1=\"\(left - 4)\" y1=\"\(py(t))\" x2=\"\(left)\" y2=\"\(py(t))\" stroke=\"#444\"/>"
            s += "<line x1=\"\(left)\" y1=\"\(py(t))\" x2=\"\(left + pw)\" y2=\"\(py(t))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(left - 7)\" y=\"\(py(t) + 4)\" text-anchor=\"end\">\(label(t))</text>\n"
        }
        s += "<text class=\"xlabel\" x=\"\(left + pw / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text class=\"ylabel\" transform=\"translate(16 \(top + ph / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        return (s, px, py)
    }

    static func legend(_ entries: [(name: String, color: String, dashed: Bool)]) -> String {
        var s = ""
        for (i, e) in entries.enumerated() {
            let y = top + 12 + Double(i) * 18
            let x = width - right + 12
            s += "<line x1=\"\(x)\" y1=\"\(y - 4)\" x2=\"\(x + 22)\" y2=\"\(y - 4)\" stroke=\"\(e.color)\" stroke-width=\"2\"\(e.dashed ? " stroke-dasharray=\"4 3\"" : "")/>"
            s += "<text x=\"\(x + 28)\" y=\"\(y)\">\(escape(e.name))</text>\n"
        }
        return s
    }

    /// A line chart of `series` (each with at least one point).
    public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series], integerX: Bool = false) -> String {
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let (xs, ys) = (all.map(\.x), all.map(\.y))
        let x = (xs.min() ?? 0)...(xs.max() ?? 1)
        let y = (min(ys.min() ?? 0, 0))...(ys.max() ?? 1)
        let xTicks = integerX ? ticks(x.lowerBound, x.upperBound).filter { $0 == $0.rounded() } : nil
        var (s, px, py) = frame(title: title, xLabel: xLabel, yLabel: yLabel, x: x, y: y, xTicks: xTicks)
        for one in series {
            let points = one.points.filter { $0.x.isFinite && $0.y.isFinite }
            let path = points.map { String(format: "%.2f,%.2f", px($0.x), py($0.y)) }.joined(separator: " ")
            s += "<polyline class=\"series\" fill=\"none\" stroke=\"\(one.color)\" stroke-width=\"2\"\(one.dashed ? " stroke-dasharray=\"4 3\"" : "") points=\"\(path)\"/>\n"
            if points.count == 1, let p = points.first { s += "<circle cx=\"\(px(p.x))\" cy=\"\(py(p.y))\" r=\"3\" fill=\"\(one.color)\"/>\n" }
        }
        s += legend(series.map { ($0.name, $0.color, $0.dashed) })
        return s + "</svg>\n"
    }

    /// Bars of `groups` (a label each) with one bar per series in each group.
    public static func barChart(title: String, yLabel: String, groups: [String], series: [(name: String, values: [Double], color: String)]) -> String {
        let top = series.flatMap(\.values).filter(\.isFinite).max() ?? 1
        var (s, _, py) = frame(title: title, xLabel: "", yLabel: yLabel, x: 0...Double(max(groups.count, 1)), y: 0...max(top, 1e-12), xTicks: [])
        let pw = width - left - right
        let groupWidth = pw / Double(max(groups.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
        for (g, name) in groups.enumerated() {
            let x0 = left + Double(g) * groupWidth + groupWidth * 0.1
            for (k, one) in series.enumerated() where g < one.values.count && one.values[g].isFinite {
                let v = one.values[g]
                s += "<rect class=\"bar\" x=\"\(x0 + Double(k) * barWidth)\" y=\"\(py(v))\" width=\"\(barWidth)\" height=\"\(max(py(0) - py(v), 0))\" fill=\"\(one.color)\"><title>\(escape(one.name)) \(escape(name)): \(label(v))</title></rect>\n"
            }
            s += "<text x=\"\(x0 + groupWidth * 0.4)\" y=\"\(height - bottom + 17)\" text-anchor=\"middle\" font-size=\"10\">\(escape(name))</text>\n"
        }
        s += legend(series.map { ($0.name, $0.color, false) })
        return s + "</svg>\n"
    }

    /// A loss surface in 3-D, seen from above one corner: each grid cell is a quadrilateral
    /// shaded by its height, drawn back to front (no script: it stays a static, self-contained
    /// picture); the loss axis is on the left, the two directions' ends are labelled.
    public static func surface(title: String, axis: [Double], values: [[Double]]) -> String {
        let n = axis.count
        guard n >= 2, values.count == n, values.allSatisfy({ $0.count == n }) else { return "" }
        let flat = values.flatMap { $0 }.filter(\.isFinite)
        let (lo, hi) = (flat.min() ?? 0, flat.max() ?? 1)
        // Grid (i, j) in 0...1 each, height in 0...1; an oblique projection from the corner
        // (i = 0, j = 0) at the front.
        let (w, h) = (width - left - right, height - top - bottom)
        let scale = min(w / 2.2, h / 1.6)
        func project(_ u: Double, _ v: Double, _ z: Double) -> (Double, Double) {
            let x = left + w / 2 + (u - v) * scale * 0.95
            let y = top + h - (u + v) * scale * 0.35 - z * scale * 0.75 - 4
            return (x, y)
        }
        func unit(_ k: Int) -> Double { Double(k) / Double(n - 1) }
        func lift(_ i: Int, _ j: Int) -> Double {
            let v = values[i][j]
            return v.isFinite && hi > lo ? (v - lo) / (hi - lo) : 0
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "font-family=\"sans-serif\" font-size=\"11\"><title>\(escape(title))</title>"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += "<text class=\"title\" x=\"\(Int(width / 2))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        // Back to front: cells farther from the viewer (larger i + j) first.
        let cells = (0..<(n - 1)).flatMap { i in (0..<(n - 1)).map { (i, $0) } }.sorted { ($0.0 + $0.1) > ($1.0 + $1.1) }
        for (i, j) in cells {
            let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
            let points = corners.map { project(unit($0.0), unit($0.1), lift($0.0, $0.1)) }
            let mean = corners.map { lift($0.0, $0.1) }.reduce(0, +) / 4
            let c = Int(40 + 200 * mean)
            s += "<polygon class=\"cell\" points=\"" + points.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
                + "\" fill=\"rgb(\(c),\(min(c + 20, 255)),255)\" stroke=\"#335\" stroke-width=\"0.3\"/>"
        }
        s += "\n"
        // The loss axis at the left corner, and the ends of the two directions.
        let (bx, by) = project(0, 1, 0), (tx, ty) = project(0, 1, 1)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>", bx, by, tx, ty)
        s += String(format: "<text class=\"ylabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">loss %@</text>", bx - 4, by, escape(label(lo)))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>", tx - 4, ty + 4, escape(label(hi)))
        let (ax, ay) = project(1, 0, 0), (cx, cy) = project(0, 0, 0)
        s += String(format: "<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\">direction 1 → %@</text>", ax + 6, ay + 4, escape(label(axis[n - 1])))
        s += String(format: "<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">(%@, %@)</text>", cx, cy + 14,
                    escape(label(axis[0])), escape(label(axis[0])))
        s += String(format: "<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">direction 2 → %@</text>", bx - 6, by + 14, escape(label(axis[n - 1])))
        return s + "</svg>"
    }

    /// A heatmap of `values[i][j]` at (x = axis[i], y = axis[j]) with contour lines at `levels`
    /// (marching squares), darker for lower values.
    public static func heatmap(title: String, axis: [Double], values: [[Double]], levels: Int = 8) -> String {
        let n = axis.count
        guard n >= 2, values.count == n, values.allSatisfy({ $0.count == n }) else { return "" }
        let flat = values.flatMap { $0 }.filter(\.isFinite)
        let (lo, hi) = (flat.min() ?? 0, flat.max() ?? 1)
        var (s, px, py) = frame(title: title, xLabel: "direction 1", yLabel: "direction 2", x: axis[0]...axis[n - 1], y: axis[0]...axis[n - 1])
        let step = (axis[n - 1] - axis[0]) / Double(n - 1)
        func shade(_ v: Double) -> String {
            let f = hi > lo ? (v - lo) / (hi - lo) : 0
            let c = Int(40 + 200 * f)
            return "rgb(\(c),\(min(c + 20, 255)),255)"
        }
        // Each cell spans halfway to its neighbours, so edge cells stay inside the plot.
        func span(_ k: Int) -> (Double, Double) { (max(axis[k] - step / 2, axis[0]), min(axis[k] + step / 2, axis[n - 1])) }
        for i in 0..<n {
            for j in 0..<n {
                let ((xa, xb), (ya, yb)) = (span(i), span(j))
                let (x0, y0) = (px(xa), py(yb))
                s += String(format: "<rect class=\"cell\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%@\"/>",
                            x0, y0, px(xb) - x0, py(ya) - y0, shade(values[i][j]))
            }
        }
        s += "\n"
        // Contour lines: where the grid's bilinear surface crosses each level.
        for k in 1..<levels where hi > lo {
            let level = lo + (hi - lo) * Double(k) / Double(levels)
            var segments: [String] = []
            for i in 0..<(n - 1) {
                for j in 0..<(n - 1) {
                    let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
                    var crossings: [(Double, Double)] = []
                    for e in 0..<4 {
                        let (a, b) = (corners[e], corners[(e + 1) % 4])
                        let (va, vb) = (values[a.0][a.1], values[b.0][b.1])
                        guard (va < level) != (vb < level), va.isFinite, vb.isFinite else { continue }
                        let f = (level - va) / (vb - va)
                        let x = axis[a.0] + f * (axis[b.0] - axis[a.0]), y = axis[a.1] + f * (axis[b.1] - axis[a.1])
                        crossings.append((px(x), py(y)))
                    }
                    for c in stride(from: 0, to: crossings.count - 1, by: 2) {
                        segments.append(String(format: "M%.1f %.1fL%.1f %.1f", crossings[c].0, crossings[c].1, crossings[c + 1].0, crossings[c + 1].1))
                    }
                }
            }
            if !segments.isEmpty {
                s += "<path class=\"contour\" d=\"\(segments.joined())\" stroke=\"#222\" stroke-width=\"0.8\" fill=\"none\"><title>loss \(label(level))</title></path>\n"
            }
        }
        s += "<text x=\"\(width - right + 12)\" y=\"\(top + 12)\">loss \(label(lo))–\(label(hi))</text>\n"
        s += "<text x=\"\(width - right + 12)\" y=\"\(top + 30)\" font-size=\"10\">darker: lower</text>\n"
        return s + "</svg>\n"
    }
}
