import PluginAPI

/// Usage of a folder or a volume.
public struct StorageUsage: Sendable, Codable, Equatable {
    /// nil when the backend cannot count files.
    public var fileCount: Int64?
    public var usedBytes: UInt64
    /// Quota for a folder (0 = none), filesystem size for a volume.
    public var capacityBytes: UInt64
}

/// One performance metric of a volume.
public struct StorageMetric: Sendable, Codable, Equatable {
    public var key: String
    public var unit: String
    public var value: Double
}

/// A storage-backend plugin instance serving one volume.
public final class StoragePlugin: @unchecked Sendable {
    public let instance: PluginInstance
    private let fns: hangar_storage_functions

    /// Creates the instance for one volume.
    /// - Throws: `PluginError` (`.kindMismatch`, `.invalidConfig`, `.createFailed`).
    public init(library: PluginLibrary, config: ConfigValue) throws(PluginError) {
        guard library.descriptor.kind == .storage else {
            throw PluginError(.kindMismatch, plugin: library.descriptor.name, file: library.path,
                              reason: "is a \(library.descriptor.kind) plugin, not a storage backend")
        }
        fns = StorageTable(library.functions).raw
        instance = try PluginInstance(library: library, config: config)
    }

    public var name: String { instance.name }

    private func unsupported(_ call: String) -> PluginError {
        PluginError(.callFailed, plugin: name, file: instance.library.path, call: call, status: PluginStatus(HANGAR_E_UNSUPPORTED),
                    reason: "the backend does not implement \(call)")
    }

    /// Creates an empty folder; `quotaBytes` 0 means none.
    public func createFolder(_ id: String, quotaBytes: UInt64 = 0) throws(PluginError) {
        try instance.invoke("create_folder") { [fns] h in id.withCString { fns.create_folder!(h, $0, quotaBytes) } }
    }

    /// Deletes a folder and its contents.
    public func deleteFolder(_ id: String) throws(PluginError) {
        try instance.invoke("delete_folder") { [fns] h in id.withCString { fns.delete_folder!(h, $0) } }
    }

    /// The folder's absolute host path.
    public func folderPath(_ id: String) throws(PluginError) -> String {
        var capacity = 256
        while true {
            var buf = [CChar](repeating: 0, count: capacity)
            var needed = 0
            var status: hangar_status = HANGAR_OK
            do throws(PluginError) {
                try instance.invoke("folder_path") { [fns] h in
                    status = id.withCString { idp in buf.withUnsafeMutableBufferPointer { fns.folder_path!(h, idp, $0.baseAddress, $0.count, &needed) } }
                    return status
                }
                return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            } catch where status == HANGAR_E_BUFFER_TOO_SMALL && needed >= capacity && needed < 1 << 20 {
                capacity = needed + 1
            }
        }
    }

    /// Usage of one folder.
    public func usage(of id: String) throws(PluginError) -> StorageUsage {
        var raw = hangar_storage_usage()
        raw.struct_size = UInt32(MemoryLayout<hangar_storage_usage>.size)
        try instance.invoke("get_usage") { [fns] h in id.withCString { fns.get_usage!(h, $0, &raw) } }
        return StorageUsage(fileCount: raw.file_count < 0 ? nil : raw.file_count, usedBytes: raw.used_bytes, capacityBytes: raw.capacity_bytes)
    }

    /// Usage and capacity of the whole volume.
    public func volumeUsage() throws(PluginError) -> StorageUsage {
        var raw = hangar_storage_usage()
        raw.struct_size = UInt32(MemoryLayout<hangar_storage_usage>.size)
        try instance.invoke("volume_usage") { [fns] h in fns.volume_usage!(h, &raw) }
        return StorageUsage(fileCount: raw.file_count < 0 ? nil : raw.file_count, usedBytes: raw.used_bytes, capacityBytes: raw.capacity_bytes)
    }

    /// The folder's quota in bytes (0 = none).
    public func quota(of id: String) throws(PluginError) -> UInt64 {
        guard let get = fns.get_quota else { throw unsupported("get_quota") }
        var out: UInt64 = 0
        try instance.invoke("get_quota") { h in id.withCString { get(h, $0, &out) } }
        return out
    }

    /// Sets the folder's quota (0 removes it).
    public func setQuota(of id: String, bytes: UInt64) throws(PluginError) {
        guard let set = fns.set_quota else { throw unsupported("set_quota") }
        try instance.invoke("set_quota") { h in id.withCString { set(h, $0, bytes) } }
    }

    /// Copies a folder (an instant snapshot where the backend can).
    public func cloneFolder(_ source: String, to target: String) throws(PluginError) {
        guard let clone = fns.clone_folder else { throw unsupported("clone_folder") }
        try instance.invoke("clone_folder") { h in source.withCString { s in target.withCString { clone(h, s, $0) } } }
    }

    /// Volume performance metrics; empty when the backend has none.
    public func performance() throws(PluginError) -> [StorageMetric] {
        guard let get = fns.get_performance else { return [] }
        let box = SinkBox<StorageMetric>()
        let unmanaged = Unmanaged.passRetained(box)
        defer { unmanaged.release() }
        try instance.invoke("get_performance") { h in get(h, storageMetricSink, unmanaged.toOpaque()) }
        if let problem = box.problem {
            throw PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "get_performance", reason: problem)
        }
        return box.items
    }
}

private func storageMetricSink(_ ctx: UnsafeMutableRawPointer?, _ raw: UnsafePointer<hangar_storage_metric>?) -> hangar_status {
    let box = SinkBox<StorageMetric>.from(ctx)
    guard let raw else { box.problem = "a metric was NULL"; return HANGAR_E_INVALID_ARGUMENT }
    let m = copySizePrefixed(UnsafeRawPointer(raw), as: hangar_storage_metric.self, zero: hangar_storage_metric()).value
    guard let key = optionalString(m.key), !key.isEmpty else { box.problem = "a metric has no key"; return HANGAR_E_INVALID_ARGUMENT }
    box.items.append(StorageMetric(key: key, unit: optionalString(m.unit) ?? "", value: m.value))
    return HANGAR_OK
}
