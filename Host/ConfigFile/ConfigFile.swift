import Foundation
import TOMLKit

/// A configuration problem: which file, which key, what was expected.
public struct ConfigFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String?
    public let key: String?
    public let message: String

    public init(file: String?, key: String?, _ message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        var prefix = ""
        if let file { prefix += file }
        if let key { prefix += (prefix.isEmpty ? "" : ": ") + "'\(key)'" }
        return prefix.isEmpty ? message : "\(prefix): \(message)"
    }
}

extension ConfigFileError: LocalizedError {
    public var errorDescription: String? { description }
}

/// A TOML config file: parsed once, read section by section with typed accessors that
/// name the file, the key and the expected type in every error, and that refuse unknown
/// keys so a typo never silently falls back to a default.
public struct ConfigFile: Sendable {
    public let path: String
    public let root: ConfigValue

    /// Reads and parses a TOML file.
    public init(path: String) throws(ConfigFileError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigFileError(file: path, key: nil, "cannot read the config file: \(error.localizedDescription)")
        }
        try self.init(toml: text, path: path)
    }

    /// Parses TOML text; `path` names it in errors.
    public init(toml: String, path: String) throws(ConfigFileError) {
        self.path = path
        do {
            root = ConfigValue(toml: try TOMLTable(string: toml))
        } catch let error as TOMLParseError {
            throw ConfigFileError(file: path, key: nil, "invalid TOML at line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
        } catch {
            throw ConfigFileError(file: path, key: nil, "invalid TOML: \(error)")
        }
    }

    /// An empty config (every key at its default).
    public init(emptyAt path: String = "defaults") {
        self.path = path
        root = .emptyTable
    }

    /// Checks that only `allowed` top-level sections exist.
    public func checkSections(_ allowed: [String]) throws(ConfigFileError) {
        guard case .table(let entries) = root else { return }
        for (key, _) in entries where !allowed.contains(key) {
            throw ConfigFileError(file: path, key: key, "unknown section; known sections: \(allowed.joined(separator: ", "))")
        }
    }

    /// A section reader; a missing section reads as empty.
    public func section(_ name: String) throws(ConfigFileError) -> ConfigSection {
        guard let value = root[name] else { return ConfigSection(file: path, name: name, table: .emptyTable) }
        guard case .table = value else { throw ConfigFileError(file: path, key: name, "must be a table ([\(name)]), found \(value.typeName)") }
        return ConfigSection(file: path, name: name, table: value)
    }
}

/// Typed access to one `[section]` of a config file.
public struct ConfigSection: Sendable {
    public let file: String
    public let name: String
    public let table: ConfigValue

    /// A reader over any table (e.g. one entry of a table of tables).
    public init(file: String, name: String, table: ConfigValue) {
        self.file = file
        self.name = name
        self.table = table
    }

    private func fail(_ key: String, _ message: String) -> ConfigFileError {
        ConfigFileError(file: file, key: "\(name).\(key)", message)
    }

    /// Refuses keys not in `known` (name → expected type, for the message).
    public func checkKeys(_ known: KeyValuePairs<String, String>) throws(ConfigFileError) {
        guard case .table(let entries) = table else { return }
        for (key, _) in entries where !known.contains(where: { $0.key == key }) {
            throw fail(key, "unknown key; known keys: " + known.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))
        }
    }

    /// A `host:port` value (an IPv6 host may be bracketed: `[::1]:8091`; the brackets are
    /// dropped). The default is also the example an error shows.
    public func hostPort(_ key: String, default host: String, _ port: Int, ports: ClosedRange<Int> = 0...65535) throws(ConfigFileError) -> (host: String, port: Int) {
        let text = try string(key, default: "\(host):\(port)")
        let portText = text.lastIndex(of: ":").map { text[text.index(after: $0)...] } ?? ""
        guard let colon = text.lastIndex(of: ":"), !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(portText), ports.contains(value) else {
            throw fail(key, "expected host:port with a port in \(ports.lowerBound)...\(ports.upperBound), e.g. \(host):\(port), found \"\(text)\"")
        }
        let parsedHost = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !parsedHost.isEmpty else { throw fail(key, "the host is missing: write 0.0.0.0:\(value) to listen everywhere or 127.0.0.1:\(value) for this machine only") }
        return (parsedHost, value)
    }

    public func string(_ key: String, default value: String) throws(ConfigFileError) -> String {
        guard let v = table[key] else { return value }
        guard case .string(let s) = v else { throw fail(key, "expected a string, found \(v.typeName) \(v.json)") }
        return s
    }

    /// An array of strings.
    public func strings(_ key: String, default value: [String]) throws(ConfigFileError) -> [String] {
        guard let v = table[key] else { return value }
        guard case .array(let items) = v else { throw fail(key, "expected an array of strings, found \(v.typeName) \(v.json)") }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else { throw fail(key, "expected an array of strings, found \(item.typeName) \(item.json) in it") }
            out.append(s)
        }
        return out
    }

    public func optionalString(_ key: String) throws(ConfigFileError) -> String? {
        guard table[key] != nil else { return nil }
        return try string(key, default: "")
    }

    public func int(_ key: String, default value: Int64, range: ClosedRange<Int64>? = nil) throws(ConfigFileError) -> Int64 {
        guard let v = table[key] else { return value }
        guard case .integer(let i) = v else { throw fail(key, "expected an integer, found \(v.typeName) \(v.json)") }
        if let range, !range.contains(i) { throw fail(key, "must be between \(range.lowerBound) and \(range.upperBound), found \(i)") }
        return i
    }

    public func double(_ key: String, default value: Double, range: ClosedRange<Double>? = nil) throws(ConfigFileError) -> Double {
        guard let v = table[key] else { return value }
        let d: Double
        switch v {
        case .integer(let i): d = Double(i)
        case .double(let x): d = x
        default: throw fail(key, "expected a number, found \(v.typeName) \(v.json)")
        }
        if let range, !range.contains(d) { throw fail(key, "must be between \(range.lowerBound) and \(range.upperBound), found \(d)") }
        return d
    }

    public func bool(_ key: String, default value: Bool) throws(ConfigFileError) -> Bool {
        guard let v = table[key] else { return value }
        guard case .bool(let b) = v else { throw fail(key, "expected true or false, found \(v.typeName) \(v.json)") }
        return b
    }

    /// A byte size: an integer, or a string such as "16M".
    public func bytes(_ key: String, default value: Int64) throws(ConfigFileError) -> Int64 {
        guard let v = table[key] else { return value }
        switch v {
        case .integer(let i) where i >= 0: return i
        case .string(let s):
            guard let n = ByteSize.parse(s) else { throw fail(key, "expected a size like 16M or 1G, found \"\(s)\"") }
            return n
        default: throw fail(key, "expected a size (an integer or a string like 16M), found \(v.typeName) \(v.json)")
        }
    }
}
