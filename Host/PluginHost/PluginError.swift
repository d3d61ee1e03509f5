import Foundation
import PluginAPI

/// Every failure of the plugin host: which plugin (name and file), which call, and why,
/// phrased so an operator or a plugin author can act on it.
///
/// `code` is an extensible struct rather than an enum so that new failure kinds never break
/// a caller's `switch`.
public struct PluginError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// libltdl could not initialise.
        public static let loaderUnavailable = Code("loader-unavailable")
        /// The file could not be opened as a shared library.
        public static let openFailed = Code("open-failed")
        /// The library does not export `hangar_plugin_entry_v1`.
        public static let missingEntrySymbol = Code("missing-entry-symbol")
        /// The entry symbol returned NULL.
        public static let nullDescriptor = Code("null-descriptor")
        /// The plugin was built for another ABI major version.
        public static let abiMismatch = Code("abi-mismatch")
        /// The descriptor is malformed (sizes, names, kind, strings).
        public static let invalidDescriptor = Code("invalid-descriptor")
        /// A function the kind requires is NULL.
        public static let missingFunction = Code("missing-function")
        /// A slot name does not start with the plugin key.
        public static let badSlotName = Code("bad-slot-name")
        /// Two plugins (or instances) claim one key.
        public static let duplicateKey = Code("duplicate-key")
        /// The plugin is of another kind than the caller needs.
        public static let kindMismatch = Code("kind-mismatch")
        /// No plugin of that name is on the search path.
        public static let notFound = Code("not-found")
        /// The configuration is not valid for the plugin (schema, unknown keys, types).
        public static let invalidConfig = Code("invalid-config")
        /// create() failed.
        public static let createFailed = Code("create-failed")
        /// A call on an instance returned an error status.
        public static let callFailed = Code("call-failed")
        /// The plugin broke the ABI contract (bad status value, bad output).
        public static let contractViolation = Code("contract-violation")
        /// The instance was already destroyed.
        public static let destroyed = Code("destroyed")
        /// The host's own configuration file is invalid.
        public static let hostConfig = Code("host-config")
    }

    public let code: Code
    /// The plugin name (key), when known.
    public let plugin: String?
    /// The library file, when known.
    public let file: String?
    /// The ABI function or host step that failed, e.g. `container_edits`.
    public let call: String?
    /// The status the plugin returned, for `callFailed`/`createFailed`.
    public let status: PluginStatus?
    /// What went wrong and, where possible, how to fix it.
    public let reason: String

    public init(_ code: Code, plugin: String? = nil, file: String? = nil, call: String? = nil,
                status: PluginStatus? = nil, reason: String) {
        self.code = code
        self.plugin = plugin
        self.file = file
        self.call = call
        self.status = status
        self.reason = reason
    }

    public var description: String {
        var parts: [String] = []
        if let plugin { parts.append("plugin '\(plugin)'") }
        if let file { parts.append("(\(file))") }
        if let call { parts.append("\(call)") }
        var text = parts.isEmpty ? "" : parts.joined(separator: " ") + ": "
        if let status { text += "\(status): " }
        text += reason
        return text
    }
}

/// A `hangar_status` value with its symbolic name.
public struct PluginStatus: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The symbolic name from the headers, or the range the code falls in.
    public var name: String {
        switch rawValue {
        case HANGAR_OK: return "HANGAR_OK"
        case HANGAR_E_INVALID_ARGUMENT: return "HANGAR_E_INVALID_ARGUMENT"
        case HANGAR_E_NOT_FOUND: return "HANGAR_E_NOT_FOUND"
        case HANGAR_E_UNSUPPORTED: return "HANGAR_E_UNSUPPORTED"
        case HANGAR_E_BUFFER_TOO_SMALL: return "HANGAR_E_BUFFER_TOO_SMALL"
        case HANGAR_E_INVALID_CONFIG: return "HANGAR_E_INVALID_CONFIG"
        case HANGAR_E_INCOMPATIBLE: return "HANGAR_E_INCOMPATIBLE"
        case HANGAR_E_BUSY: return "HANGAR_E_BUSY"
        case HANGAR_E_INSUFFICIENT: return "HANGAR_E_INSUFFICIENT"
        case HANGAR_E_IO: return "HANGAR_E_IO"
        case HANGAR_E_PERMISSION: return "HANGAR_E_PERMISSION"
        case HANGAR_E_EXISTS: return "HANGAR_E_EXISTS"
        case HANGAR_E_INTERNAL: return "HANGAR_E_INTERNAL"
        case HANGAR_E_DRIVER_UNAVAILABLE: return "HANGAR_E_DRIVER_UNAVAILABLE"
        case HANGAR_E_DEVICE_LOST: return "HANGAR_E_DEVICE_LOST"
        case HANGAR_E_BAD_ALLOCATION: return "HANGAR_E_BAD_ALLOCATION"
        case HANGAR_E_QUOTA_EXCEEDED: return "HANGAR_E_QUOTA_EXCEEDED"
        case HANGAR_E_FOLDER_BUSY: return "HANGAR_E_FOLDER_BUSY"
        case HANGAR_E_NOTHING_TO_SCHEDULE: return "HANGAR_E_NOTHING_TO_SCHEDULE"
        case HANGAR_E_NO_AGENT: return "HANGAR_E_NO_AGENT"
        case HANGAR_E_PLUGIN_BASE...: return "plugin-specific status \(rawValue)"
        case ..<0: return "invalid negative status \(rawValue)"
        default: return "unassigned status \(rawValue)"
        }
    }

    /// True for codes that mean "try again later".
    public var isRetryable: Bool { rawValue == HANGAR_E_BUSY }

    public var description: String { name }

    public static let ok = PluginStatus(HANGAR_OK)
    public static let notFound = PluginStatus(HANGAR_E_NOT_FOUND)
    public static let invalidArgument = PluginStatus(HANGAR_E_INVALID_ARGUMENT)
    public static let bufferTooSmall = PluginStatus(HANGAR_E_BUFFER_TOO_SMALL)
    public static let unsupported = PluginStatus(HANGAR_E_UNSUPPORTED)
    public static let busy = PluginStatus(HANGAR_E_BUSY)
    public static let exists = PluginStatus(HANGAR_E_EXISTS)
    public static let quotaExceeded = PluginStatus(HANGAR_E_QUOTA_EXCEEDED)
    public static let folderBusy = PluginStatus(HANGAR_E_FOLDER_BUSY)
}

extension PluginError: LocalizedError {
    /// So that command-line tools print the full message rather than a generic one.
    public var errorDescription: String? { description }
}
