import Foundation

/// A malformed resource-slot map.
public struct ResourceSlotsError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A map of slot name to an exact decimal amount ("cpu": 4, "mem": 17179869184,
/// "cuda.shares": 0.5). Stored and sent as a JSON object whose values are decimal strings,
/// as Backend.AI does, so no amount ever passes through binary floating point.
public struct ResourceSlots: Sendable, Equatable, Codable, CustomStringConvertible {
    public var amounts: [String: Decimal]

    public init(_ amounts: [String: Decimal] = [:]) { self.amounts = amounts }

    public subscript(_ slot: String) -> Decimal {
        get { amounts[slot] ?? 0 }
        set { amounts[slot] = newValue }
    }

    /// Parses `{"cpu": "4", "mem": 1024}` (strings or JSON numbers).
    public init(json: String) throws(ResourceSlotsError) {
        guard let data = json.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data),
              let dict = object as? [String: Any] else {
            throw ResourceSlotsError("resource slots must be a JSON object of slot name to amount, got \(json.prefix(80))")
        }
        var amounts: [String: Decimal] = [:]
        for (slot, value) in dict {
            let text: String
            switch value {
            case let s as String: text = s
            case let n as NSNumber: text = n.stringValue
            default: throw ResourceSlotsError("resource slot '\(slot)' must be a number or a decimal string")
            }
            guard let amount = ResourceSlots.parseAmount(text) else {
                throw ResourceSlotsError("resource slot '\(slot)' has an invalid amount '\(text)'")
            }
            amounts[slot] = amount
        }
        self.amounts = amounts
    }

    /// A decimal, or a binary size such as "16g" (for memory-like slots). `Decimal(string:)`
    /// without a locale reads "." as the separator and loads no ICU locale data (a POSIX
    /// Locale would, on every heartbeat).
    public static func parseAmount(_ text: String) -> Decimal? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let d = Decimal(string: trimmed), d >= 0,
           trimmed.allSatisfy({ $0.isNumber || $0 == "." }), trimmed.filter({ $0 == "." }).count <= 1, trimmed.first?.isNumber == true {
            return d
        }
        let suffixes: [Character: Decimal] = ["k": Decimal(1 << 10), "m": Decimal(1 << 20), "g": Decimal(1 << 30), "t": Decimal(Int64(1) << 40), "p": Decimal(Int64(1) << 50)]
        // Backend.AI's forms: k, m, g, t (and p), optionally followed by i, b or ib, any case;
        // a bare trailing b means bytes.
        var s = trimmed.lowercased()
        if s.hasSuffix("ib") { s.removeLast(2) } else if s.hasSuffix("i") { s.removeLast() } else if s.hasSuffix("b") {
            s.removeLast()
            if let last = s.last, last.isNumber || last == "." {
                guard let d = Decimal(string: s), d >= 0, s.allSatisfy({ $0.isNumber || $0 == "." }) else { return nil }
                return d
            }
        }
        guard let last = s.last, let factor = suffixes[last] else { return nil }
        s.removeLast()
        guard let base = Decimal(string: s), base >= 0, s.allSatisfy({ $0.isNumber || $0 == "." }),
              s.filter({ $0 == "." }).count <= 1, s.first?.isNumber == true else { return nil }
        return base * factor
    }

    /// The forms `parseAmount` accepts, for error messages.
    public static let acceptedAmountForms = "a number (bytes for mem) or a size such as 512m, 16g, 1.5GiB, 100Gb (k, m, g, t with optional i/b, any case)"

    /// A byte count as a person reads it: binary units, at most one decimal ("23.6 GiB").
    public static func humanBytes(_ bytes: Decimal) -> String {
        let value = NSDecimalNumber(decimal: bytes).doubleValue
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var scaled = value, unit = 0
        while scaled >= 1024, unit < units.count - 1 { scaled /= 1024; unit += 1 }
        if unit == 0 { return "\(Int64(value)) bytes" }
        let text = (scaled * 10).rounded() / 10
        return text == text.rounded() ? "\(Int64(text)) \(units[unit])" : "\(String(format: "%.1f", text)) \(units[unit])"
    }

    /// An amount of a slot as a person reads it: bytes in binary units, counts as decimals.
    public static func human(_ amount: Decimal, bytes: Bool) -> String {
        bytes ? humanBytes(amount) : format(amount)
    }

    /// Canonical JSON: keys sorted, amounts as decimal strings.
    public var json: String {
        "{" + amounts.keys.sorted().map { "\"\($0)\":\"\(ResourceSlots.format(amounts[$0]!))\"" }.joined(separator: ",") + "}"
    }

    /// Amounts as decimal strings by slot name (the JSON form as a dictionary).
    public var stringAmounts: [String: String] { amounts.mapValues { ResourceSlots.format($0) } }

    static func format(_ d: Decimal) -> String {
        var value = d
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, 6, .plain)
        return NSDecimalNumber(decimal: rounded).stringValue
    }

    public var description: String { json }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(amounts.mapValues { ResourceSlots.format($0) })
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let strings = try? container.decode([String: String].self) {
            var amounts: [String: Decimal] = [:]
            for (k, v) in strings {
                guard let d = ResourceSlots.parseAmount(v) else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid amount '\(v)' for slot '\(k)'")
                }
                amounts[k] = d
            }
            self.amounts = amounts
        } else {
            self.amounts = try container.decode([String: Decimal].self)
        }
    }

    public static func + (a: ResourceSlots, b: ResourceSlots) -> ResourceSlots {
        var out = a
        for (k, v) in b.amounts { out[k] += v }
        return out
    }

    public static func - (a: ResourceSlots, b: ResourceSlots) -> ResourceSlots {
        var out = a
        for (k, v) in b.amounts { out[k] -= v }
        return out
    }
}


/// Slot amounts in fixed point, as plugins, agents and schedulers exchange them: count and
/// unique slots in units of `scale` (1.0 == 1_000_000, the ABI's HANGAR_AMOUNT_SCALE), bytes
/// slots in bytes. The one definition the allocator, the plugin wrappers, the manager and the
/// CLI use; `ResourceSlots` holds the same amounts as exact decimals.
public enum SlotAmount {
    public static let scale: Int64 = 1_000_000

    /// The fixed-point form of an exact amount (truncated below one millionth).
    public static func fixed(_ amount: Decimal, bytes: Bool) -> Int64 {
        NSDecimalNumber(decimal: bytes ? amount : amount * Decimal(scale)).int64Value
    }

    /// The exact amount of a fixed-point one.
    public static func decimal(_ fixed: Int64, bytes: Bool) -> Decimal {
        bytes ? Decimal(fixed) : Decimal(fixed) / Decimal(scale)
    }
}
