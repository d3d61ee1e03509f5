import ConfigFile
import Foundation

/// The subset of JSON Schema that plugin descriptors use to describe their configuration:
/// `type`, `properties`, `required`, `additionalProperties` (boolean), `items`, `enum`,
/// `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, plus the
/// annotations `description` and `default`. A schema using other assertion keywords is
/// refused when the plugin is loaded, so an operator never gets a silently unchecked config.
public struct ConfigSchema: Sendable {
    /// The assertions of one node.
    public struct Rules: Sendable {
        public var types: [String] = []
        public var properties: [(String, Rules)] = []
        public var required: [String] = []
        public var additionalProperties = true
        public var items: Box?
        public var enumValues: [ConfigValue] = []
        public var minimum: Double?
        public var maximum: Double?
        public var minLength: Int?
        public var maxLength: Int?
        public var minItems: Int?
        public var maxItems: Int?
        public var description: String?
        public var defaultValue: ConfigValue?
    }

    /// Heap storage for recursive `items`.
    public final class Box: Sendable {
        public let rules: Rules
        init(_ rules: Rules) { self.rules = rules }
    }

    public let root: Rules

    private static let annotations: Set<String> = ["$schema", "$id", "title", "description", "default", "examples", "$comment", "format", "deprecated"]
    private static let known: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "enum",
                                             "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"]

    /// Parses a schema.
    /// - Throws: `PluginError(.invalidDescriptor)` for malformed JSON or unsupported keywords.
    public init(json: String) throws(PluginError) {
        let value: ConfigValue
        do {
            value = try ConfigValue(jsonText: json)
        } catch {
            throw PluginError(.invalidDescriptor, reason: error.description)
        }
        root = try ConfigSchema.parse(value, at: "")
    }

    private static func parse(_ value: ConfigValue, at path: String) throws(PluginError) -> Rules {
        guard case .table(let entries) = value else {
            throw PluginError(.invalidDescriptor, reason: "schema at '\(path.isEmpty ? "/" : path)' is not an object")
        }
        var rules = Rules()
        for (key, v) in entries {
            switch (key, v) {
            case ("type", .string(let t)): rules.types = [t]
            case ("type", .array(let ts)): rules.types = ts.compactMap { if case .string(let s) = $0 { s } else { nil } }
            case ("properties", .table(let props)):
                for (name, sub) in props { rules.properties.append((name, try parse(sub, at: path + "/" + name))) }
            case ("required", .array(let names)):
                rules.required = names.compactMap { if case .string(let s) = $0 { s } else { nil } }
            case ("additionalProperties", .bool(let b)): rules.additionalProperties = b
            case ("items", let sub): rules.items = Box(try parse(sub, at: path + "/items"))
            case ("enum", .array(let values)): rules.enumValues = values
            case ("minimum", let n): rules.minimum = number(n)
            case ("maximum", let n): rules.maximum = number(n)
            case ("minLength", .integer(let n)): rules.minLength = Int(n)
            case ("maxLength", .integer(let n)): rules.maxLength = Int(n)
            case ("minItems", .integer(let n)): rules.minItems = Int(n)
            case ("maxItems", .integer(let n)): rules.maxItems = Int(n)
            case ("description", .string(let d)): rules.description = d
            case ("default", let d): rules.defaultValue = d
            case (let k, _) where annotations.contains(k): break
            case (let k, _) where known.contains(k):
                throw PluginError(.invalidDescriptor, reason: "schema keyword '\(k)' at '\(path.isEmpty ? "/" : path)' has the wrong type")
            default:
                throw PluginError(.invalidDescriptor, reason: "schema keyword '\(key)' at '\(path.isEmpty ? "/" : path)' is not supported by the Hangar host (supported: \(known.sorted().joined(separator: ", ")))")
            }
        }
        return rules
    }

    private static func number(_ v: ConfigValue) -> Double? {
        switch v {
        case .integer(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// The config with the schema's `default` values filled in: every property missing from an
    /// object that is present (the root always is) gets its default, recursively, and the
    /// items of arrays get theirs. Values present are never changed. This is what plugin.h
    /// promises plugins from ABI 1.2 on, so a default lives only in the schema.
    public func applyingDefaults(to config: ConfigValue) -> ConfigValue {
        ConfigSchema.fill(config, rules: root)
    }

    private static func fill(_ value: ConfigValue, rules: Rules) -> ConfigValue {
        switch value {
        case .table(var entries):
            for (index, entry) in entries.enumerated() {
                if let sub = rules.properties.first(where: { $0.0 == entry.0 })?.1 {
                    entries[index].1 = fill(entry.1, rules: sub)
                }
            }
            for (name, sub) in rules.properties where !entries.contains(where: { $0.0 == name }) {
                if let def = sub.defaultValue { entries.append((name, fill(def, rules: sub))) }
            }
            return .table(entries)
        case .array(let items):
            guard let itemRules = rules.items?.rules else { return value }
            return .array(items.map { fill($0, rules: itemRules) })
        default:
            return value
        }
    }

    /// Checks a config against the schema.
    /// - Returns: every violation, each naming the key path, what was expected and what was found.
    public func violations(of config: ConfigValue) -> [String] {
        var out: [String] = []
        ConfigSchema.check(config, against: root, path: "", into: &out)
        return out
    }

    private static func matches(_ value: ConfigValue, type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("boolean", .bool), ("array", .array), ("object", .table), ("integer", .integer): true
        case ("number", .integer), ("number", .double): true
        case ("integer", .double(let d)): d.rounded() == d
        default: false
        }
    }

    private static func check(_ value: ConfigValue, against rules: Rules, path: String, into out: inout [String]) {
        let at = path.isEmpty ? "config" : "'\(path)'"
        if !rules.types.isEmpty, !rules.types.contains(where: { matches(value, type: $0) }) {
            out.append("\(at): expected \(rules.types.joined(separator: " or ")), found \(value.typeName) \(value.json)")
            return
        }
        if !rules.enumValues.isEmpty, !rules.enumValues.contains(value) {
            out.append("\(at): must be one of \(rules.enumValues.map(\.json).joined(separator: ", ")), found \(value.json)")
        }
        switch value {
        case .integer, .double:
            let n = number(value)!
            if let min = rules.minimum, n < min { out.append("\(at): must be at least \(clean(min)), found \(value.json)") }
            if let max = rules.maximum, n > max { out.append("\(at): must be at most \(clean(max)), found \(value.json)") }
        case .string(let s):
            if let min = rules.minLength, s.count < min { out.append("\(at): must be at least \(min) characters long") }
            if let max = rules.maxLength, s.count > max { out.append("\(at): must be at most \(max) characters long") }
        case .array(let items):
            if let min = rules.minItems, items.count < min { out.append("\(at): needs at least \(min) items, found \(items.count)") }
            if let max = rules.maxItems, items.count > max { out.append("\(at): allows at most \(max) items, found \(items.count)") }
            if let itemRules = rules.items?.rules {
                for (i, item) in items.enumerated() { check(item, against: itemRules, path: join(path, String(i)), into: &out) }
            }
        case .table(let entries):
            for name in rules.required where value[name] == nil {
                out.append("\(at): missing required key '\(join(path, name))'")
            }
            for (key, sub) in entries {
                if let propRules = rules.properties.first(where: { $0.0 == key })?.1 {
                    check(sub, against: propRules, path: join(path, key), into: &out)
                } else if !rules.additionalProperties {
                    let allowed = rules.properties.map(\.0)
                    out.append("'\(join(path, key))': unknown key" + (allowed.isEmpty ? " (this plugin takes no configuration)" : "; known keys: \(allowed.joined(separator: ", "))"))
                }
            }
        case .bool:
            break
        }
    }

    private static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
    private static func clean(_ d: Double) -> String { d.rounded() == d ? String(Int64(d)) : String(d) }
}
