import PluginAPI

/// Checks a kind's function table when a library is opened: it must be at least as large as
/// the required part and every required function must be present.
enum FunctionTableCheck {
    static func validate(kind: PluginKind, functions: UnsafeRawPointer, plugin: String, file: String) throws(PluginError) {
        let missing: [String]
        let size = functions.load(as: UInt32.self)
        let required: Int
        switch kind {
        case .accelerator:
            let t = AcceleratorTable(functions)
            required = MemoryLayout<hangar_accelerator_functions>.offset(of: \.container_edits)! + MemoryLayout<UnsafeRawPointer>.size
            missing = [("create", t.raw.create == nil), ("destroy", t.raw.destroy == nil), ("last_error", t.raw.last_error == nil),
                       ("get_info", t.raw.get_info == nil), ("list_devices", t.raw.list_devices == nil),
                       ("list_slots", t.raw.list_slots == nil), ("list_device_slots", t.raw.list_device_slots == nil),
                       ("container_edits", t.raw.container_edits == nil)].filter(\.1).map(\.0)
        case .storage:
            let t = StorageTable(functions)
            required = MemoryLayout<hangar_storage_functions>.offset(of: \.volume_usage)! + MemoryLayout<UnsafeRawPointer>.size
            missing = [("create", t.raw.create == nil), ("destroy", t.raw.destroy == nil), ("last_error", t.raw.last_error == nil),
                       ("create_folder", t.raw.create_folder == nil), ("delete_folder", t.raw.delete_folder == nil),
                       ("folder_path", t.raw.folder_path == nil), ("get_usage", t.raw.get_usage == nil),
                       ("volume_usage", t.raw.volume_usage == nil)].filter(\.1).map(\.0)
        case .scheduler:
            let t = SchedulerTable(functions)
            required = MemoryLayout<hangar_scheduler_functions>.size
            missing = [("create", t.raw.create == nil), ("destroy", t.raw.destroy == nil), ("last_error", t.raw.last_error == nil),
                       ("pick_next", t.raw.pick_next == nil)].filter(\.1).map(\.0)
        case .agentSelector:
            let t = SelectorTable(functions)
            required = MemoryLayout<hangar_agent_selector_functions>.size
            missing = [("create", t.raw.create == nil), ("destroy", t.raw.destroy == nil), ("last_error", t.raw.last_error == nil),
                       ("select_agents", t.raw.select_agents == nil)].filter(\.1).map(\.0)
        }
        guard size >= required else {
            throw PluginError(.missingFunction, plugin: plugin, file: file, call: "descriptor.functions",
                              reason: "the \(kind) function table is \(size) bytes, smaller than the \(required) bytes that hold the required functions of ABI 1.0")
        }
        if !missing.isEmpty {
            throw PluginError(.missingFunction, plugin: plugin, file: file, call: "descriptor.functions",
                              reason: "required \(kind) function\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")) \(missing.count > 1 ? "are" : "is") NULL in the function table")
        }
    }
}

/// Each kind's table copied into a zeroed host-sized struct, so functions appended after the
/// plugin's minor read as NULL.
public struct AcceleratorTable {
    public let raw: hangar_accelerator_functions
    public init(_ p: UnsafeRawPointer) { raw = copySizePrefixed(p, as: hangar_accelerator_functions.self, zero: hangar_accelerator_functions()).value }
}

public struct StorageTable {
    public let raw: hangar_storage_functions
    public init(_ p: UnsafeRawPointer) { raw = copySizePrefixed(p, as: hangar_storage_functions.self, zero: hangar_storage_functions()).value }
}

public struct SchedulerTable {
    public let raw: hangar_scheduler_functions
    public init(_ p: UnsafeRawPointer) { raw = copySizePrefixed(p, as: hangar_scheduler_functions.self, zero: hangar_scheduler_functions()).value }
}

public struct SelectorTable {
    public let raw: hangar_agent_selector_functions
    public init(_ p: UnsafeRawPointer) { raw = copySizePrefixed(p, as: hangar_agent_selector_functions.self, zero: hangar_agent_selector_functions()).value }
}

/// The lifecycle functions every kind's table starts with.
public struct LifecycleFunctions: Sendable {
    public typealias Create = @convention(c) (UnsafePointer<hangar_host_services>?, UnsafePointer<CChar>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<CChar>?, Int) -> hangar_status
    public typealias Destroy = @convention(c) (UnsafeMutableRawPointer?) -> Void
    public typealias LastError = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, Int) -> Int

    public let create: Create
    public let destroy: Destroy
    public let lastError: LastError

    public init(library: PluginLibrary) {
        switch library.descriptor.kind {
        case .accelerator:
            let t = AcceleratorTable(library.functions).raw
            (create, destroy, lastError) = (t.create!, t.destroy!, t.last_error!)
        case .storage:
            let t = StorageTable(library.functions).raw
            (create, destroy, lastError) = (t.create!, t.destroy!, t.last_error!)
        case .scheduler:
            let t = SchedulerTable(library.functions).raw
            (create, destroy, lastError) = (t.create!, t.destroy!, t.last_error!)
        case .agentSelector:
            let t = SelectorTable(library.functions).raw
            (create, destroy, lastError) = (t.create!, t.destroy!, t.last_error!)
        }
    }
}
