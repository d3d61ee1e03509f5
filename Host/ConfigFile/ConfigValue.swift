import Foundation
import TOMLKit

/// A configuration document as plugins see it: the TOML table an operator wrote, or JSON.
/// Tables keep their keys in the order they were given (TOMLKit gives TOML tables sorted by
/// key), so rendering the same document always yields the same JSON.
public indirect enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case double(Double)
    case bool(Bool)
    case array([ConfigValue])
    case table([(String, ConfigValue)])

    public static func == (lhs: ConfigValue, rhs: ConfigValue) -> Bool {
        switch (lhs, rhs) {
        case let (.string(a), .string(b)): a == b
        case let (.integer(a), .integer(b)): a == b
        case let (.double(a), .double(b)): a == b
        case let (.bool(a), .bool(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.table(a), .table(b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// An empty table.
    public static let emptyTable = ConfigValue.table([])

    /// The JSON Schema type name of this value ("integer" also counts as "number").
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .double: "number"
        case .bool: "boolean"
        case .array: "array"
        case .table: "object"
        }
    }

    /// Value of a key of a table.
    public subscript(key: String) -> ConfigValue? {
        guard case .table(let entries) = self else { return nil }
        return entries.last(where: { $0.0 == key })?.1
    }

    /// Looks up a dotted path: "devices.0.memory". Array elements are addressed by index.
    public func lookup(_ path: String) -> ConfigValue? {
        if path.isEmpty { return self }
        var current = self
        for component in path.split(separator: ".", omittingEmptySubsequences: false) {
            switch current {
            case .table:
                guard let next = current[String(component)] else { return nil }
                current = next
            case .array(let items):
                guard let index = Int(component), items.indices.contains(index) else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }

    /// The table without one key (used to strip host-only keys such as `required`).
    public func removing(_ key: String) -> ConfigValue {
        guard case .table(let entries) = self else { return self }
        return .table(entries.filter { $0.0 != key })
    }

    /// Compact JSON text.
    public var json: String {
        var out = ""
        writeJSON(into: &out)
        return out
    }

    private func writeJSON(into out: inout String) {
        switch self {
        case .string(let s): ConfigValue.writeJSONString(s, into: &out)
        case .integer(let i): out += String(i)
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .bool(let b): out += b ? "true" : "false"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.writeJSON(into: &out)
            }
            out += "]"
        case .table(let entries):
            out += "{"
            for (i, (key, value)) in entries.enumerated() {
                if i > 0 { out += "," }
                ConfigValue.writeJSONString(key, into: &out)
                out += ":"
                value.writeJSON(into: &out)
            }
            out += "}"
        }
    }

    static func writeJSONString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// Converts a TOML table (as TOMLKit parsed it).
    public init(toml table: TOMLTable) {
        self = .table(table.map { ($0.0, ConfigValue(toml: $0.1)) })
    }

    /// Converts one TOML value. Dates and times become their TOML text.
    public init(toml value: TOMLValueConvertible) {
        switch value.type {
        case .string: self = .string(value.string ?? "")
        case .int: self = .integer(Int64(value.int ?? 0))
        case .double: self = .double(value.double ?? 0)
        case .bool: self = .bool(value.bool ?? false)
        case .array: self = .array((value.array ?? TOMLArray()).map { ConfigValue(toml: $0) })
        case .table: self = ConfigValue(toml: value.table ?? TOMLTable())
        default: self = .string(String(describing: value))
        }
    }

    /// Parses JSON text (object keys come back sorted: Foundation does not keep their order).
    public init(jsonText: String) throws(ConfigFileError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(jsonText.utf8), options: [.fragmentsAllowed])
        } catch {
            throw ConfigFileError(file: nil, key: nil, "malformed JSON: \(error.localizedDescription)")
        }
        self = ConfigValue(foundation: object)
    }

    init(foundation object: Any) {
        switch object {
        case let n as NSNumber where String(cString: n.objCType) == "c":
            self = .bool(n.boolValue)
        case let n as NSNumber:
            if let i = Int64(exactly: n) { self = .integer(i) } else { self = .double(n.doubleValue) }
        case let s as String: self = .string(s)
        case let a as [Any]: self = .array(a.map { ConfigValue(foundation: $0) })
        case let d as [String: Any]: self = .table(d.keys.sorted().map { ($0, ConfigValue(foundation: d[$0]!)) })
        default: self = .string("\(object)")
        }
    }
}

/// Parses sizes such as `16G`, `512M`, `1.5T`, `4096` into bytes (binary multiples, as
/// Backend.AI's BinarySize does).
public enum ByteSize {
    /// The size in bytes, or nil when `text` is not a size: digits with at most one decimal
    /// point, then an optional unit (k, m, g, t, p, optionally followed by b or ib; any case).
    /// Fractions of a byte round down; a size past Int64 is nil rather than a wrapped number.
    public static func parse(_ text: String) -> Int64? {
        var s = text.trimmingCharacters(in: .whitespaces).lowercased()
        if s.hasSuffix("ib") { s.removeLast(2) } else if s.hasSuffix("b") { s.removeLast() }
        let multipliers: [Character: Int64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50]
        var multiplier: Int64 = 1
        if let last = s.last, let m = multipliers[last] { multiplier = m; s.removeLast() }
        s = s.trimmingCharacters(in: .whitespaces)
        // Decimal(string:) and Int64(_:) accept signs, exponents and trailing garbage ("1.5x");
        // a config value that is not plainly a number must be refused, not half-read.
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              parts.count == 1 || !parts[1].isEmpty else { return nil }
        if parts.count == 1 {
            guard let whole = Int64(s) else { return nil }
            let (r, overflow) = whole.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : r
        }
        guard let d = Decimal(string: s) else { return nil }
        var bytes = d * Decimal(multiplier), whole = Decimal()
        NSDecimalRound(&whole, &bytes, 0, .down)
        guard whole <= Decimal(Int64.max) else { return nil }
        return NSDecimalNumber(decimal: whole).int64Value
    }
}
