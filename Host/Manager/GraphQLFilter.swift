import Foundation
import GraphQL

/// Backend.AI's filter and ordering mini-language on paginated roots, over the fields of the
/// root's item type (the names a query selects):
///
///     filter: 'status == "RUNNING" & (name contains "py" | cluster_size >= 2)'
///     filter: 'email ilike "%@example.com" & !(role == "superadmin")'
///     order:  '-created_at, name'
///
/// Comparisons: `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, `like`, `ilike` (SQL patterns,
/// `%` and `_`), `in [..]`, `is null`, `isnot null`; values are "strings", numbers, true,
/// false, null or [lists]; `&` binds tighter than `|`, `!` negates, parentheses group. Order
/// is comma-separated fields, `-` for descending (`+` or nothing: ascending).
struct GQLFilter: Sendable {
    enum Value: Sendable, Equatable {
        case string(String), number(Double), bool(Bool), null
        indirect case list([Value])
    }

    enum Operator: String, Sendable, CaseIterable {
        case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", contains, like, ilike, `in`, `is`, isnot
    }

    indirect enum Node: Sendable {
        case and(Node, Node), or(Node, Node), not(Node), compare(field: String, op: Operator, value: Value)
    }

    let root: Node

    /// Why a filter or order text is refused, naming what and where (a GraphQL error).
    static func error(_ text: String) -> GraphQLError { GraphQLError(message: text) }

    // MARK: parsing

    private enum Token: Equatable {
        case word(String), string(String), number(Double), symbol(String)
    }

    private static func tokens(_ text: String) throws -> [Token] {
        var out: [Token] = []
        let chars = Array(text.unicodeScalars)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if CharacterSet.whitespacesAndNewlines.contains(c) { i += 1; continue }
            if c == "\"" || c == "'" {
                var value = String.UnicodeScalarView()
                i += 1
                while i < chars.count, chars[i] != c {
                    if chars[i] == "\\", i + 1 < chars.count { i += 1 }
                    value.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw error("filter: a string starting at character \(i) is not closed") }
                i += 1
                out.append(.string(String(value)))
                continue
            }
            if CharacterSet.decimalDigits.contains(c) || (c == "-" && i + 1 < chars.count && CharacterSet.decimalDigits.contains(chars[i + 1])) {
                var j = i + 1
                while j < chars.count, CharacterSet.decimalDigits.contains(chars[j]) || chars[j] == "." || chars[j] == "e" { j += 1 }
                let text = String(String.UnicodeScalarView(chars[i..<j]))
                guard let number = Double(text) else { throw error("filter: '\(text)' is not a number") }
                out.append(.number(number))
                i = j
                continue
            }
            if CharacterSet.letters.contains(c) || c == "_" {
                var j = i + 1
                while j < chars.count, CharacterSet.alphanumerics.contains(chars[j]) || chars[j] == "_" || chars[j] == "." { j += 1 }
                out.append(.word(String(String.UnicodeScalarView(chars[i..<j]))))
                i = j
                continue
            }
            let two = i + 1 < chars.count ? String(String.UnicodeScalarView(chars[i...i + 1])) : ""
            if ["==", "!=", "<=", ">="].contains(two) {
                out.append(.symbol(two))
                i += 2
                continue
            }
            guard "<>()&|![],".unicodeScalars.contains(c) else { throw error("filter: unexpected '\(Character(c))' at character \(i)") }
            out.append(.symbol(String(Character(c))))
            i += 1
        }
        return out
    }

    /// Parses a filter against the fields a row has.
    init(_ text: String, fields: Set<String>) throws {
        guard text.utf8.count <= 4096 else { throw Self.error("filter: longer than 4096 bytes") }
        var parser = Parser(tokens: try Self.tokens(text), fields: fields)
        root = try parser.expression(depth: 0)
        guard parser.position == parser.tokens.count else { throw Self.error("filter: unexpected \(parser.describe(parser.tokens[parser.position])) after a complete expression") }
    }

    private struct Parser {
        let tokens: [Token]
        let fields: Set<String>
        var position = 0

        func describe(_ token: Token) -> String {
            switch token {
            case .word(let w): "'\(w)'"
            case .string(let s): "\"\(s)\""
            case .number(let n): "\(n)"
            case .symbol(let s): "'\(s)'"
            }
        }

        mutating func next() -> Token? {
            guard position < tokens.count else { return nil }
            defer { position += 1 }
            return tokens[position]
        }

        func peek() -> Token? { position < tokens.count ? tokens[position] : nil }

        mutating func expression(depth: Int) throws -> Node {
            guard depth < 32 else { throw GQLFilter.error("filter: nested more than 32 levels") }
            var left = try conjunction(depth: depth)
            while peek() == .symbol("|") {
                position += 1
                left = .or(left, try conjunction(depth: depth))
            }
            return left
        }

        mutating func conjunction(depth: Int) throws -> Node {
            var left = try unary(depth: depth)
            while peek() == .symbol("&") {
                position += 1
                left = .and(left, try unary(depth: depth))
            }
            return left
        }

        mutating func unary(depth: Int) throws -> Node {
            if peek() == .symbol("!") || peek() == .word("not") {
                position += 1
                return .not(try unary(depth: depth + 1))
            }
            if peek() == .symbol("(") {
                position += 1
                let inner = try expression(depth: depth + 1)
                guard next() == .symbol(")") else { throw GQLFilter.error("filter: a '(' is not closed") }
                return inner
            }
            return try comparison()
        }

        mutating func comparison() throws -> Node {
            guard case .word(let field)? = next() else { throw GQLFilter.error("filter: expected a field name at token \(position)") }
            guard fields.contains(field) else {
                throw GQLFilter.error("filter: unknown field '\(field)'; fields: \(fields.sorted().joined(separator: ", "))")
            }
            let op: Operator
            switch next() {
            case .symbol(let s)?: guard let o = Operator(rawValue: s) else { throw GQLFilter.error("filter: '\(s)' is not a comparison (after '\(field)')") }; op = o
            case .word(let w)?: guard let o = Operator(rawValue: w.lowercased()) else { throw GQLFilter.error("filter: '\(w)' is not a comparison (after '\(field)')") }; op = o
            default: throw GQLFilter.error("filter: expected a comparison after '\(field)'")
            }
            let value = try self.value()
            switch (op, value) {
            case (.is, .null), (.isnot, .null): break
            case (.is, _), (.isnot, _): throw GQLFilter.error("filter: '\(field) \(op.rawValue)' takes null")
            case (.in, .list): break
            case (.in, _): throw GQLFilter.error("filter: '\(field) in' takes a [list]")
            case (.contains, .string), (.like, .string), (.ilike, .string): break
            case (.contains, _), (.like, _), (.ilike, _): throw GQLFilter.error("filter: '\(field) \(op.rawValue)' takes a \"string\"")
            default: break
            }
            return .compare(field: field, op: op, value: value)
        }

        mutating func value() throws -> Value {
            switch next() {
            case .string(let s)?: return .string(s)
            case .number(let n)?: return .number(n)
            case .word("true")?, .word("True")?: return .bool(true)
            case .word("false")?, .word("False")?: return .bool(false)
            case .word("null")?, .word("None")?: return .null
            case .symbol("[")?:
                var items: [Value] = []
                if peek() == .symbol("]") { position += 1; return .list(items) }
                while true {
                    items.append(try value())
                    switch next() {
                    case .symbol(",")?: continue
                    case .symbol("]")?: return .list(items)
                    default: throw GQLFilter.error("filter: a [list] is not closed")
                    }
                }
            case let token?: throw GQLFilter.error("filter: expected a value, found \(describe(token))")
            case nil: throw GQLFilter.error("filter: expected a value at the end")
            }
        }
    }

    // MARK: evaluation

    func matches(_ row: [String: Value]) -> Bool { Self.evaluate(root, row) }

    private static func evaluate(_ node: Node, _ row: [String: Value]) -> Bool {
        switch node {
        case .and(let a, let b): return evaluate(a, row) && evaluate(b, row)
        case .or(let a, let b): return evaluate(a, row) || evaluate(b, row)
        case .not(let a): return !evaluate(a, row)
        case .compare(let field, let op, let value):
            // Backend.AI compares enum fields by their member names (`usage_mode == "MODEL"`,
            // `status == "ACTIVE"`); Hangar stores some in lower case: those compare ignoring case.
            if enumFields.contains(field) { return compare(folded(row[field] ?? .null), op, folded(value)) }
            return compare(row[field] ?? .null, op, value)
        }
    }

    /// Fields holding enum values.
    static let enumFields: Set<String> = ["usage_mode", "permission", "ownership_type", "role", "status", "type", "result", "cluster_role"]

    /// Backend.AI's enum member names whose values Hangar spells differently.
    static let enumAliases = ["read_only": "ro", "read_write": "rw", "rw_delete": "wd"]

    private static func folded(_ value: Value) -> Value {
        switch value {
        case .string(let s): .string(enumAliases[s.lowercased()] ?? s.lowercased())
        case .list(let items): .list(items.map(folded))
        default: value
        }
    }

    /// Orders two values of one field (nulls first); nil when they cannot be ordered.
    static func order(_ a: Value, _ b: Value) -> ComparisonResult? {
        switch (a, b) {
        case (.null, .null): return .orderedSame
        case (.null, _): return .orderedAscending
        case (_, .null): return .orderedDescending
        case (.number(let x), .number(let y)): return x < y ? .orderedAscending : x > y ? .orderedDescending : .orderedSame
        case (.string(let x), .string(let y)): return x < y ? .orderedAscending : x > y ? .orderedDescending : .orderedSame
        case (.bool(let x), .bool(let y)): return x == y ? .orderedSame : (!x ? .orderedAscending : .orderedDescending)
        case (.string(let x), .number(let y)): return Double(x).flatMap { order(.number($0), .number(y)) }
        case (.number(let x), .string(let y)): return Double(y).flatMap { order(.number(x), .number($0)) }
        default: return nil
        }
    }

    private static func compare(_ actual: Value, _ op: Operator, _ wanted: Value) -> Bool {
        switch op {
        case .eq: return order(actual, wanted) == .orderedSame
        case .ne: return order(actual, wanted) != .orderedSame
        case .lt: return order(actual, wanted) == .orderedAscending && actual != .null
        case .le: return [.orderedAscending, .orderedSame].contains(order(actual, wanted)) && actual != .null
        case .gt: return order(actual, wanted) == .orderedDescending && wanted != .null
        case .ge: return [.orderedDescending, .orderedSame].contains(order(actual, wanted)) && actual != .null
        case .is: return actual == .null
        case .isnot: return actual != .null
        case .in:
            guard case .list(let items) = wanted else { return false }
            return items.contains { order(actual, $0) == .orderedSame }
        case .contains, .like, .ilike:
            guard case .string(let pattern) = wanted, case .string(let text) = actual else { return false }
            if op == .contains { return text.contains(pattern) }
            return like(text, pattern, caseInsensitive: op == .ilike)
        }
    }

    /// SQL LIKE: `%` any run, `_` one character.
    static func like(_ text: String, _ pattern: String, caseInsensitive: Bool) -> Bool {
        let t = Array(caseInsensitive ? text.lowercased() : text), p = Array(caseInsensitive ? pattern.lowercased() : pattern)
        var memo: [Int: Bool] = [:]
        func match(_ i: Int, _ j: Int) -> Bool {
            let key = i * (p.count + 1) + j
            if let known = memo[key] { return known }
            let result: Bool
            if j == p.count { result = i == t.count }
            else if p[j] == "%" { result = match(i, j + 1) || (i < t.count && match(i + 1, j)) }
            else { result = i < t.count && (p[j] == "_" || p[j] == t[i]) && match(i + 1, j + 1) }
            memo[key] = result
            return result
        }
        return match(0, 0)
    }

    // MARK: rows and ordering

    /// A GraphQL item as filterable fields: its stored properties by name (the schema uses
    /// the same names), scalars only.
    static func row(_ item: Any) -> [String: Value] {
        var fields: [String: Value] = [:]
        for child in Mirror(reflecting: item).children {
            guard let name = child.label else { continue }
            fields[name] = scalar(child.value)
        }
        return fields
    }

    static func scalar(_ value: Any) -> Value {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return .null }
            return scalar(wrapped)
        }
        switch value {
        case let s as String: return .string(s)
        case let b as Bool: return .bool(b)
        case let i as Int: return .number(Double(i))
        case let d as Double: return .number(d)
        case let big as BigInt: return .number(Double(big.value))
        case let id as UUIDScalar: return .string(id.value)
        default: return .null
        }
    }

    /// The fields of a schema type: what a filter or order may name.
    static func fields(of typeName: String) -> Set<String> {
        guard let type = GQLSchema.shared.schema.getType(name: typeName) as? GraphQLObjectType, let map = try? type.fields() else { return [] }
        return Set(map.keys)
    }

    /// Filters and orders items of the schema type `typeName` (before paging); `filter` and
    /// `order` as the client sent them. Field names are checked against the type even when
    /// there are no items.
    static func apply<T>(_ items: [T], filter: String?, order: String?, type typeName: String) throws -> [T] {
        guard (filter?.isEmpty == false) || (order?.isEmpty == false) else { return items }
        let fields = Self.fields(of: typeName)
        var rows = items.map { ($0, row($0)) }
        if let filter, !filter.isEmpty {
            let parsed = try GQLFilter(filter, fields: fields)
            rows = rows.filter { parsed.matches($0.1) }
        }
        if let order, !order.isEmpty {
            let keys = try order.split(separator: ",").map { part -> (String, Bool) in
                var key = part.trimmingCharacters(in: .whitespaces)
                var descending = false
                if key.hasPrefix("-") { descending = true; key.removeFirst() } else if key.hasPrefix("+") { key.removeFirst() }
                guard fields.contains(key) else { throw error("order: unknown field '\(key)'; fields: \(fields.sorted().joined(separator: ", "))") }
                return (key, descending)
            }
            rows.sort { a, b in
                for (key, descending) in keys {
                    guard let result = Self.order(a.1[key] ?? .null, b.1[key] ?? .null), result != .orderedSame else { continue }
                    return descending ? result == .orderedDescending : result == .orderedAscending
                }
                return false
            }
        }
        return rows.map(\.0)
    }
}
