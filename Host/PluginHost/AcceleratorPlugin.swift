import ConfigFile
import Foundation
import PluginAPI

/// Fixed-point scale of count and unique slot amounts (1.0 == 1_000_000).
public let amountScale: Int64 = HANGAR_AMOUNT_SCALE

/// Backend.AI's slot types.
public enum SlotType: UInt32, Sendable, Codable, CustomStringConvertible {
    case count = 1, bytes = 2, unique = 3
    public var description: String {
        switch self {
        case .count: "count"
        case .bytes: "bytes"
        case .unique: "unique"
        }
    }
}

/// Whether a slot is allocated in whole units or in shares.
public enum AllocationMode: UInt32, Sendable, Codable, CustomStringConvertible {
    case discrete = 1, fractional = 2
    public var description: String { self == .discrete ? "discrete" : "fractional" }
}

/// A device's health as the plugin reports it.
public enum DeviceHealth: UInt32, Sendable, Codable, CustomStringConvertible {
    case unknown = 0, healthy = 1, degraded = 2, unhealthy = 3
    public var description: String {
        switch self {
        case .unknown: "unknown"
        case .healthy: "healthy"
        case .degraded: "degraded"
        case .unhealthy: "unhealthy"
        }
    }
}

/// Formats a fixed-point amount of a slot for people: bytes as an integer, counts as a
/// decimal without binary floating point ("0.25", "2").
public func formatAmount(_ amount: Int64, type: SlotType) -> String {
    if type == .bytes { return String(amount) }
    let sign = amount < 0 ? "-" : ""
    let magnitude = amount.magnitude
    let whole = magnitude / UInt64(amountScale)
    var fraction = String(magnitude % UInt64(amountScale))
    if fraction == "0" { return sign + String(whole) }
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return "\(sign)\(whole).\(fraction)"
}

/// Parses an amount people write ("1", "0.25", "16G" for byte slots) into fixed point, the
/// inverse of `formatAmount`; nil for malformed text or more than six decimals.
public func parseAmount(_ text: String, type: SlotType) -> Int64? {
    if type == .bytes { return ByteSize.parse(text) ?? Int64(text) }
    let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let whole = Int64(parts[0].isEmpty && parts.count == 2 ? "0" : parts[0]), whole >= 0 else { return nil }
    var fraction: Int64 = 0
    if parts.count == 2 {
        let digits = parts[1]
        guard !digits.isEmpty, digits.count <= 6, digits.allSatisfy(\.isASCII), let f = Int64(digits + String(repeating: "0", count: 6 - digits.count)), f >= 0 else {
            return nil
        }
        fraction = f
    }
    let (scaled, overflow) = whole.multipliedReportingOverflow(by: amountScale)
    return overflow ? nil : scaled + fraction
}

/// Key, versions and driver facts of an accelerator instance.
public struct AcceleratorInfo: Sendable, Codable, Equatable {
    public var deviceKey: String
    public var driverVersion: String?
    public var runtimeVersion: String?
    public var extraInfoJSON: String?
    public var noDeviceReason: String?
}

/// One device of an accelerator plugin.
public struct AcceleratorDevice: Sendable, Codable, Equatable {
    public var id: String
    public var model: String
    public var uuid: String?
    public var hwLocation: String?
    public var memoryBytes: UInt64
    public var processingUnits: UInt32
    /// nil when the plugin does not know.
    public var numaNode: Int32?
    public var health: DeviceHealth
    public var healthReason: String?
    /// ABI 1.2 facts; nil when the plugin does not report them (or predates 1.2).
    public var firmwareVersion: String?
    public var boardID: String?
    public var linkSpeed: String?
    /// A JSON object of further facts, as the plugin wrote it.
    public var extraInfoJSON: String?
    /// The nearest host CPUs as a Linux cpulist ("0-15,32-47").
    public var cpuAffinity: String?
    /// The device this one is a partition of.
    public var parentDeviceID: String?

    /// The CPU ids of `cpuAffinity`, or nil when absent or malformed.
    public var affineCPUs: Set<Int>? { cpuAffinity.flatMap(CPUList.parse) }
}

/// Linux cpulist text ("0-3,8,10-11"), as sysfs `local_cpulist` and `cpuset.cpus` write it.
public enum CPUList {
    /// The CPU ids, or nil for malformed text (an empty list is malformed: it names no CPU).
    public static func parse(_ text: String) -> Set<Int>? {
        var out: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2, let low = Int(bounds[0]), low >= 0,
                  let high = bounds.count == 2 ? Int(bounds[1]) : low, high >= low, high - low < 65_536 else { return nil }
            out.formUnion(low...high)
        }
        return out.isEmpty ? nil : out
    }
}

/// A slot type an accelerator provides, with its node-wide capacity.
public struct SlotDefinition: Sendable, Codable, Equatable {
    public var name: String
    public var type: SlotType
    public var mode: AllocationMode
    /// Fixed point; 0 means whole units.
    public var quantum: Int64
    /// Fixed point (bytes for byte slots).
    public var capacity: Int64
    public var exclusive: Bool
    public var displayName: String?
    public var displayUnit: String?
}

/// How much of a slot one device provides.
public struct DeviceSlotCapacity: Sendable, Codable, Equatable {
    public var slotName: String
    public var deviceID: String
    public var capacity: Int64
}

/// One line of an allocation: `amount` of `slotName` on `deviceID`.
public struct AllocationEntry: Sendable, Codable, Equatable {
    public var slotName: String
    public var deviceID: String
    public var amount: Int64
    public init(slotName: String, deviceID: String, amount: Int64) {
        self.slotName = slotName
        self.deviceID = deviceID
        self.amount = amount
    }
}

/// A plugin's devices given to one container.
public struct Allocation: Sendable, Codable, Equatable {
    public var containerID: String
    public var entries: [AllocationEntry]
    public init(containerID: String, entries: [AllocationEntry]) {
        self.containerID = containerID
        self.entries = entries
    }
}

/// One measured value from a plugin.
public struct Measurement: Sendable, Codable, Equatable {
    /// HANGAR_UNIT_*; celsius to hertz came with ABI 1.2.
    public enum Unit: UInt32, Sendable, Codable, CaseIterable {
        case count = 0, bytes = 1, percent = 2, bytesPerSecond = 3, celsius = 4, watts = 5, joules = 6, hertz = 7
    }
    /// HANGAR_MEASURE_*: a gauge goes up and down; a counter only grows until a reset.
    public enum Kind: UInt32, Sendable, Codable { case gauge = 0, counter = 1 }
    public var key: String
    public var unit: Unit
    public var kind: Kind = .gauge
    public var deviceID: String?
    public var containerID: String?
    public var current: Double
    public var capacity: Double
}

/// An accelerator plugin instance: devices, slots, container settings and measurements,
/// behind the plugin's C function table.
public final class AcceleratorPlugin: @unchecked Sendable {
    public let instance: PluginInstance
    /// Key and driver facts, read once at creation.
    public let info: AcceleratorInfo
    private let fns: hangar_accelerator_functions

    /// Creates the instance and checks what it reports: a valid device key, and slot names
    /// that all start with `<device key>.`.
    ///
    /// - Throws: `PluginError` (`.kindMismatch`, `.invalidConfig`, `.createFailed`,
    ///   `.badSlotName`, `.callFailed`).
    /// - Parameter validating: false only for the conformance suite, which checks the device
    ///   key and slot names itself, one rule at a time (a NULL device key then reads as "").
    public init(library: PluginLibrary, config: ConfigValue = .emptyTable, validating: Bool = true) throws(PluginError) {
        guard library.descriptor.kind == .accelerator else {
            throw PluginError(.kindMismatch, plugin: library.descriptor.name, file: library.path,
                              reason: "is a \(library.descriptor.kind) plugin, not an accelerator")
        }
        let table = AcceleratorTable(library.functions).raw
        fns = table
        let created = try PluginInstance(library: library, config: config)
        instance = created
        var raw = hangar_accel_info()
        raw.struct_size = UInt32(MemoryLayout<hangar_accel_info>.size)
        try created.invoke("get_info") { h in table.get_info!(h, &raw) }
        guard let key = raw.device_key.map({ String(cString: $0) }) ?? (validating ? nil : "") else {
            throw PluginError(.contractViolation, plugin: library.descriptor.name, file: library.path, call: "get_info", reason: "device_key is NULL")
        }
        info = AcceleratorInfo(deviceKey: key,
                               driverVersion: raw.driver_version.map { String(cString: $0) },
                               runtimeVersion: raw.runtime_version.map { String(cString: $0) },
                               extraInfoJSON: raw.extra_info_json.map { String(cString: $0) },
                               noDeviceReason: raw.no_device_reason.map { String(cString: $0) })
        guard validating else { return }
        guard PluginNaming.isValidKey(key) else {
            throw PluginError(.invalidDescriptor, plugin: library.descriptor.name, file: library.path, call: "get_info",
                              reason: "device key '\(key)' is not valid: use 1-63 lowercase letters, digits and '-', starting with a letter")
        }
        for slot in try slots() where !slot.name.hasPrefix(key + ".") {
            throw PluginError(.badSlotName, plugin: library.descriptor.name, file: library.path, call: "list_slots",
                              reason: "slot name '\(slot.name)' does not start with the device key '\(key).'")
        }
    }

    /// The plugin key (descriptor name).
    public var name: String { instance.name }

    /// Every device, healthy or not.
    public func devices() throws(PluginError) -> [AcceleratorDevice] {
        let box = SinkBox<AcceleratorDevice>()
        try collect("list_devices", box) { [fns] h, ctx in fns.list_devices!(h, deviceSink, ctx) }
        return box.items
    }

    /// Slot types with node-wide capacities.
    public func slots() throws(PluginError) -> [SlotDefinition] {
        let box = SinkBox<SlotDefinition>()
        try collect("list_slots", box) { [fns] h, ctx in fns.list_slots!(h, slotSink, ctx) }
        return box.items
    }

    /// Per-device capacities of each slot.
    public func deviceSlots() throws(PluginError) -> [DeviceSlotCapacity] {
        let box = SinkBox<DeviceSlotCapacity>()
        try collect("list_device_slots", box) { [fns] h, ctx in fns.list_device_slots!(h, deviceSlotSink, ctx) }
        return box.items
    }

    /// What a container needs to use `allocation`.
    public func containerEdits(for allocation: Allocation) throws(PluginError) -> ContainerEdits {
        let (edits, error) = containerEditsOutcome(for: allocation)
        if let error { throw error }
        return edits
    }

    /// Calls container_edits and returns what was emitted together with the failure, if any:
    /// a refusal must leave no edits, which the conformance suite checks with this.
    public func containerEditsOutcome(for allocation: Allocation) -> (edits: ContainerEdits, error: PluginError?) {
        let builder = ContainerEditsBuilder()
        let unmanaged = Unmanaged.passRetained(builder)
        defer { unmanaged.release() }
        var table = makeEditsTable(context: unmanaged.toOpaque())
        do throws(PluginError) {
            try withCAllocation(allocation) { alloc throws(PluginError) in
                try instance.invoke("container_edits") { [fns] h in fns.container_edits!(h, alloc, &table) }
            }
        } catch {
            if let rejected = builder.rejection {
                return (builder.edits, PluginError(error.code, plugin: error.plugin, file: error.file, call: error.call, status: error.status,
                                                   reason: error.reason + " (host refused an edit: \(rejected))"))
            }
            return (builder.edits, error)
        }
        if let rejected = builder.rejection {
            return (builder.edits, PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "container_edits",
                                               reason: "returned HANGAR_OK after the host refused an edit: \(rejected)"))
        }
        return (builder.edits, nil)
    }

    /// True if the plugin makes driver-side state in `prepare` (ABI 1.2) before container edits.
    public var hasPrepare: Bool { fns.prepare != nil }

    /// Makes the driver-side state an allocation needs (MIG instances); a no-op for plugins
    /// without `prepare`. Idempotent; `release` frees what it made.
    public func prepare(_ allocation: Allocation) throws(PluginError) {
        guard let prepare = fns.prepare else { return }
        try withCAllocation(allocation) { alloc throws(PluginError) in
            try instance.invoke("prepare") { h in prepare(h, alloc) }
        }
    }

    /// Frees driver-side state for an allocation; a no-op for plugins without `release`.
    public func release(_ allocation: Allocation) throws(PluginError) {
        guard let release = fns.release else { return }
        try withCAllocation(allocation) { alloc throws(PluginError) in
            try instance.invoke("release") { h in release(h, alloc) }
        }
    }

    /// Node- and device-level measurements; empty for plugins that have none.
    public func nodeMeasures() throws(PluginError) -> [Measurement] {
        guard let gather = fns.gather_node_measures else { return [] }
        let box = SinkBox<Measurement>()
        try collect("gather_node_measures", box) { h, ctx in gather(h, measureSink, ctx) }
        return box.items
    }

    /// Per-container measurements for the given allocations.
    public func containerMeasures(_ allocations: [Allocation]) throws(PluginError) -> [Measurement] {
        guard let gather = fns.gather_container_measures, !allocations.isEmpty else { return [] }
        let box = SinkBox<Measurement>()
        try withCAllocations(allocations) { array, count throws(PluginError) in
            try collect("gather_container_measures", box) { h, ctx in
                gather(h, array, count, MemoryLayout<hangar_accel_allocation>.stride, measureSink, ctx)
            }
        }
        return box.items
    }

    private func collect<T>(_ call: StaticString, _ box: SinkBox<T>,
                            _ body: (UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> hangar_status) throws(PluginError) {
        let unmanaged = Unmanaged.passRetained(box)
        defer { unmanaged.release() }
        do throws(PluginError) {
            try instance.invoke(call) { h in body(h, unmanaged.toOpaque()) }
        } catch {
            if let problem = box.problem {
                throw PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "\(call)", reason: problem)
            }
            throw error
        }
        if let problem = box.problem {
            throw PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "\(call)", reason: problem)
        }
    }
}

/// Collects what a plugin hands to a sink callback.
final class SinkBox<T> {
    var items: [T] = []
    /// Set when the plugin handed over something malformed.
    var problem: String?
    static func from(_ raw: UnsafeMutableRawPointer?) -> SinkBox<T> { Unmanaged<SinkBox<T>>.fromOpaque(raw!).takeUnretainedValue() }
}

/// The sizes of the ABI 1.0 accelerator structs a plugin fills: a smaller struct_size means a
/// plugin that set it wrong, which is named as such rather than as missing fields.
public enum ABI10Size {
    public static let device = MemoryLayout<hangar_accel_device>.offset(of: \hangar_accel_device.health_reason)! + MemoryLayout<UnsafeRawPointer?>.size
    public static let slot = MemoryLayout<hangar_accel_slot>.offset(of: \hangar_accel_slot.display_unit)! + MemoryLayout<UnsafeRawPointer?>.size
    public static let deviceSlot = MemoryLayout<hangar_accel_device_slot>.offset(of: \hangar_accel_device_slot.capacity)! + MemoryLayout<Int64>.size
    public static let measure = MemoryLayout<hangar_accel_measure>.offset(of: \hangar_accel_measure.capacity)! + MemoryLayout<Double>.size

    /// Why `size` is wrong for a struct that needs `needs` bytes, or nil.
    public static func problem(_ size: UInt32, of type: String, needs: Int, call: String) -> String? {
        guard Int(size) < needs else { return nil }
        return "\(call) passed a \(type) with struct_size \(size), smaller than the \(needs) bytes of ABI 1.0; set struct_size = sizeof(\(type))"
    }
}

/// True if `text` parses as a JSON object.
func isJSONObject(_ text: String) -> Bool {
    guard let data = text.data(using: .utf8) else { return false }
    return (try? JSONSerialization.jsonObject(with: data)) is [String: Any]
}

/// Reads an optional C string.
@inline(__always) func optionalString(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

private func deviceSink(_ ctx: UnsafeMutableRawPointer?, _ raw: UnsafePointer<hangar_accel_device>?) -> hangar_status {
    let box = SinkBox<AcceleratorDevice>.from(ctx)
    guard let raw else { box.problem = "list_devices passed a NULL device"; return HANGAR_E_INVALID_ARGUMENT }
    let (d, size) = copySizePrefixed(UnsafeRawPointer(raw), as: hangar_accel_device.self, zero: hangar_accel_device())
    if let problem = ABI10Size.problem(size, of: "hangar_accel_device", needs: ABI10Size.device, call: "list_devices") {
        box.problem = problem
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let id = optionalString(d.device_id), !id.isEmpty, let model = optionalString(d.model) else {
        box.problem = "list_devices passed a device without device_id or model"
        return HANGAR_E_INVALID_ARGUMENT
    }
    if box.items.contains(where: { $0.id == id }) {
        box.problem = "list_devices reported device id '\(id)' twice"
        return HANGAR_E_INVALID_ARGUMENT
    }
    // Optional facts that are malformed (a NUMA node below -1, a health outside the enum, a
    // cpu_affinity that is no cpulist, extra_info_json that is no object) are dropped, not the
    // device: one bad sysfs string must not take every device of the plugin off the node.
    // `hangar-plugin verify` fails each of them, so plugin authors still hear of it.
    let health = DeviceHealth(rawValue: d.health) ?? .unknown
    let affinity = optionalString(d.cpu_affinity).flatMap { CPUList.parse($0) == nil ? nil : $0 }
    let extra = optionalString(d.extra_info_json).flatMap { isJSONObject($0) ? $0 : nil }
    box.items.append(AcceleratorDevice(id: id, model: model, uuid: optionalString(d.uuid), hwLocation: optionalString(d.hw_location),
                                       memoryBytes: d.memory_bytes, processingUnits: d.processing_units,
                                       numaNode: d.numa_node < 0 ? nil : d.numa_node,
                                       health: health, healthReason: optionalString(d.health_reason),
                                       firmwareVersion: optionalString(d.firmware_version), boardID: optionalString(d.board_id),
                                       linkSpeed: optionalString(d.link_speed), extraInfoJSON: extra, cpuAffinity: affinity,
                                       parentDeviceID: optionalString(d.parent_device_id)))
    return HANGAR_OK
}

private func slotSink(_ ctx: UnsafeMutableRawPointer?, _ raw: UnsafePointer<hangar_accel_slot>?) -> hangar_status {
    let box = SinkBox<SlotDefinition>.from(ctx)
    guard let raw else { box.problem = "list_slots passed a NULL slot"; return HANGAR_E_INVALID_ARGUMENT }
    let (s, size) = copySizePrefixed(UnsafeRawPointer(raw), as: hangar_accel_slot.self, zero: hangar_accel_slot())
    if let problem = ABI10Size.problem(size, of: "hangar_accel_slot", needs: ABI10Size.slot, call: "list_slots") {
        box.problem = problem
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let name = optionalString(s.name), !name.isEmpty else {
        box.problem = "list_slots passed a slot without a name"
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let type = SlotType(rawValue: s.type), let mode = AllocationMode(rawValue: s.allocation_mode) else {
        box.problem = "slot '\(name)' has unknown type \(s.type) or allocation mode \(s.allocation_mode)"
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard s.capacity >= 0, s.quantum >= 0 else {
        box.problem = "slot '\(name)' has a negative capacity or quantum"
        return HANGAR_E_INVALID_ARGUMENT
    }
    box.items.append(SlotDefinition(name: name, type: type, mode: mode, quantum: s.quantum, capacity: s.capacity,
                                    exclusive: s.exclusive != 0, displayName: optionalString(s.display_name),
                                    displayUnit: optionalString(s.display_unit)))
    return HANGAR_OK
}

private func deviceSlotSink(_ ctx: UnsafeMutableRawPointer?, _ raw: UnsafePointer<hangar_accel_device_slot>?) -> hangar_status {
    let box = SinkBox<DeviceSlotCapacity>.from(ctx)
    guard let raw else { box.problem = "list_device_slots passed a NULL entry"; return HANGAR_E_INVALID_ARGUMENT }
    let (e, size) = copySizePrefixed(UnsafeRawPointer(raw), as: hangar_accel_device_slot.self, zero: hangar_accel_device_slot())
    if let problem = ABI10Size.problem(size, of: "hangar_accel_device_slot", needs: ABI10Size.deviceSlot, call: "list_device_slots") {
        box.problem = problem
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let slot = optionalString(e.slot_name), let device = optionalString(e.device_id), e.capacity >= 0 else {
        box.problem = "list_device_slots passed an entry without slot_name/device_id or with a negative capacity"
        return HANGAR_E_INVALID_ARGUMENT
    }
    box.items.append(DeviceSlotCapacity(slotName: slot, deviceID: device, capacity: e.capacity))
    return HANGAR_OK
}

private func measureSink(_ ctx: UnsafeMutableRawPointer?, _ raw: UnsafePointer<hangar_accel_measure>?) -> hangar_status {
    let box = SinkBox<Measurement>.from(ctx)
    guard let raw else { box.problem = "a measurement was NULL"; return HANGAR_E_INVALID_ARGUMENT }
    let (m, size) = copySizePrefixed(UnsafeRawPointer(raw), as: hangar_accel_measure.self, zero: hangar_accel_measure())
    if let problem = ABI10Size.problem(size, of: "hangar_accel_measure", needs: ABI10Size.measure, call: "a measure") {
        box.problem = problem
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let key = optionalString(m.key), !key.isEmpty, !key.contains(".") else {
        box.problem = "a measurement has no key or a key with a dot"
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let unit = Measurement.Unit(rawValue: m.unit) else {
        box.problem = "measurement '\(key)' has unit \(m.unit), which is not a HANGAR_UNIT_* value"
        return HANGAR_E_INVALID_ARGUMENT
    }
    guard let kind = Measurement.Kind(rawValue: m.measure_kind) else {
        box.problem = "measurement '\(key)' has measure_kind \(m.measure_kind), which is neither HANGAR_MEASURE_GAUGE nor HANGAR_MEASURE_COUNTER"
        return HANGAR_E_INVALID_ARGUMENT
    }
    box.items.append(Measurement(key: key, unit: unit, kind: kind, deviceID: optionalString(m.device_id),
                                 containerID: optionalString(m.container_id), current: m.current, capacity: m.capacity))
    return HANGAR_OK
}

/// Lays an allocation out as C structs for the duration of `body`.
func withCAllocation<R>(_ allocation: Allocation, _ body: (UnsafePointer<hangar_accel_allocation>) throws(PluginError) -> R) throws(PluginError) -> R {
    try withCAllocations([allocation]) { array, _ throws(PluginError) in try body(array) }
}

/// Lays several allocations out as a C array for the duration of `body` (also for the
/// conformance suite, which calls plugins through raw sinks).
public func withCAllocations<R>(_ allocations: [Allocation],
                         _ body: (UnsafePointer<hangar_accel_allocation>, Int) throws(PluginError) -> R) throws(PluginError) -> R {
    // Keep every C string alive in one arena until the call returns.
    var arena: [UnsafeMutablePointer<CChar>] = []
    defer { arena.forEach { free($0) } }
    func cString(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        arena.append(p)
        return UnsafePointer(p)
    }
    let entryArrays: [UnsafeMutablePointer<hangar_accel_alloc_entry>] = allocations.map { allocation in
        let entries = UnsafeMutablePointer<hangar_accel_alloc_entry>.allocate(capacity: max(allocation.entries.count, 1))
        for (i, e) in allocation.entries.enumerated() {
            var c = hangar_accel_alloc_entry()
            c.struct_size = UInt32(MemoryLayout<hangar_accel_alloc_entry>.size)
            c.slot_name = cString(e.slotName)
            c.device_id = cString(e.deviceID)
            c.amount = e.amount
            (entries + i).initialize(to: c)
        }
        return entries
    }
    defer { entryArrays.forEach { $0.deallocate() } }
    let array = UnsafeMutablePointer<hangar_accel_allocation>.allocate(capacity: allocations.count)
    defer { array.deallocate() }
    for (i, allocation) in allocations.enumerated() {
        var c = hangar_accel_allocation()
        c.struct_size = UInt32(MemoryLayout<hangar_accel_allocation>.size)
        c.container_id = cString(allocation.containerID)
        c.entries = UnsafePointer(entryArrays[i])
        c.entry_count = allocation.entries.count
        c.entry_stride = MemoryLayout<hangar_accel_alloc_entry>.stride
        (array + i).initialize(to: c)
    }
    return try body(UnsafePointer(array), allocations.count)
}
