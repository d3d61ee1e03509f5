import ConfigFile
import Foundation
import PluginHost

/// One fake machine of Tests/Fixtures/Vendors (see its README): a vendor plugin's real
/// discovery, slots, edits, metrics and failure handling against a fake sysfs/dev tree and fake
/// vendor tools or libraries.
public struct VendorCase: Decodable, Sendable {
    public struct Device: Decodable, Sendable {
        public var id: String
        public var model: String
        public var numa: Int32
        public var health: String
        public var memory: UInt64?
        public var cpus: String?
        public var parent: String?
    }
    public struct Edit: Decodable, Sendable {
        public var devices: [String]
        public var slot: String?
        public var lines: [String]
    }
    public struct Failure: Decodable, Sendable {
        public var config: [String: String]
        public var reason: String
    }

    /// The case's folder name.
    public var name = ""
    public var product: String
    public var config: [String: JSONScalar]
    public var deviceKey: String
    public var devices: [Device]
    public var slots: [String: String]
    public var edits: [Edit]
    public var nodeMeasures: [String]
    public var containerMeasures: [String]?
    public var failures: [Failure]?


    enum CodingKeys: String, CodingKey {
        case product, config, deviceKey = "device_key", devices, slots, edits, nodeMeasures = "node_measures",
             containerMeasures = "container_measures", failures
    }

    public static let root = "\(PluginPaths.repoRoot)/Tests/Fixtures/Vendors"

    /// Every case folder with a case.json.
    public static let all: [VendorCase] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.sorted().compactMap { name in
            guard let data = FileManager.default.contents(atPath: "\(root)/\(name)/case.json") else { return nil }
            do {
                var c = try JSONDecoder().decode(VendorCase.self, from: data)
                c.name = name
                return c
            } catch {
                fatalError("Tests/Fixtures/Vendors/\(name)/case.json is malformed: \(error)")
            }
        }
    }()
}

/// A config value in case.json: a string, number or boolean (arrays of strings too).
public enum JSONScalar: Decodable, Sendable {
    case string(String), integer(Int64), double(Double), bool(Bool), strings([String])
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .strings(try c.decode([String].self)) }
    }
}

/// A case's tree copied to a temporary folder, with its placeholders resolved.
public struct VendorRig {
    public let c: VendorCase
    public let dir: TemporaryDirectory
    public var tree: String { "\(dir.path)/tree" }

    public init(_ c: VendorCase) throws {
        self.c = c
        dir = try TemporaryDirectory()
        // cp -a keeps the tools' execute bits and the tree's layout exactly.
        let (status, output) = try run(["/bin/cp", "-a", "\(VendorCase.root)/\(c.name)/tree", tree])
        guard status == 0 else { throw TestSupportError("copying the \(c.name) tree failed: \(output)") }
    }

    /// Replaces {tree} and builds each {build:PATH} fake library once.
    public func resolve(_ text: String) throws -> String {
        var out = text.replacingOccurrences(of: "{tree}", with: tree)
        while let start = out.range(of: "{build:"), let end = out[start.upperBound...].firstIndex(of: "}") {
            let source = String(out[start.upperBound..<end])
            let library = "\(dir.path)/lib/lib\(URL(fileURLWithPath: source).deletingPathExtension().lastPathComponent).so"
            if !FileManager.default.fileExists(atPath: library) {
                try FileManager.default.createDirectory(atPath: "\(dir.path)/lib", withIntermediateDirectories: true)
                try FixtureCompiler.build([source], output: library, hiddenVisibility: false)
            }
            out.replaceSubrange(start.lowerBound...end, with: library)
        }
        return out
    }

    public func config(overrides: [String: String] = [:]) throws -> ConfigValue {
        var entries: [(String, ConfigValue)] = []
        for (key, value) in c.config.sorted(by: { $0.key < $1.key }) where overrides[key] == nil {
            switch value {
            case .string(let s): entries.append((key, .string(try resolve(s))))
            case .integer(let i): entries.append((key, .integer(i)))
            case .double(let d): entries.append((key, .double(d)))
            case .bool(let b): entries.append((key, .bool(b)))
            case .strings(let list): entries.append((key, .array(try list.map { .string(try resolve($0)) })))
            }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            let resolved = try resolve(value)
            entries.append((key, Int64(value).map(ConfigValue.integer) ?? .string(resolved)))
        }
        return .table(entries)
    }

    public var library: PluginLibrary { get throws { try PluginLoader.open(path: PluginPaths.bundled(c.product)) } }

    public func plugin(overrides: [String: String] = [:]) throws -> AcceleratorPlugin {
        try AcceleratorPlugin(library: library, config: config(overrides: overrides))
    }

    /// The allocation `hangar-plugin edits --device ...` would build for these devices.
    public func allocation(_ plugin: AcceleratorPlugin, devices: [String], slot: String?, container: String = "k-vendor") throws -> Allocation {
        let slots = try plugin.slots(), rows = try plugin.deviceSlots()
        return Allocation(containerID: container, entries: try devices.map { id in
            let name = slot ?? rows.first { $0.deviceID == id && $0.capacity > 0 }?.slotName ?? slots[0].name
            guard let type = slots.first(where: { $0.name == name })?.type else { throw TestSupportError("no slot \(name) in \(c.name)") }
            let capacity = rows.first { $0.deviceID == id && $0.slotName == name }?.capacity ?? 0
            return AllocationEntry(slotName: name, deviceID: id, amount: type == .count ? amountScale : capacity)
        })
    }
}

