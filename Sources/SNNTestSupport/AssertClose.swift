import SNNTensor
import Testing

/// Records an issue at the caller unless `actual` and `expected` have equal shapes and every
/// element satisfies `|a - e| <= atol + rtol·|e|`.
///
/// The message names the worst element (index, both values, its error), how many elements fail
/// and the tolerance, so a failure can be read without a debugger.
///
/// - Returns: whether the tensors were close.
@discardableResult
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double, _ comment: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.shape == expected.shape else {
        Issue.record(
            "\(prefix(comment))shape \(actual.shape) != expected \(expected.shape)", sourceLocation: sourceLocation)
        return false
    }
    return assertClose(
        actual.toDoubles(), expected.toDoubles(), shape: actual.shape,
        tolerance: Tolerance(rtol: rtol, atol: atol), comment, sourceLocation: sourceLocation)
}

/// ``assertClose(_:_:rtol:atol:_:sourceLocation:)`` with a named ``Tolerance``.
@discardableResult
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, _ tolerance: Tolerance, _ comment: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    assertClose(actual, expected, rtol: tolerance.rtol, atol: tolerance.atol, comment, sourceLocation: sourceLocation)
}

/// Compares a tensor with hand-computed values in row-major order.
@discardableResult
public func assertClose(
    _ actual: Tensor, _ expected: [Double], shape: [Int], _ tolerance: Tolerance = .float64,
    _ comment: String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.shape == shape else {
        Issue.record("\(prefix(comment))shape \(actual.shape) != expected \(shape)", sourceLocation: sourceLocation)
        return false
    }
    return assertClose(
        actual.toDoubles(), expected, shape: shape, tolerance: tolerance, comment, sourceLocation: sourceLocation)
}

/// Compares two tensors with an absolute bound scaled by the expected output's largest
/// magnitude: `|a - e| <= tolerance · max(max|e|, 1e-30)`. The natural criterion for
/// accumulations (matmul, convolution) whose individual outputs may cancel to near zero.
@discardableResult
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, relativeToMaxMagnitude tolerance: Double, _ comment: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    let scale = Swift.max(expected.toDoubles().map { Swift.abs($0) }.max() ?? 0, 1e-30)
    return assertClose(
        actual, expected, rtol: 0, atol: tolerance * scale,
        comment.isEmpty
            ? "relative to max |expected| = \(scale)" : "\(comment) (relative to max |expected| = \(scale))",
        sourceLocation: sourceLocation)
}

/// The elementwise comparison behind every `assertClose`.
@discardableResult
public func assertClose(
    _ actual: [Double], _ expected: [Double], shape: [Int]? = nil, tolerance: Tolerance,
    _ comment: String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.count == expected.count else {
        Issue.record(
            "\(prefix(comment))\(actual.count) values != expected \(expected.count)", sourceLocation: sourceLocation)
        return false
    }
    var failures = 0
    var worst: (index: Int, excess: Double)? = nil
    for i in actual.indices where !tolerance.accepts(actual[i], expected[i]) {
        failures += 1
        let err = Swift.abs(actual[i] - expected[i])
        let excess = err.isNaN ? .infinity : err - (tolerance.atol + tolerance.rtol * Swift.abs(expected[i]))
        if worst.map({ excess > $0.excess }) ?? true { worst = (i, excess) }
    }
    guard let worst else { return true }
    let i = worst.index
    let position = shape.map { " at \(multiIndex(i, $0))" } ?? ""
    Issue.record(
        """
        \(prefix(comment))\(failures) of \(actual.count) elements differ beyond \(tolerance); \
        worst at flat index \(i)\(position): got \(actual[i]), expected \(expected[i]) \
        (|diff| \(Swift.abs(actual[i] - expected[i])))
        """, sourceLocation: sourceLocation)
    return false
}

/// The row-major multi-index of flat index `i` in `shape`.
public func multiIndex(_ i: Int, _ shape: [Int]) -> [Int] {
    var rest = i
    var index = [Int](repeating: 0, count: shape.count)
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
        index[axis] = rest % shape[axis]
        rest /= shape[axis]
    }
    return index
}

private func prefix(_ comment: String) -> String { comment.isEmpty ? "" : "\(comment): " }
