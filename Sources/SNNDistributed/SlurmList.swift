/// Slurm's compressed lists: host lists (`node[03-05,9],gpu1`) and per-node task counts
/// (`2(x3),1`), read without expanding them, so a list naming a million hosts costs nothing.
enum SlurmList {
    /// The first host of a compressed host list, leading zeros kept (`node[03-05,9]` → `node03`),
    /// or nil when any part of the list is malformed: an empty host, an unbalanced or nested
    /// bracket, a range that is not `digits` or `digits-digits` with the first at most the second.
    ///
    /// A host may hold several bracket groups (`rack[1-2]-n[01-04]` → `rack1-n01`), as Slurm's
    /// hostlist reads them.
    static func firstHost(of list: String) -> String? {
        var first: String?
        var host = ""  // the first host of the entry being read
        var hostIsEmpty = true
        var bracket: String?  // the text inside an open bracket
        for character in list {
            if var inside = bracket {
                switch character {
                case "[": return nil
                case "]":
                    guard let start = firstOfRanges(inside) else { return nil }
                    host += start
                    hostIsEmpty = false
                    bracket = nil
                default:
                    inside.append(character)
                    bracket = inside
                }
                continue
            }
            switch character {
            case "[": bracket = ""
            case "]": return nil
            case ",":
                guard !hostIsEmpty else { return nil }
                if first == nil { first = host }
                (host, hostIsEmpty) = ("", true)
            default:
                guard !character.isWhitespace else { return nil }
                host.append(character)
                hostIsEmpty = false
            }
        }
        guard bracket == nil, !hostIsEmpty else { return nil }
        return first ?? host
    }

    /// The first value of `03-05,9` as written (`03`), or nil when a range is malformed.
    private static func firstOfRanges(_ text: String) -> String? {
        let ranges = text.split(separator: ",", omittingEmptySubsequences: false)
        for range in ranges {
            let ends = range.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), ends.allSatisfy({ isDigits($0) }) else { return nil }
            if ends.count == 2 {
                // Compare as numbers without overflow: strip leading zeros, then length, then text.
                let low = ends[0].drop { $0 == "0" }, high = ends[1].drop { $0 == "0" }
                guard low.count < high.count || (low.count == high.count && low <= high) else { return nil }
            }
        }
        return ranges.first.map { String($0.split(separator: "-")[0]) }
    }

    private static func isDigits(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// A per-node task list such as `2(x3),1` (two tasks on each of three nodes, then one) as
    /// (tasks, nodes) pairs, or nil when it is malformed.
    static func taskCounts(_ list: String) -> [(tasks: Int, nodes: Int)]? {
        var entries: [(tasks: Int, nodes: Int)] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            var count = item, repeats = 1
            if let open = item.firstIndex(of: "(") {
                guard item.hasSuffix(")") else { return nil }
                let inner = item[item.index(after: open)..<item.index(before: item.endIndex)]
                guard inner.hasPrefix("x"), let m = positive(inner.dropFirst()) else { return nil }
                (count, repeats) = (item[..<open], m)
            }
            guard let n = positive(count) else { return nil }
            entries.append((n, repeats))
        }
        return entries
    }

    /// The task count of node `node` (0-based) in `entries`, or nil when the list has fewer nodes.
    static func tasks(onNode node: Int, of entries: [(tasks: Int, nodes: Int)]) -> Int? {
        var remaining = node
        for entry in entries {
            if remaining < entry.nodes { return entry.tasks }
            remaining -= entry.nodes
        }
        return nil
    }

    private static func positive(_ text: Substring) -> Int? {
        guard isDigits(text), let value = Int(text), value >= 1 else { return nil }
        return value
    }
}
