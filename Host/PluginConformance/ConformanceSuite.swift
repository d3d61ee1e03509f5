import Foundation
import PluginAPI
import PluginHost

/// One contract the suite checked.
public struct ConformanceCheck: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable { case pass, fail, notApplicable = "n/a" }
    /// Short id, e.g. `accelerator.container_edits.unknown_device`.
    public var id: String
    public var outcome: Outcome
    /// What was observed (why it failed, or what was checked).
    public var detail: String
}

/// The result of verifying one plugin.
public struct ConformanceReport: Sendable, Codable {
    public var plugin: String
    public var file: String
    public var kind: String
    public var checks: [ConformanceCheck]
    public var passed: Bool { !checks.contains { $0.outcome == .fail } }
}

/// The conformance suite a plugin author runs until their plugin passes: it creates an
/// instance, calls every function with valid and invalid input, and records each contract
/// of the ABI headers as pass or fail. The same suite runs over every bundled plugin in the
/// tests.
public struct ConformanceSuite {
    public let library: PluginLibrary
    public let config: ConfigValue
    /// Checks recorded so far (a reference, so checks can be recorded from inside closures).
    private final class Log { var checks: [ConformanceCheck] = [] }
    private let log = Log()
    private var checks: [ConformanceCheck] { log.checks }

    public init(library: PluginLibrary, config: ConfigValue) {
        self.library = library
        self.config = config
    }

    /// Runs every check for the plugin's kind.
    public static func run(library: PluginLibrary, config: ConfigValue = .emptyTable) -> ConformanceReport {
        let suite = ConformanceSuite(library: library, config: config)
        suite.runAll()
        return ConformanceReport(plugin: library.descriptor.name, file: library.path, kind: library.descriptor.kind.description, checks: suite.checks)
    }

    func record(_ id: String, _ ok: Bool, _ detail: String) {
        log.checks.append(ConformanceCheck(id: id, outcome: ok ? .pass : .fail, detail: detail))
    }

    func notApplicable(_ id: String, _ detail: String) {
        log.checks.append(ConformanceCheck(id: id, outcome: .notApplicable, detail: detail))
    }

    /// Runs `body`, recording a failure (with the error) if it throws.
    @discardableResult
    func attempt<T>(_ id: String, _ detail: String, _ body: () throws -> T) -> T? {
        do {
            let value = try body()
            record(id, true, detail)
            return value
        } catch {
            record(id, false, "\(error)")
            return nil
        }
    }

    func runAll() {
        let d = library.descriptor
        record("descriptor.abi", d.abiMajor == HostABI.major, "built for ABI \(d.abiMajor).\(d.abiMinor), host \(HostABI.major).\(HostABI.minor)")
        record("descriptor.metadata", !d.vendor.isEmpty && !d.version.isEmpty && !d.description.isEmpty && !d.license.isEmpty,
               "vendor '\(d.vendor)', version '\(d.version)', license '\(d.license)', description \(d.description.isEmpty ? "missing" : "present")")
        let first = library.entry(HostABI.packed)
        let second = library.entry(HostABI.packed)
        record("entry.idempotent", first != nil && first == second, "entry symbol returns the same static descriptor on every call")
        if let schema = d.configSchema {
            record("descriptor.config_schema", (try? ConfigSchema(json: schema)) != nil, "config schema parses as the supported JSON Schema subset")
        } else {
            notApplicable("descriptor.config_schema", "no config schema declared (any config accepted)")
        }
        checkLifecycle()
        switch d.kind {
        case .accelerator: checkAccelerator()
        case .storage: checkStorage()
        case .scheduler: checkScheduler()
        case .agentSelector: checkSelector()
        }
    }

    // MARK: lifecycle

    func checkLifecycle() {
        if let instance = attempt("lifecycle.create", "create() succeeds with the given config", { try PluginInstance(library: library, config: config) }) {
            let lifecycle = LifecycleFunctions(library: library)
            let length = try? instance.withHandle("last_error") { h in lifecycle.lastError(h, nil, 0) }
            record("lifecycle.last_error_null_buffer", length != nil, "last_error(instance, NULL, 0) returns a length without writing")
            instance.destroy()
            let again = try? PluginInstance(library: library, config: config)
            record("lifecycle.recreate", again != nil, "a second create() after destroy() succeeds")
            again?.destroy()
        }
        // Bypass the host's schema check to see the plugin's own handling of a mistyped key.
        if let (key, bad) = mistypedConfig() {
            do {
                let instance = try PluginInstance(library: library, config: bad, validatingSchema: false)
                instance.destroy()
                record("lifecycle.create_rejects_mistyped_config", false, "create() accepted \(bad.json) (key '\(key)' has the wrong type)")
            } catch {
                record("lifecycle.create_rejects_mistyped_config", error.code == .createFailed && !error.reason.isEmpty && error.reason != "the plugin gave no message",
                       "create() with a mistyped '\(key)' failed: \(error.reason)")
            }
        } else {
            notApplicable("lifecycle.create_rejects_mistyped_config", "the schema declares no scalar keys to mistype")
        }
    }

    /// The config with its first scalar-typed schema property replaced by an array.
    func mistypedConfig() -> (String, ConfigValue)? {
        guard let text = library.descriptor.configSchema, let schema = try? ConfigSchema(json: text) else { return nil }
        for (key, rules) in schema.root.properties where rules.types.contains(where: { ["string", "integer", "number", "boolean"].contains($0) })
            && !rules.types.contains("array") {
            guard case .table(var entries) = config else { return nil }
            entries.removeAll { $0.0 == key }
            entries.append((key, .array([.table([])])))
            return (key, .table(entries))
        }
        return nil
    }

    // MARK: accelerator

    func checkAccelerator() {
        guard let plugin = attempt("accelerator.create", "AcceleratorPlugin created; device key and slot prefixes valid", {
            try AcceleratorPlugin(library: library, config: config)
        }) else { return }
        defer { plugin.instance.destroy() }
        let key = plugin.info.deviceKey
        if library.descriptor.staticSlotNames != nil {
            record("accelerator.device_key", key == library.descriptor.name, "device key '\(key)' equals the plugin name")
        } else {
            record("accelerator.device_key", PluginNaming.isValidKey(key), "device key '\(key)' is valid")
        }
        let devices = attempt("accelerator.list_devices", "list_devices succeeds; ids unique and non-empty", { try plugin.devices() }) ?? []
        if devices.isEmpty {
            record("accelerator.no_device_reason", plugin.info.noDeviceReason?.isEmpty == false,
                   "with zero devices get_info says why: \(plugin.info.noDeviceReason ?? "(nothing)")")
        }
        let slots = attempt("accelerator.list_slots", "list_slots succeeds", { try plugin.slots() }) ?? []
        if let declared = library.descriptor.staticSlotNames {
            let undeclared = slots.map(\.name).filter { !declared.contains($0) }
            record("accelerator.slots_declared", undeclared.isEmpty, undeclared.isEmpty ? "every slot is in static_slot_names" : "slots not in static_slot_names: \(undeclared)")
        }
        let rows = attempt("accelerator.list_device_slots", "list_device_slots succeeds", { try plugin.deviceSlots() }) ?? []
        let ids = Set(devices.map(\.id))
        let slotNames = Set(slots.map(\.name))
        let strays = rows.filter { !ids.contains($0.deviceID) || !slotNames.contains($0.slotName) }
        record("accelerator.device_slots_known", strays.isEmpty,
               strays.isEmpty ? "every row names a listed device and slot" : "rows naming unknown devices or slots: \(strays.map { "\($0.slotName)@\($0.deviceID)" })")
        for slot in slots {
            let sum = rows.filter { $0.slotName == slot.name }.reduce(Int64(0)) { $0 + $1.capacity }
            record("accelerator.capacity_sum.\(slot.name)", sum == slot.capacity,
                   "slot capacity \(formatAmount(slot.capacity, type: slot.type)) equals the sum over devices \(formatAmount(sum, type: slot.type))")
        }
        // Valid allocation: the smallest allocatable amount of the first slot on the first device that has it.
        if let row = rows.first(where: { $0.capacity > 0 }), let slot = slots.first(where: { $0.name == row.slotName }) {
            let amount = slot.mode == .fractional && slot.quantum > 0 ? slot.quantum : (slot.type == .bytes ? row.capacity : amountScale)
            let allocation = Allocation(containerID: "conformance-0", entries: [AllocationEntry(slotName: slot.name, deviceID: row.deviceID, amount: amount)])
            let edits = attempt("accelerator.container_edits.valid", "container_edits for \(formatAmount(amount, type: slot.type)) of \(slot.name) on \(row.deviceID)", {
                try plugin.containerEdits(for: allocation)
            })
            if let edits {
                let again = try? plugin.containerEdits(for: allocation)
                record("accelerator.container_edits.repeatable", again == edits, "the same allocation gives the same edits twice")
            }
            expectFailure("accelerator.container_edits.unknown_device", "an allocation naming a device that does not exist is refused") {
                try plugin.containerEdits(for: Allocation(containerID: "conformance-1", entries: [AllocationEntry(slotName: slot.name, deviceID: "no-such-device-\u{1F6F8}", amount: amount)]))
            }
            expectFailure("accelerator.container_edits.unknown_slot", "an allocation naming a slot of another plugin is refused") {
                try plugin.containerEdits(for: Allocation(containerID: "conformance-2", entries: [AllocationEntry(slotName: "zz-other.device", deviceID: row.deviceID, amount: amount)]))
            }
            expectFailure("accelerator.container_edits.zero_amount", "a zero amount is refused") {
                try plugin.containerEdits(for: Allocation(containerID: "conformance-3", entries: [AllocationEntry(slotName: slot.name, deviceID: row.deviceID, amount: 0)]))
            }
            expectFailure("accelerator.container_edits.over_capacity", "more than the device's capacity is refused") {
                try plugin.containerEdits(for: Allocation(containerID: "conformance-4", entries: [AllocationEntry(slotName: slot.name, deviceID: row.deviceID, amount: row.capacity + amountScale)]))
            }
            attempt("accelerator.release.idempotent", "release() twice returns HANGAR_OK (or release is absent)") {
                try plugin.release(allocation)
                try plugin.release(allocation)
            }
            attempt("accelerator.container_measures", "gather_container_measures succeeds") { try plugin.containerMeasures([allocation]) }
        } else {
            notApplicable("accelerator.container_edits.valid", "no device has capacity, so no allocation can be built")
        }
        if let measures = attempt("accelerator.node_measures", "gather_node_measures succeeds", { try plugin.nodeMeasures() }) {
            let bad = measures.filter { $0.unit == .percent && !(0...100).contains($0.current) }
            record("accelerator.node_measures.range", bad.isEmpty, bad.isEmpty ? "\(measures.count) measures, percentages within 0-100" : "out of range: \(bad.map(\.key))")
        }
        checkSinkStop(plugin)
        checkNullArguments()
    }

    /// A sink that answers with an error must stop the listing and get that status back.
    func checkSinkStop(_ plugin: AcceleratorPlugin) {
        let fns = AcceleratorTable(library.functions).raw
        let status = try? plugin.instance.withHandle("list_slots") { h in fns.list_slots!(h, { _, _ in HANGAR_E_BUSY }, nil) }
        record("accelerator.sink_stop", status == HANGAR_E_BUSY || status == HANGAR_OK,
               "list_slots returns the sink's error status (got \(status.map { PluginStatus($0).name } ?? "nothing"))")
    }

    func checkNullArguments() {
        guard let instance = try? PluginInstance(library: library, config: config) else { return }
        defer { instance.destroy() }
        let fns = AcceleratorTable(library.functions).raw
        let status = try? instance.withHandle("container_edits") { h in fns.container_edits!(h, nil, nil) }
        record("accelerator.null_arguments", status == HANGAR_E_INVALID_ARGUMENT,
               "container_edits(instance, NULL, NULL) returns HANGAR_E_INVALID_ARGUMENT (got \(status.map { PluginStatus($0).name } ?? "nothing"))")
    }

    func expectFailure(_ id: String, _ detail: String, _ body: () throws -> Any) {
        do {
            _ = try body()
            record(id, false, "\(detail): the call succeeded")
        } catch let error as PluginError {
            let ok = error.code == .callFailed && error.reason != "the plugin gave no message"
            record(id, ok, ok ? "\(detail): \(error.status?.name ?? "") \(error.reason)" : "\(detail), but the plugin set no last_error message (\(error))")
        } catch {
            record(id, false, "\(error)")
        }
    }

    // MARK: storage

    func checkStorage() {
        guard let plugin = attempt("storage.create", "StoragePlugin created", { try StoragePlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let id = "conformance" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        guard attempt("storage.create_folder", "create_folder(\(id))", { try plugin.createFolder(id) }) != nil else { return }
        if let path = attempt("storage.folder_path", "folder_path returns an existing absolute directory", { try plugin.folderPath(id) }) {
            var isDir: ObjCBool = false
            record("storage.folder_path.exists", path.hasPrefix("/") && FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue, path)
            _ = FileManager.default.createFile(atPath: path + "/probe.bin", contents: Data(repeating: 7, count: 4096))
            if let usage = attempt("storage.get_usage", "get_usage succeeds", { try plugin.usage(of: id) }) {
                record("storage.get_usage.counts", usage.usedBytes >= 4096, "a 4096-byte file shows as \(usage.usedBytes) bytes used, \(usage.fileCount.map(String.init) ?? "uncounted") entries")
            }
        }
        expectFailure("storage.create_folder.exists", "creating an existing folder is refused") { try plugin.createFolder(id) }
        for bad in ["", "../etc", "a/b", "UPPER", String(repeating: "x", count: 65)] {
            expectFailure("storage.invalid_id.\(bad.isEmpty ? "empty" : String(bad.prefix(8)))", "folder id '\(bad.prefix(20))' is refused") { try plugin.createFolder(bad) }
        }
        attempt("storage.volume_usage", "volume_usage succeeds") { try plugin.volumeUsage() }
        let fns = StorageTable(library.functions).raw
        if fns.set_quota != nil && fns.get_quota != nil {
            attempt("storage.quota_roundtrip", "set_quota then get_quota returns the same value") {
                try plugin.setQuota(of: id, bytes: 1 << 30)
                guard try plugin.quota(of: id) == 1 << 30 else { throw PluginError(.contractViolation, reason: "get_quota returned another value") }
            }
        } else {
            notApplicable("storage.quota_roundtrip", "quota functions not implemented")
        }
        if fns.clone_folder != nil {
            let target = id + "c"
            attempt("storage.clone_folder", "clone_folder copies the folder") {
                try plugin.cloneFolder(id, to: target)
                guard FileManager.default.fileExists(atPath: try plugin.folderPath(target) + "/probe.bin") else {
                    throw PluginError(.contractViolation, reason: "the clone lacks the source's file")
                }
                try plugin.deleteFolder(target)
            }
        }
        attempt("storage.performance", "get_performance succeeds") { try plugin.performance() }
        attempt("storage.delete_folder", "delete_folder removes the folder") { try plugin.deleteFolder(id) }
        expectFailure("storage.delete_folder.missing", "deleting a missing folder is refused") { try plugin.deleteFolder(id) }
    }

    // MARK: scheduler and selector

    static let slots = SchedulingSlots(names: ["cpu", "mem"], types: [.count, .bytes])

    func checkScheduler() {
        guard let plugin = attempt("scheduler.create", "SchedulerPlugin created", { try SchedulerPlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let empty = SchedulerInput(slots: Self.slots, total: [8 * amountScale, 1 << 34], free: [8 * amountScale, 1 << 34], sessions: [], owners: [])
        let none = attempt("scheduler.empty_queue", "pick_next on an empty queue returns HANGAR_E_NOTHING_TO_SCHEDULE") { try plugin.pickNext(empty) }
        if let none { record("scheduler.empty_queue.none", none == nil, "picked \(String(describing: none)) from an empty queue") }
        let owners = [SchedulingOwner(accessKey: "AKIAONE", occupied: [0, 0]), SchedulingOwner(accessKey: "AKIATWO", occupied: [2 * amountScale, 1 << 30])]
        let sessions = (0..<5).map { i in
            PendingSession(id: "s\(i)", ownerIndex: i % 2, createdAtMicros: 1_700_000_000_000_000 + Int64(i) * 1000, requested: [amountScale, 1 << 28])
        }
        let input = SchedulerInput(slots: Self.slots, total: [8 * amountScale, 1 << 34], free: [6 * amountScale, 1 << 33], sessions: sessions, owners: owners)
        let a = attempt("scheduler.pick", "pick_next over 5 sessions returns an index in range") { try plugin.pickNext(input) }
        let b = try? plugin.pickNext(input)
        if let a { record("scheduler.deterministic", a == b && a != nil, "the same snapshot gives the same pick (\(String(describing: a)), \(String(describing: b)))") }
        let fns = SchedulerTable(library.functions).raw
        var index = 0
        let status = try? plugin.instance.withHandle("pick_next") { h in fns.pick_next!(h, nil, &index) }
        record("scheduler.null_input", status == HANGAR_E_INVALID_ARGUMENT, "pick_next(instance, NULL) returns HANGAR_E_INVALID_ARGUMENT (got \(status.map { PluginStatus($0).name } ?? "nothing"))")
    }

    func checkSelector() {
        guard let plugin = attempt("selector.create", "AgentSelectorPlugin created", { try AgentSelectorPlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let agents = [
            AgentCandidate(id: "agent-a", architecture: "x86_64", capacity: [4 * amountScale, 1 << 33], occupied: [3 * amountScale, 1 << 32]),
            AgentCandidate(id: "agent-b", architecture: "x86_64", capacity: [8 * amountScale, 1 << 34], occupied: [0, 0]),
            AgentCandidate(id: "agent-c", architecture: "aarch64", capacity: [64 * amountScale, 1 << 36], occupied: [0, 0]),
        ]
        let fits = PlacementRequest(sessionID: "s1", architecture: "x86_64", kernelRequests: [[2 * amountScale, 1 << 30]], singleNode: true)
        if let placement = attempt("selector.place", "a kernel that fits only agent-b is placed there", { try plugin.selectAgents(slots: Self.slots, request: fits, candidates: agents) }) {
            record("selector.place.choice", placement == .placed([1]), "placement \(placement)")
        }
        let tooBig = PlacementRequest(sessionID: "s2", architecture: "x86_64", kernelRequests: [[32 * amountScale, 1 << 30]], singleNode: true)
        if let placement = attempt("selector.too_big", "a kernel larger than any x86_64 agent is not placed", { try plugin.selectAgents(slots: Self.slots, request: tooBig, candidates: agents) }) {
            if case .noAgent(let reason) = placement {
                record("selector.too_big.reason", !reason.isEmpty && reason != "no agent can host the session", "reason: \(reason)")
            } else {
                record("selector.too_big.reason", false, "placed: \(placement)")
            }
        }
        let multi = PlacementRequest(sessionID: "s3", architecture: nil, kernelRequests: Array(repeating: [4 * amountScale, 1 << 30], count: 3), singleNode: false)
        attempt("selector.multi_kernel", "three kernels are placed without over-committing any agent (checked by the host)") {
            try plugin.selectAgents(slots: Self.slots, request: multi, candidates: agents)
        }
        let fns = SelectorTable(library.functions).raw
        var out = [Int](repeating: 0, count: 4)
        let status = try? plugin.instance.withHandle("select_agents") { h in out.withUnsafeMutableBufferPointer { fns.select_agents!(h, nil, $0.baseAddress) } }
        record("selector.null_input", status == HANGAR_E_INVALID_ARGUMENT, "select_agents(instance, NULL, out) returns HANGAR_E_INVALID_ARGUMENT (got \(status.map { PluginStatus($0).name } ?? "nothing"))")
    }
}
