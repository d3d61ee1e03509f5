import Foundation
import PluginAPI
import PluginHost

/// The accelerator rules of accelerator.h and plugin.h, each judged on its own.
extension ConformanceSuite {
    func checkAccelerator() {
        let fns = AcceleratorTable(library.functions).raw
        checkCapabilities(fns)
        let plugin: AcceleratorPlugin
        do {
            plugin = try AcceleratorPlugin(library: library, config: config, validating: false)
        } catch {
            record("accelerator.get_info", false, passed: "", failed: "get_info failed: \(error.reason)")
            return
        }
        defer { plugin.instance.destroy() }
        let key = plugin.info.deviceKey
        record("accelerator.get_info", PluginNaming.isValidKey(key), passed: "device key '\(key)'",
               failed: key.isEmpty ? "get_info left device_key NULL or empty" : "device key '\(key)' is not 1-63 lowercase letters, digits and '-' starting with a letter")
        if library.descriptor.staticSlotNames != nil {
            record("accelerator.device_key", key == library.descriptor.name, passed: "device key '\(key)' equals the plugin name",
                   failed: "device key '\(key)' differs from the plugin name '\(library.descriptor.name)', which static slot names require")
        } else {
            notApplicable("accelerator.device_key", "slot names depend on configuration (no static_slot_names)")
        }
        let devices = checkDevices(plugin, fns)
        let slots = checkSlots(plugin, fns, key: key)
        let rows = checkDeviceSlots(plugin, fns, devices: devices, slots: slots)
        checkSinkStops(plugin, fns, hasDevices: !devices.isEmpty, hasSlots: !slots.isEmpty, hasRows: !rows.isEmpty)
        checkEdits(plugin, fns, devices: devices, slots: slots, rows: rows)
        checkMeasures(plugin, fns, devices: devices, slots: slots, rows: rows)
    }

    // MARK: capabilities

    func checkCapabilities(_ fns: hangar_accelerator_functions) {
        let caps = library.descriptor.capabilities
        var problems: [String] = []
        let known = UInt64(HANGAR_ACCEL_CAP_FRACTIONAL | HANGAR_ACCEL_CAP_CDI | HANGAR_ACCEL_CAP_NODE_METRICS | HANGAR_ACCEL_CAP_CONTAINER_METRICS
            | HANGAR_ACCEL_CAP_HEALTH_WATCH | HANGAR_ACCEL_CAP_NEEDS_RELEASE | HANGAR_ACCEL_CAP_NEEDS_PREPARE)
        if caps & ~known != 0 { problems.append("unknown bits 0x\(String(caps & ~known, radix: 16))") }
        if caps & UInt64(HANGAR_ACCEL_CAP_NODE_METRICS) != 0, fns.gather_node_measures == nil { problems.append("NODE_METRICS without gather_node_measures") }
        if caps & UInt64(HANGAR_ACCEL_CAP_CONTAINER_METRICS) != 0, fns.gather_container_measures == nil { problems.append("CONTAINER_METRICS without gather_container_measures") }
        if caps & UInt64(HANGAR_ACCEL_CAP_NEEDS_RELEASE) != 0, fns.release == nil { problems.append("NEEDS_RELEASE without release") }
        let prepares = caps & UInt64(HANGAR_ACCEL_CAP_NEEDS_PREPARE) != 0
        if prepares != (fns.prepare != nil) { problems.append(prepares ? "NEEDS_PREPARE without prepare" : "prepare without NEEDS_PREPARE") }
        if fns.prepare != nil, fns.release == nil { problems.append("prepare without release (release frees what prepare made)") }
        record("accelerator.capabilities", problems.isEmpty, passed: "capability bits 0x\(String(caps, radix: 16)) match the function table",
               failed: problems.joined(separator: "; "))
    }

    // MARK: discovery

    func checkDevices(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions) -> [RawDevice] {
        let box = RawCollector<RawDevice>()
        let status = (try? plugin.instance.withHandle("list_devices") { h in box.with { fns.list_devices!(h, rawDeviceSink, $0) } }) ?? HANGAR_E_INTERNAL
        guard status == HANGAR_OK else {
            record("accelerator.list_devices", false, passed: "", failed: "list_devices returned \(PluginStatus(status).name): \(plugin.instance.lastError())")
            return []
        }
        let undersized = box.items.filter { Int($0.size) < ABI10Size.device }
        record("accelerator.list_devices", undersized.isEmpty, passed: "\(box.items.count) device(s)",
               failed: ABI10Size.problem(undersized.first?.size ?? 0, of: "hangar_accel_device", needs: ABI10Size.device, call: "list_devices") ?? "")
        let devices = box.items.filter { Int($0.size) >= ABI10Size.device }
        if devices.isEmpty {
            record("accelerator.no_device_reason", plugin.info.noDeviceReason?.isEmpty == false, passed: "no devices: \(plugin.info.noDeviceReason ?? "")",
                   failed: "the plugin reports no devices and get_info's no_device_reason is NULL or empty")
        } else {
            notApplicable("accelerator.no_device_reason", "the plugin reports devices")
        }
        let ids = devices.compactMap(\.id)
        let duplicates = Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        let empty = devices.filter { ($0.id ?? "").isEmpty }.count
        record("accelerator.device_ids", duplicates.isEmpty && empty == 0, passed: "ids \(ids.joined(separator: ", "))",
               failed: empty > 0 ? "\(empty) device(s) without a device_id" : "device ids reported more than once: \(duplicates.joined(separator: ", "))")
        let noModel = devices.filter { $0.model == nil }.map { $0.id ?? "?" }
        record("accelerator.device_model", noModel.isEmpty, passed: "every device has a model", failed: "devices without a model: \(noModel.joined(separator: ", "))")
        let badNUMA = devices.filter { $0.numaNode < -1 }.map { "\($0.id ?? "?") (\($0.numaNode))" }
        record("accelerator.device_numa", badNUMA.isEmpty, passed: "NUMA nodes \(devices.map { String($0.numaNode) }.joined(separator: ", "))",
               failed: "numa_node below -1 on: \(badNUMA.joined(separator: ", ")); use -1 for unknown")
        let badHealth = devices.filter { DeviceHealth(rawValue: $0.health) == nil }.map { "\($0.id ?? "?") (\($0.health))" }
        record("accelerator.device_health", badHealth.isEmpty, passed: "health values are HANGAR_HEALTH_*", failed: "health outside HANGAR_HEALTH_* on: \(badHealth.joined(separator: ", "))")
        let badAffinity = devices.filter { d in d.cpuAffinity.map { CPUList.parse($0) == nil } ?? false }.map { "\($0.id ?? "?") ('\($0.cpuAffinity!)')" }
        record("accelerator.device_cpu_affinity", badAffinity.isEmpty, passed: "cpu_affinity absent or a cpulist on every device",
               failed: "cpu_affinity is not a cpulist on: \(badAffinity.joined(separator: ", "))")
        let badExtra = devices.filter { d in d.extraInfoJSON.map { !isJSONObjectText($0) } ?? false }.map { $0.id ?? "?" }
        record("accelerator.device_extra_info", badExtra.isEmpty, passed: "extra_info_json absent or a JSON object on every device",
               failed: "extra_info_json is not a JSON object on: \(badExtra.joined(separator: ", "))")
        // A parent is another listed device that is not itself a partition (one level, no cycles).
        let parentOf = Dictionary(devices.compactMap { d in d.id.flatMap { id in d.parent.map { (id, $0) } } }, uniquingKeysWith: { a, _ in a })
        let badParent = devices.filter { d in
            guard let parent = d.parent else { return false }
            return parent == d.id || !ids.contains(parent) || parentOf[parent] != nil
        }.map { "\($0.id ?? "?") -> '\($0.parent!)'" }
        record("accelerator.device_parent", badParent.isEmpty, passed: "parent_device_id absent or naming another listed, whole device",
               failed: "parent_device_id names no other listed device, or a device that is itself a partition: \(badParent.joined(separator: ", "))")
        return devices
    }

    func checkSlots(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions, key: String) -> [RawSlot] {
        let box = RawCollector<RawSlot>()
        let status = (try? plugin.instance.withHandle("list_slots") { h in box.with { fns.list_slots!(h, rawSlotSink, $0) } }) ?? HANGAR_E_INTERNAL
        let malformed = box.items.filter { Int($0.size) < ABI10Size.slot || ($0.name ?? "").isEmpty || SlotType(rawValue: $0.type) == nil || AllocationMode(rawValue: $0.mode) == nil
            || $0.quantum < 0 || $0.capacity < 0 }.map { $0.name ?? "(no name)" }
        guard status == HANGAR_OK, malformed.isEmpty else {
            record("accelerator.list_slots", false, passed: "",
                   failed: status != HANGAR_OK ? "list_slots returned \(PluginStatus(status).name): \(plugin.instance.lastError())"
                       : "slots with no name, an unknown type or mode, or a negative quantum or capacity: \(malformed.joined(separator: ", "))")
            return box.items.filter { !malformed.contains($0.name ?? "(no name)") }
        }
        let slots = box.items
        record("accelerator.list_slots", true, passed: slots.map { "\($0.name!) (\(SlotType(rawValue: $0.type)!))" }.joined(separator: ", "), failed: "")
        let names = slots.map { $0.name! }
        let unprefixed = names.filter { !$0.hasPrefix(key + ".") }
        record("accelerator.slot_prefix", unprefixed.isEmpty, passed: "every slot starts with '\(key).'",
               failed: "slots not starting with '\(key).': \(unprefixed.joined(separator: ", "))")
        let twice = Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        record("accelerator.slot_names_unique", twice.isEmpty, passed: "each slot reported once", failed: "slots reported more than once: \(twice.joined(separator: ", "))")
        if let declared = library.descriptor.staticSlotNames {
            let undeclared = names.filter { !declared.contains($0) }
            record("accelerator.slots_declared", undeclared.isEmpty, passed: "every slot is in static_slot_names",
                   failed: "slots missing from static_slot_names: \(undeclared.joined(separator: ", "))")
        } else {
            notApplicable("accelerator.slots_declared", "no static_slot_names")
        }
        let zeroQuantum = slots.filter { $0.mode == HANGAR_ALLOC_FRACTIONAL && $0.quantum <= 0 }.map { $0.name! }
        record("accelerator.fractional_quantum", zeroQuantum.isEmpty, passed: "fractional slots have a positive quantum",
               failed: "fractional slots with quantum 0: \(zeroQuantum.joined(separator: ", "))")
        return slots
    }

    func checkDeviceSlots(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions, devices: [RawDevice], slots: [RawSlot]) -> [RawDeviceSlot] {
        let box = RawCollector<RawDeviceSlot>()
        let status = (try? plugin.instance.withHandle("list_device_slots") { h in box.with { fns.list_device_slots!(h, rawDeviceSlotSink, $0) } }) ?? HANGAR_E_INTERNAL
        let ids = Set(devices.compactMap(\.id)), names = Set(slots.compactMap(\.name))
        let strays = box.items.filter { !ids.contains($0.device ?? "") || !names.contains($0.slot ?? "") || $0.capacity < 0 }
        record("accelerator.list_device_slots", status == HANGAR_OK && strays.isEmpty, passed: "\(box.items.count) row(s), each naming a listed device and slot",
               failed: status != HANGAR_OK ? "list_device_slots returned \(PluginStatus(status).name): \(plugin.instance.lastError())"
                   : "rows naming unknown devices or slots, or with a negative capacity: \(strays.map { "\($0.slot ?? "?")@\($0.device ?? "?") (\($0.capacity))" }.joined(separator: ", "))")
        var mismatched: [String] = []
        for slot in slots {
            let type = SlotType(rawValue: slot.type) ?? .count
            let sum = box.items.filter { $0.slot == slot.name }.reduce(Int64(0)) { $0 &+ $1.capacity }
            if sum != slot.capacity {
                mismatched.append("slot \(slot.name!) reports capacity \(formatAmount(slot.capacity, type: type)), but its device rows add up to \(formatAmount(sum, type: type))")
            }
        }
        record("accelerator.capacity_sum", mismatched.isEmpty, passed: "every slot's capacity is the sum over its devices", failed: mismatched.joined(separator: "; "))
        return box.items
    }

    // MARK: sinks

    /// Every listing must stop at a sink's refusal and return that status.
    func checkSinkStops(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions, hasDevices: Bool, hasSlots: Bool, hasRows: Bool) {
        var problems: [String] = [], exercised: [String] = []
        func probe<T>(_ name: String, _ box: RawCollector<T>, _ call: (UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> hangar_status) {
            box.refuseWith = HANGAR_E_BUSY
            let status = (try? plugin.instance.withHandle("sink_stop") { h in box.with { call(h, $0) } }) ?? HANGAR_E_INTERNAL
            if box.calls == 0 { return }
            exercised.append(name)
            if status != HANGAR_E_BUSY { problems.append("\(name) returned \(PluginStatus(status).name) after its sink refused with HANGAR_E_BUSY") }
            if box.calls > 1 { problems.append("\(name) called its sink \(box.calls) times after the first refusal; it must stop") }
        }
        if hasDevices { probe("list_devices", RawCollector<RawDevice>()) { fns.list_devices!($0, rawDeviceSink, $1) } }
        if hasSlots { probe("list_slots", RawCollector<RawSlot>()) { fns.list_slots!($0, rawSlotSink, $1) } }
        if hasRows { probe("list_device_slots", RawCollector<RawDeviceSlot>()) { fns.list_device_slots!($0, rawDeviceSlotSink, $1) } }
        if let gather = fns.gather_node_measures { probe("gather_node_measures", RawCollector<RawMeasure>()) { gather($0, rawMeasureSink, $1) } }
        if let gather = fns.gather_container_measures, let allocation = smallestAllocation(plugin) {
            _ = try? plugin.prepare(allocation)
            probe("gather_container_measures", RawCollector<RawMeasure>()) { h, ctx in
                (try? withRawAllocations([allocation]) { array, count in gather(h, array, count, MemoryLayout<hangar_accel_allocation>.stride, rawMeasureSink, ctx) })
                    ?? HANGAR_E_INTERNAL
            }
            _ = try? plugin.release(allocation)
        }
        if exercised.isEmpty {
            notApplicable("accelerator.sink_stop", "no listing reported anything to refuse")
        } else {
            record("accelerator.sink_stop", problems.isEmpty, passed: "\(exercised.joined(separator: ", ")) stop at a refusing sink and return its status",
                   failed: problems.joined(separator: "; "))
        }
    }

    // MARK: container edits

    /// What a valid allocation looks like on this plugin: a row of a healthy device, and the
    /// smallest amount its slot allows.
    struct Candidate {
        var slot: String
        var type: SlotType
        var device: String
        var unit: Int64
        var capacity: Int64
        var discrete: Bool
        var quantum: Int64
    }

    func candidates(devices: [RawDevice], slots: [RawSlot], rows: [RawDeviceSlot]) -> [Candidate] {
        let order = devices.compactMap(\.id)
        return rows.compactMap { row -> Candidate? in
            guard row.capacity > 0, let name = row.slot, let device = row.device, let slot = slots.first(where: { $0.name == name }),
                  let type = SlotType(rawValue: slot.type),
                  let info = devices.first(where: { $0.id == device }), info.health != HANGAR_HEALTH_UNHEALTHY else { return nil }
            let fractional = slot.mode == HANGAR_ALLOC_FRACTIONAL && slot.quantum > 0
            let unit: Int64 = type == .unique ? row.capacity : fractional ? slot.quantum : type == .bytes ? row.capacity : amountScale
            guard unit <= row.capacity else { return nil }
            return Candidate(slot: name, type: type, device: device, unit: unit, capacity: row.capacity, discrete: !fractional && type == .count,
                             quantum: slot.quantum)
        }.sorted { (order.firstIndex(of: $0.device) ?? 0) < (order.firstIndex(of: $1.device) ?? 0) }
    }

    func smallestAllocation(_ plugin: AcceleratorPlugin) -> Allocation? {
        guard let devices = try? plugin.devices(), let slots = try? plugin.slots(), let rows = try? plugin.deviceSlots() else { return nil }
        let raw = devices.map { RawDevice(id: $0.id, model: $0.model, numaNode: $0.numaNode ?? -1, health: $0.health.rawValue) }
        let rawSlots = slots.map { RawSlot(name: $0.name, type: $0.type.rawValue, mode: $0.mode.rawValue, quantum: $0.quantum, capacity: $0.capacity) }
        let rawRows = rows.map { RawDeviceSlot(slot: $0.slotName, device: $0.deviceID, capacity: $0.capacity) }
        guard let c = candidates(devices: raw, slots: rawSlots, rows: rawRows).first else { return nil }
        return Allocation(containerID: "conformance-0", entries: [AllocationEntry(slotName: c.slot, deviceID: c.device, amount: c.unit)])
    }

    func checkEdits(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions, devices: [RawDevice], slots: [RawSlot], rows: [RawDeviceSlot]) {
        let edits = [
            "accelerator.container_edits.valid", "accelerator.container_edits.repeatable", "accelerator.container_edits.unknown_device",
            "accelerator.container_edits.unknown_slot", "accelerator.container_edits.zero_amount", "accelerator.container_edits.over_capacity",
            "accelerator.container_edits.duplicate_device", "accelerator.container_edits.error_message", "accelerator.container_edits.no_partial_edits",
            "accelerator.prepare.idempotent", "accelerator.prepare.refusals", "accelerator.release.idempotent",
        ]
        // NULL arguments and the empty allocation need no device.
        let status = (try? plugin.instance.withHandle("container_edits") { h in fns.container_edits!(h, nil, nil) }) ?? HANGAR_E_INTERNAL
        record("accelerator.container_edits.null_arguments", status == HANGAR_E_INVALID_ARGUMENT,
               passed: "container_edits(instance, NULL, NULL) returns HANGAR_E_INVALID_ARGUMENT",
               failed: "container_edits(instance, NULL, NULL) returned \(PluginStatus(status).name); the header names HANGAR_E_INVALID_ARGUMENT")
        let (emptyEdits, emptyError) = plugin.containerEditsOutcome(for: Allocation(containerID: "conformance-empty", entries: []))
        record("accelerator.container_edits.empty", emptyError == nil && emptyEdits.isEmpty, passed: "an allocation with no entries gets no edits",
               failed: emptyError.map { "an allocation with no entries was refused: \($0.reason)" } ?? "an allocation with no entries got edits: \(emptyEdits.lines.joined(separator: "; "))")

        let found = candidates(devices: devices, slots: slots, rows: rows)
        guard let c = found.first else {
            for id in edits + ["accelerator.container_edits.partial_amount", "accelerator.container_edits.order", "accelerator.container_edits.unhealthy_device"] {
                notApplicable(id, "no healthy device has capacity, so no valid allocation can be built")
            }
            return
        }
        func entry(_ device: String, _ amount: Int64, slot: String? = nil) -> AllocationEntry {
            AllocationEntry(slotName: slot ?? c.slot, deviceID: device, amount: amount)
        }
        let valid = Allocation(containerID: "conformance-0", entries: [entry(c.device, c.unit)])
        let amount = formatAmount(c.unit, type: c.type)
        let prepared = (try? plugin.prepare(valid)) != nil || fns.prepare == nil
        var silentRefusals: [String] = []
        var previousReason: String?
        /// Expects a refusal with `status`, noting refusals without a message of their own (none,
        /// or the previous refusal's text left in a buffer the plugin never set again).
        func refuse(_ id: String, _ what: String, _ status: Int32, _ allocation: Allocation, call: (Allocation) throws -> Any) {
            expectRefusal(id, what, status: status) {
                do { return try call(allocation) } catch let error as PluginError {
                    if error.reason == "the plugin gave no message" {
                        silentRefusals.append(what)
                    } else if error.reason == previousReason {
                        silentRefusals.append("\(what) (the previous refusal's message, left in place)")
                    }
                    previousReason = error.reason
                    throw error
                }
            }
        }
        let editsCall: (Allocation) throws -> Any = { try plugin.containerEdits(for: $0) }

        let first = plugin.containerEditsOutcome(for: valid)
        record("accelerator.container_edits.valid", first.error == nil && prepared,
               passed: "\(amount) of \(c.slot) on device \(c.device): \(first.edits.lines.count) edit(s)",
               failed: prepared ? "\(amount) of \(c.slot) on device \(c.device) was refused: \(first.error?.reason ?? "")"
                   : "prepare() refused \(amount) of \(c.slot) on device \(c.device)")
        if first.error == nil {
            let again = plugin.containerEditsOutcome(for: valid)
            let (a, b) = (first.edits.lines, again.edits.lines)
            let differing = zip(a, b).first { $0 != $1 }.map { "'\($0.0)' became '\($0.1)'" }
                ?? (a.count != b.count ? "\(a.count) edits became \(b.count) (first extra: '\((a.count > b.count ? a : b)[min(a.count, b.count)])')" : nil)
            record("accelerator.container_edits.repeatable", again.error == nil && differing == nil, passed: "the same allocation gives the same \(a.count) edit(s) twice",
                   failed: again.error.map { "the second call failed: \($0.reason)" } ?? "the second call gave other edits: \(differing!)")
        } else {
            notApplicable("accelerator.container_edits.repeatable", "the valid allocation was refused")
        }
        refuse("accelerator.container_edits.unknown_slot", "a slot of another plugin (zz-other.device)", HANGAR_E_INVALID_ARGUMENT,
               Allocation(containerID: "conformance-2", entries: [entry(c.device, c.unit, slot: "zz-other.device")]), call: editsCall)
        refuse("accelerator.container_edits.unknown_device", "a device that does not exist", HANGAR_E_NOT_FOUND,
               Allocation(containerID: "conformance-1", entries: [entry("no-such-device-\u{1F6F8}", c.unit)]), call: editsCall)
        refuse("accelerator.container_edits.zero_amount", "a zero amount", HANGAR_E_BAD_ALLOCATION,
               Allocation(containerID: "conformance-3", entries: [entry(c.device, 0)]), call: editsCall)
        refuse("accelerator.container_edits.zero_amount", "a negative amount", HANGAR_E_BAD_ALLOCATION,
               Allocation(containerID: "conformance-3", entries: [entry(c.device, -c.unit)]), call: editsCall)
        if c.discrete || (c.quantum >= 2 && c.type != .unique) {
            let part = c.discrete ? amountScale / 2 : c.quantum / 2
            refuse("accelerator.container_edits.partial_amount", "\(formatAmount(part, type: c.type)) of \(c.slot) (not a whole step)", HANGAR_E_BAD_ALLOCATION,
                   Allocation(containerID: "conformance-5", entries: [entry(c.device, part)]), call: editsCall)
        } else {
            notApplicable("accelerator.container_edits.partial_amount", "\(c.slot) has no step to miss")
        }
        refuse("accelerator.container_edits.over_capacity", "more than the device's capacity", HANGAR_E_BAD_ALLOCATION,
               Allocation(containerID: "conformance-4", entries: [entry(c.device, c.capacity + c.unit)]), call: editsCall)
        refuse("accelerator.container_edits.duplicate_device", "device \(c.device) named in two entries", HANGAR_E_BAD_ALLOCATION,
               Allocation(containerID: "conformance-6", entries: [entry(c.device, c.unit), entry(c.device, c.unit)]), call: editsCall)
        if let sick = devices.first(where: { $0.health == HANGAR_HEALTH_UNHEALTHY })?.id {
            refuse("accelerator.container_edits.unhealthy_device", "unhealthy device \(sick)", HANGAR_E_DEVICE_LOST,
                   Allocation(containerID: "conformance-7", entries: [entry(sick, c.unit)]), call: editsCall)
        } else {
            notApplicable("accelerator.container_edits.unhealthy_device", "no device is unhealthy; verify again on a host (or fake tree) with an unhealthy one")
        }
        record("accelerator.container_edits.error_message", silentRefusals.isEmpty, passed: "every refusal set last_error",
               failed: "refused without a last_error message: \(silentRefusals.joined(separator: "; "))")
        let mixed = plugin.containerEditsOutcome(for: Allocation(containerID: "conformance-8", entries: [entry(c.device, c.unit), entry("no-such-device", c.unit)]))
        record("accelerator.container_edits.no_partial_edits", mixed.error != nil && mixed.edits.isEmpty,
               passed: "an allocation whose second entry is refused leaves no edits",
               failed: mixed.error == nil ? "an allocation naming an unknown device was accepted"
                   : "the refused allocation still emitted: \(mixed.edits.lines.joined(separator: "; "))")
        checkOrder(plugin, found)
        checkPrepareAndRelease(plugin, fns, valid: valid, unhealthyDevice: devices.first(where: { $0.health == HANGAR_HEALTH_UNHEALTHY })?.id,
                               refuse: refuse)
    }

    /// Local indices follow list_devices: reversed entries give the same edits.
    func checkOrder(_ plugin: AcceleratorPlugin, _ found: [Candidate]) {
        var picked: [Candidate] = []
        for c in found where c.slot == found[0].slot && !picked.contains(where: { $0.device == c.device }) { picked.append(c) }
        guard picked.count >= 2 else {
            notApplicable("accelerator.container_edits.order", "fewer than two healthy devices share a slot")
            return
        }
        let forward = picked.map { AllocationEntry(slotName: $0.slot, deviceID: $0.device, amount: $0.unit) }
        let allocation = Allocation(containerID: "conformance-9", entries: forward)
        let reversed = Allocation(containerID: "conformance-9", entries: forward.reversed())
        _ = try? plugin.prepare(allocation)
        let a = plugin.containerEditsOutcome(for: allocation), b = plugin.containerEditsOutcome(for: reversed)
        _ = try? plugin.release(allocation)
        let same = a.error == nil && b.error == nil && a.edits.lines == b.edits.lines
        let first = zip(a.edits.lines, b.edits.lines).first { $0 != $1 }
        record("accelerator.container_edits.order", same, passed: "devices \(picked.map(\.device).joined(separator: ", ")) in either entry order give the same edits",
               failed: a.error ?? b.error != nil ? "an allocation of \(picked.count) devices was refused: \((a.error ?? b.error)!.reason)"
                   : "reversing the entries changed the edits: '\(first?.0 ?? "")' became '\(first?.1 ?? "")'")
    }

    func checkPrepareAndRelease(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions, valid: Allocation, unhealthyDevice: String?,
                                refuse: (String, String, Int32, Allocation, (Allocation) throws -> Any) -> Void) {
        if fns.prepare != nil {
            do {
                try plugin.prepare(valid)
                try plugin.prepare(valid)
                _ = try plugin.containerEdits(for: valid)
                record("accelerator.prepare.idempotent", true, passed: "prepare() twice, then container_edits, succeed", failed: "")
            } catch {
                record("accelerator.prepare.idempotent", false, passed: "", failed: "prepare() of an allocation twice, then container_edits: \(error.reason)")
            }
            let slot = valid.entries[0].slotName, device = valid.entries[0].deviceID, amount = valid.entries[0].amount
            let unknown = Allocation(containerID: "conformance-p", entries: [AllocationEntry(slotName: slot, deviceID: "no-such-device", amount: amount)])
            refuse("accelerator.prepare.refusals", "prepare() of a device that does not exist", HANGAR_E_NOT_FOUND, unknown) { try plugin.prepare($0) }
            let zero = Allocation(containerID: "conformance-p0", entries: [AllocationEntry(slotName: slot, deviceID: device, amount: 0)])
            refuse("accelerator.prepare.refusals", "prepare() of a zero amount", HANGAR_E_BAD_ALLOCATION, zero) { try plugin.prepare($0) }
            let foreign = Allocation(containerID: "conformance-pf", entries: [AllocationEntry(slotName: "zz-other.device", deviceID: device, amount: amount)])
            refuse("accelerator.prepare.refusals", "prepare() of another plugin's slot", HANGAR_E_INVALID_ARGUMENT, foreign) { try plugin.prepare($0) }
            if let sick = unhealthyDevice {
                let lost = Allocation(containerID: "conformance-pu", entries: [AllocationEntry(slotName: slot, deviceID: sick, amount: amount)])
                refuse("accelerator.prepare.refusals", "prepare() of unhealthy device \(sick)", HANGAR_E_DEVICE_LOST, lost) { try plugin.prepare($0) }
            }
        } else {
            notApplicable("accelerator.prepare.idempotent", "the plugin has no prepare()")
            notApplicable("accelerator.prepare.refusals", "the plugin has no prepare()")
        }
        if fns.release != nil {
            attempt("accelerator.release.idempotent", "release() twice, and release() of an allocation never seen, return HANGAR_OK") {
                try plugin.release(valid)
                try plugin.release(valid)
                try plugin.release(Allocation(containerID: "conformance-never-seen", entries: valid.entries))
            }
        } else {
            notApplicable("accelerator.release.idempotent", "the plugin has no release()")
        }
    }

    // MARK: measures

    func checkMeasures(_ plugin: AcceleratorPlugin, _ fns: hangar_accelerator_functions, devices: [RawDevice], slots: [RawSlot], rows: [RawDeviceSlot]) {
        var gathered: [RawMeasure] = []
        var counters: [String: Double] = [:]
        let ids = Set(devices.compactMap(\.id))
        func gatherNode() -> (hangar_status, [RawMeasure]) {
            let box = RawCollector<RawMeasure>()
            let status = (try? plugin.instance.withHandle("gather_node_measures") { h in box.with { fns.gather_node_measures!(h, rawMeasureSink, $0) } }) ?? HANGAR_E_INTERNAL
            return (status, box.items)
        }
        if fns.gather_node_measures != nil {
            let (status, items) = gatherNode()
            let malformed = items.filter { ($0.key ?? "").isEmpty || $0.key!.contains(".") || Measurement.Unit(rawValue: $0.unit) == nil || Measurement.Kind(rawValue: $0.kind) == nil }
            record("accelerator.node_measures", status == HANGAR_OK && malformed.isEmpty, passed: "\(items.count) measure(s)",
                   failed: status != HANGAR_OK ? "gather_node_measures returned \(PluginStatus(status).name): \(plugin.instance.lastError())"
                       : "measures with no key, a key with a dot, or an unknown unit or kind: \(malformed.map { "\($0.key ?? "(no key)") unit \($0.unit) kind \($0.kind)" }.joined(separator: ", "))")
            gathered += items
            for m in items where m.kind == HANGAR_MEASURE_COUNTER { counters["\(m.key ?? "")@\(m.device ?? "")"] = m.current }
            let unique = Dictionary(grouping: items, by: { "\($0.key ?? "")@\($0.device ?? "")" }).filter { $0.value.count > 1 }.keys.sorted()
            record("accelerator.measures.unique", unique.isEmpty, passed: "each key reported once per device", failed: "reported more than once in one call: \(unique.joined(separator: ", "))")
            if counters.isEmpty {
                notApplicable("accelerator.measures.counter_monotonic", "no counters reported")
            } else {
                let (_, later) = gatherNode()
                let fell = later.filter { $0.kind == HANGAR_MEASURE_COUNTER }.compactMap { m -> String? in
                    let k = "\(m.key ?? "")@\(m.device ?? "")"
                    guard let before = counters[k], m.current < before else { return nil }
                    return "\(k) went from \(before) to \(m.current)"
                }
                record("accelerator.measures.counter_monotonic", fell.isEmpty, passed: "\(counters.count) counter(s) did not decrease between two calls",
                       failed: "counters decreased: \(fell.joined(separator: ", "))")
            }
        } else {
            notApplicable("accelerator.node_measures", "the plugin has no gather_node_measures")
            notApplicable("accelerator.measures.unique", "the plugin has no gather_node_measures")
            notApplicable("accelerator.measures.counter_monotonic", "the plugin has no gather_node_measures")
        }
        if let gather = fns.gather_container_measures, let allocation = smallestAllocation(plugin) {
            _ = try? plugin.prepare(allocation)
            let box = RawCollector<RawMeasure>()
            let status = (try? plugin.instance.withHandle("gather_container_measures") { h in
                box.with { ctx in
                    (try? withRawAllocations([allocation]) { array, count in gather(h, array, count, MemoryLayout<hangar_accel_allocation>.stride, rawMeasureSink, ctx) })
                        ?? HANGAR_E_INTERNAL
                }
            }) ?? HANGAR_E_INTERNAL
            _ = try? plugin.release(allocation)
            let stray = box.items.filter { $0.container != allocation.containerID }
            record("accelerator.container_measures", status == HANGAR_OK && stray.isEmpty, passed: "\(box.items.count) measure(s), each for container \(allocation.containerID)",
                   failed: status != HANGAR_OK ? "gather_container_measures returned \(PluginStatus(status).name): \(plugin.instance.lastError())"
                       : "measures without the container's id: \(stray.map { "\($0.key ?? "?") (container_id \($0.container ?? "NULL"))" }.joined(separator: ", "))")
            gathered += box.items
        } else {
            notApplicable("accelerator.container_measures", fns.gather_container_measures == nil ? "the plugin has no gather_container_measures" : "no valid allocation can be built")
        }
        if gathered.isEmpty {
            notApplicable("accelerator.measures.percent_range", "no measures reported")
            notApplicable("accelerator.measures.device_known", "no measures reported")
            return
        }
        let outOfRange = gathered.filter { $0.unit == HANGAR_UNIT_PERCENT && !(0...100).contains($0.current) }.map { "\($0.key ?? "?")=\($0.current)" }
        record("accelerator.measures.percent_range", outOfRange.isEmpty, passed: "percentages within 0-100", failed: "percentages out of range: \(outOfRange.joined(separator: ", "))")
        let unknown = gathered.filter { $0.device.map { !ids.contains($0) } ?? false }.map { "\($0.key ?? "?")@\($0.device!)" }
        record("accelerator.measures.device_known", unknown.isEmpty, passed: "measures name listed devices", failed: "measures naming unknown devices: \(unknown.joined(separator: ", "))")
    }
}

/// True if `text` parses as a JSON object.
func isJSONObjectText(_ text: String) -> Bool {
    guard let data = text.data(using: .utf8) else { return false }
    return (try? JSONSerialization.jsonObject(with: data)) is [String: Any]
}
