import CLtdl
import Foundation
import PluginAPI
import Synchronization

/// The host's ABI version, as passed to every plugin's entry symbol.
public enum HostABI {
    public static let major = UInt16(HANGAR_ABI_MAJOR)
    public static let minor = UInt16(HANGAR_ABI_MINOR)
    public static let packed = UInt32(HANGAR_ABI_MAJOR << 16 | HANGAR_ABI_MINOR)
    /// The entry symbol every plugin exports.
    public static let entrySymbol = HANGAR_PLUGIN_ENTRY_SYMBOL
}

/// The four plugin kinds of ABI v1.
public enum PluginKind: UInt32, Sendable, CaseIterable, CustomStringConvertible, Codable {
    case accelerator = 1
    case storage = 2
    case scheduler = 3
    case agentSelector = 4

    public var description: String {
        switch self {
        case .accelerator: "accelerator"
        case .storage: "storage"
        case .scheduler: "scheduler"
        case .agentSelector: "agent-selector"
        }
    }
}

/// A plugin's descriptor, copied out of the library into Swift values.
public struct PluginDescriptor: Sendable, Equatable, Codable {
    public var structSize: UInt32
    public var abiMajor: UInt16
    public var abiMinor: UInt16
    public var kind: PluginKind
    /// `HANGAR_THREAD_*` flags.
    public var threadSafety: UInt32
    /// Kind-specific capability bits.
    public var capabilities: UInt64
    public var name: String
    public var vendor: String
    public var version: String
    public var description: String
    public var license: String
    /// JSON Schema text of the plugin's config, if it declares one.
    public var configSchema: String?
    /// Slot names declared up front (accelerators), or nil if they depend on config.
    public var staticSlotNames: [String]?
    /// Added in ABI 1.1.
    public var homepage: String?

    /// True if the host may call one instance from several threads at once.
    public var isThreadSafe: Bool { threadSafety & UInt32(HANGAR_THREAD_SAFE) != 0 }
    /// For storage plugins: the backend enforces a hard quota itself (HANGAR_STORAGE_CAP_QUOTA).
    public var storageEnforcesQuota: Bool { kind == .storage && capabilities & UInt64(HANGAR_STORAGE_CAP_QUOTA) != 0 }
    /// For storage plugins: clone_folder is an instant copy-on-write snapshot (HANGAR_STORAGE_CAP_FAST_CLONE).
    public var storageFastClone: Bool { kind == .storage && capabilities & UInt64(HANGAR_STORAGE_CAP_FAST_CLONE) != 0 }
    /// True if at most one instance may exist per process.
    public var isSingleInstance: Bool { threadSafety & UInt32(HANGAR_THREAD_SINGLE_INSTANCE) != 0 }
}

/// The smallest descriptor the host accepts: ABI 1.0, which ends with `functions`.
let minimumDescriptorSize = MemoryLayout<hangar_plugin_descriptor>.offset(of: \hangar_plugin_descriptor.functions)!
    + MemoryLayout<UnsafeRawPointer?>.size

/// Copies `min(structSize, MemoryLayout<T>.size)` bytes of a size-prefixed struct into a zeroed
/// `T`, so that fields past what the other side compiled read as zero/NULL.
public func copySizePrefixed<T>(_ pointer: UnsafeRawPointer, as type: T.Type, zero: T) -> (value: T, size: UInt32) {
    let declared = pointer.load(as: UInt32.self)
    var value = zero
    withUnsafeMutableBytes(of: &value) { dest in
        dest.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(Int(declared), dest.count)))
    }
    return (value, declared)
}

/// One loaded plugin library: its file, its descriptor and its raw function table.
///
/// Libraries are made resident right after opening and are never unloaded: unloading a
/// library whose code may still be referenced (threads, atexit handlers, Swift metadata)
/// is how hosts crash, and mature hosts (PostgreSQL, GStreamer) never do it either.
public final class PluginLibrary: @unchecked Sendable {
    /// The path libltdl resolved the library from.
    public let path: String
    public let descriptor: PluginDescriptor
    /// The descriptor in the library's static storage (valid forever). For conformance
    /// checks and benchmarks that must call the ABI directly.
    public let rawDescriptor: UnsafePointer<hangar_plugin_descriptor>
    /// The kind's function table in the library's static storage (valid forever).
    public let functions: UnsafeRawPointer
    /// The entry symbol, for checks that it is idempotent.
    public let entry: hangar_plugin_entry_fn
    /// Live instances, to enforce HANGAR_THREAD_SINGLE_INSTANCE.
    let instances = Mutex<Int>(0)

    init(path: String, entry: hangar_plugin_entry_fn, rawDescriptor: UnsafePointer<hangar_plugin_descriptor>,
         descriptor: PluginDescriptor, functions: UnsafeRawPointer) {
        self.path = path
        self.entry = entry
        self.rawDescriptor = rawDescriptor
        self.descriptor = descriptor
        self.functions = functions
    }
}

/// Opens plugin libraries through libltdl, checks the ABI and validates descriptors.
///
/// libltdl keeps one process-global error slot and is not thread-safe, so every ltdl call in
/// the process goes through one lock. Opening the same file twice returns the same
/// `PluginLibrary` (ltdl would hand back the same handle anyway).
public enum PluginLoader {
    private struct State: ~Copyable {
        var initialized = false
        var byPath: [String: PluginLibrary] = [:]
    }
    private static let state = Mutex(State())

    private static func lastDLError() -> String {
        lt_dlerror().map { String(cString: $0) } ?? "unknown error"
    }

    /// Opens and validates the plugin library at `path` (with or without the `.so` suffix).
    ///
    /// - Throws: `PluginError` naming the file and the reason: the file cannot be opened,
    ///   has no entry symbol, is built for another ABI major, or has an invalid descriptor.
    public static func open(path: String) throws(PluginError) -> PluginLibrary {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let result: Result<PluginLibrary, PluginError> = state.withLock { state in
            if !state.initialized {
                guard lt_dlinit() == 0 else {
                    return .failure(PluginError(.loaderUnavailable, file: absolute, call: "lt_dlinit", reason: lastDLError()))
                }
                state.initialized = true  // never lt_dlexit: libraries stay resident
            }
            if let known = state.byPath[absolute] { return .success(known) }
            // Like PostgreSQL's restricted load path: code anyone can overwrite never runs in the host.
            for candidate in [absolute, absolute + ".so"] {
                var st = stat()
                if stat(candidate, &st) == 0 {
                    if st.st_mode & S_IWOTH != 0 {
                        return .failure(PluginError(.openFailed, file: candidate, call: "stat",
                                                    reason: "the file is world-writable; refusing to load it (chmod o-w the file)"))
                    }
                    break
                }
            }
            guard let handle = lt_dlopenext(absolute) else {
                return .failure(PluginError(.openFailed, file: absolute, call: "lt_dlopenext",
                                            reason: "\(lastDLError()); check the path and that the file is a shared library for this machine"))
            }
            _ = lt_dlmakeresident(handle)
            let resolved = lt_dlgetinfo(handle).flatMap { $0.pointee.filename }.map { String(cString: $0) } ?? absolute
            if let known = state.byPath[resolved] {
                state.byPath[absolute] = known
                return .success(known)
            }
            guard let symbol = lt_dlsym(handle, HostABI.entrySymbol) else {
                return .failure(PluginError(.missingEntrySymbol, file: resolved, call: "lt_dlsym",
                                            reason: "the library does not export '\(HostABI.entrySymbol)' (\(lastDLError())); it is not a Hangar ABI v1 plugin, or was built without HANGAR_EXPORT on the entry function"))
            }
            do throws(PluginError) {
                let library = try makeLibrary(path: resolved, entry: unsafeBitCast(symbol, to: hangar_plugin_entry_fn.self))
                state.byPath[absolute] = library
                state.byPath[resolved] = library
                return .success(library)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func makeLibrary(path: String, entry: hangar_plugin_entry_fn) throws(PluginError) -> PluginLibrary {
        guard let raw = entry(HostABI.packed) else {
            throw PluginError(.nullDescriptor, file: path, call: HostABI.entrySymbol,
                              reason: "the entry symbol returned NULL: the plugin cannot serve host ABI \(HostABI.major).\(HostABI.minor)")
        }
        let size = UnsafeRawPointer(raw).load(as: UInt32.self)
        // Read the version words before trusting struct_size: an ABI v2 plugin may lay out
        // everything else differently.
        let major = UnsafeRawPointer(raw).load(fromByteOffset: 4, as: UInt16.self)
        let minor = UnsafeRawPointer(raw).load(fromByteOffset: 6, as: UInt16.self)
        guard major == HostABI.major else {
            throw PluginError(.abiMismatch, file: path, call: HostABI.entrySymbol,
                              reason: "plugin is built for ABI \(major).\(minor), this host speaks ABI \(HostABI.major).\(HostABI.minor); rebuild the plugin against Hangar's ABI \(HostABI.major) headers")
        }
        guard size >= minimumDescriptorSize else {
            throw PluginError(.invalidDescriptor, file: path, call: "descriptor.struct_size",
                              reason: "descriptor struct_size is \(size) bytes, smaller than the ABI \(HostABI.major).0 minimum of \(minimumDescriptorSize)")
        }
        let (c, _) = copySizePrefixed(UnsafeRawPointer(raw), as: hangar_plugin_descriptor.self, zero: hangar_plugin_descriptor())
        guard let kind = PluginKind(rawValue: c.kind) else {
            throw PluginError(.invalidDescriptor, file: path, call: "descriptor.kind", reason: "unknown plugin kind \(c.kind) (expected 1 accelerator, 2 storage, 3 scheduler or 4 agent selector)")
        }
        func text(_ p: UnsafePointer<CChar>?, _ field: String, required: Bool) throws(PluginError) -> String? {
            guard let p else {
                if required { throw PluginError(.invalidDescriptor, file: path, call: "descriptor.\(field == "name" ? "name" : "metadata")", reason: "descriptor field '\(field)' is NULL") }
                return nil
            }
            return String(cString: p)
        }
        let name = try text(c.name, "name", required: true)!
        guard PluginNaming.isValidKey(name) else {
            throw PluginError(.invalidDescriptor, plugin: name, file: path, call: "descriptor.name",
                              reason: "plugin name '\(name)' is not a valid key: use 1-63 lowercase letters, digits and '-', starting with a letter")
        }
        var slotNames: [String]?
        if kind == .accelerator, var cursor = c.static_slot_names {
            var names: [String] = []
            while let entry = cursor.pointee {
                names.append(String(cString: entry))
                if names.count > 4096 { throw PluginError(.invalidDescriptor, plugin: name, file: path, call: "descriptor.static_slot_names", reason: "static_slot_names is not NULL-terminated") }
                cursor += 1
            }
            slotNames = names
        }
        let descriptor = PluginDescriptor(
            structSize: size, abiMajor: major, abiMinor: minor, kind: kind,
            threadSafety: c.thread_safety, capabilities: c.capabilities,
            name: name,
            vendor: try text(c.vendor, "vendor", required: true)!,
            version: try text(c.version, "version", required: true)!,
            description: try text(c.description, "description", required: false) ?? "",
            license: try text(c.license, "license", required: false) ?? "",
            configSchema: try text(c.config_schema, "config_schema", required: false),
            staticSlotNames: slotNames,
            homepage: try text(c.homepage, "homepage", required: false))
        guard let functions = c.functions else {
            throw PluginError(.missingFunction, plugin: name, file: path, call: "descriptor.functions", reason: "descriptor has no function table ('functions' is NULL)")
        }
        try FunctionTableCheck.validate(kind: kind, functions: functions, plugin: name, file: path)
        if let slotNames {
            for slot in slotNames where !slot.hasPrefix(name + ".") {
                throw PluginError(.badSlotName, plugin: name, file: path, call: "descriptor.static_slot_names",
                                  reason: "slot name '\(slot)' does not start with the plugin key '\(name).'; name slots '<key>.<subtype>', e.g. '\(name).device'")
            }
        }
        if let schema = descriptor.configSchema {
            do { _ = try ConfigSchema(json: schema) } catch {
                throw PluginError(.invalidDescriptor, plugin: name, file: path, call: "descriptor.config_schema", reason: "config_schema is not a usable JSON Schema: \(error.reason)")
            }
        }
        return PluginLibrary(path: path, entry: entry, rawDescriptor: raw, descriptor: descriptor, functions: functions)
    }
}

/// Rules for plugin keys and slot names.
public enum PluginNaming {
    /// 1-63 characters of `[a-z0-9-]`, starting with a letter (a DNS label, like CDI's class names).
    public static func isValidKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard (1...63).contains(bytes.count), let first = bytes.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else { return false }
        return bytes.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
    }
}
