import Foundation
import PluginAPI
import PluginHost

/// The storage, scheduler and agent-selector rules.
extension ConformanceSuite {
    /// A check whose detail reads the same either way (it states what was observed).
    func record(_ id: String, _ ok: Bool, _ observed: String) {
        record(id, ok, passed: observed, failed: observed)
    }

    /// Expects `body` to be refused with a message (any status).
    func expectFailure(_ id: String, _ what: String, _ body: () throws -> Any) {
        expectRefusal(id, what, status: nil, body)
    }


    func checkStorage() {
        let fns = StorageTable(library.functions).raw
        checkStorageCapabilities(fns)
        guard let plugin = attempt("lifecycle.create", "create() of the instance the checks use", { try StoragePlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let id = "conformance" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        guard attempt("storage.create_folder", "create_folder(\(id))", { try plugin.createFolder(id) }) != nil else { return }
        if let path = try? plugin.folderPath(id) {
            var isDir: ObjCBool = false
            let ok = path.hasPrefix("/") && FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            record("storage.folder_path", ok, passed: "folder_path gives \(path)", failed: "folder_path gave '\(path)', which is not an absolute path of an existing directory")
            _ = FileManager.default.createFile(atPath: path + "/probe.bin", contents: Data(repeating: 7, count: 4096))
            if let usage = attempt("storage.get_usage", "get_usage", { try plugin.usage(of: id) }) {
                record("storage.get_usage", usage.usedBytes >= 4096, passed: "a 4096-byte file shows as \(usage.usedBytes) bytes used",
                       failed: "a folder holding a 4096-byte file reports \(usage.usedBytes) bytes used")
            }
            checkFolderPathBuffer(plugin, fns, id: id, path: path)
        } else {
            attempt("storage.folder_path", "folder_path") { try plugin.folderPath(id) }
        }
        expectRefusal("storage.create_folder.exists", "creating an existing folder", status: HANGAR_E_EXISTS) { try plugin.createFolder(id) }
        for bad in ["", "../etc", "a/b", "UPPER", String(repeating: "x", count: 65)] {
            expectRefusal("storage.invalid_id", "folder id '\(bad.prefix(20))'", status: HANGAR_E_INVALID_ARGUMENT) { try plugin.createFolder(bad) }
        }
        attempt("storage.volume_usage", "volume_usage") { try plugin.volumeUsage() }
        if fns.set_quota != nil && fns.get_quota != nil {
            do {
                try plugin.setQuota(of: id, bytes: 1 << 30)
                let got = try plugin.quota(of: id)
                record("storage.quota_roundtrip", got == 1 << 30, passed: "set_quota(1 GiB) then get_quota gives it back",
                       failed: "set_quota(1073741824) then get_quota gave \(got)")
            } catch {
                record("storage.quota_roundtrip", false, passed: "", failed: "set_quota/get_quota failed: \(error)")
            }
        } else {
            notApplicable("storage.quota_roundtrip", "quota functions not implemented")
        }
        if fns.clone_folder != nil {
            let target = id + "c"
            do {
                try plugin.cloneFolder(id, to: target)
                let copied = FileManager.default.fileExists(atPath: try plugin.folderPath(target) + "/probe.bin")
                record("storage.clone_folder", copied, passed: "clone_folder copies the folder's content", failed: "the clone lacks the source's file probe.bin")
                expectRefusal("storage.clone_folder", "cloning onto an existing folder", status: HANGAR_E_EXISTS) { try plugin.cloneFolder(id, to: target) }
                try? plugin.deleteFolder(target)
            } catch {
                record("storage.clone_folder", false, passed: "", failed: "clone_folder failed: \(error)")
            }
        } else {
            notApplicable("storage.clone_folder", "clone_folder not implemented")
        }
        if fns.get_performance != nil {
            if let metrics = attempt("storage.performance", "get_performance", { try plugin.performance() }) {
                let bad = metrics.filter { $0.key.isEmpty || $0.key.contains(".") }.map(\.key)
                record("storage.performance", bad.isEmpty, passed: "\(metrics.count) metric(s) with keys free of dots", failed: "metric keys empty or with dots: \(bad)")
            }
            checkStorageSinkStop(plugin, fns)
        } else {
            notApplicable("storage.performance", "get_performance not implemented")
            notApplicable("storage.sink_stop", "get_performance not implemented")
        }
        attempt("storage.delete_folder", "delete_folder removes the folder") { try plugin.deleteFolder(id) }
        expectRefusal("storage.delete_folder", "deleting a missing folder", status: HANGAR_E_NOT_FOUND) { try plugin.deleteFolder(id) }
    }

    func checkStorageCapabilities(_ fns: hangar_storage_functions) {
        let caps = library.descriptor.capabilities
        var problems: [String] = []
        let known = UInt64(HANGAR_STORAGE_CAP_QUOTA | HANGAR_STORAGE_CAP_FAST_CLONE | HANGAR_STORAGE_CAP_FAST_USAGE | HANGAR_STORAGE_CAP_METRICS)
        if caps & ~known != 0 { problems.append("unknown bits 0x\(String(caps & ~known, radix: 16))") }
        if caps & UInt64(HANGAR_STORAGE_CAP_QUOTA) != 0, fns.set_quota == nil || fns.get_quota == nil { problems.append("QUOTA without get_quota and set_quota") }
        if caps & UInt64(HANGAR_STORAGE_CAP_FAST_CLONE) != 0, fns.clone_folder == nil { problems.append("FAST_CLONE without clone_folder") }
        if caps & UInt64(HANGAR_STORAGE_CAP_METRICS) != 0, fns.get_performance == nil { problems.append("METRICS without get_performance") }
        record("storage.capabilities", problems.isEmpty, passed: "capability bits 0x\(String(caps, radix: 16)) match the function table",
               failed: problems.joined(separator: "; "))
    }

    /// folder_path with a short buffer: HANGAR_E_BUFFER_TOO_SMALL and the full length.
    func checkFolderPathBuffer(_ plugin: StoragePlugin, _ fns: hangar_storage_functions, id: String, path: String) {
        let result = try? plugin.instance.withHandle("folder_path") { h -> (hangar_status, Int) in
            var small = [CChar](repeating: 0, count: 4)
            var length = 0
            let status = small.withUnsafeMutableBufferPointer { fns.folder_path!(h, id, $0.baseAddress, $0.count, &length) }
            return (status, length)
        }
        let expected = path.utf8.count
        record("storage.folder_path_buffer", result?.0 == HANGAR_E_BUFFER_TOO_SMALL && result?.1 == expected,
               passed: "a 4-byte buffer gives HANGAR_E_BUFFER_TOO_SMALL and the length \(expected)",
               failed: "a 4-byte buffer gave \(result.map { PluginStatus($0.0).name } ?? "nothing") and length \(result?.1 ?? -1); expected HANGAR_E_BUFFER_TOO_SMALL and \(expected)")
    }

    func checkStorageSinkStop(_ plugin: StoragePlugin, _ fns: hangar_storage_functions) {
        let box = RawCollector<String>()
        box.refuseWith = HANGAR_E_BUSY
        let status = (try? plugin.instance.withHandle("get_performance") { h in box.with { fns.get_performance!(h, rawMetricSink, $0) } }) ?? HANGAR_E_INTERNAL
        if box.calls == 0 {
            notApplicable("storage.sink_stop", "get_performance reported nothing to refuse")
        } else {
            record("storage.sink_stop", status == HANGAR_E_BUSY && box.calls == 1, passed: "get_performance stops at a refusing sink and returns its status",
                   failed: "after its sink refused with HANGAR_E_BUSY, get_performance returned \(PluginStatus(status).name) having called the sink \(box.calls) time(s)")
        }
    }

    // MARK: scheduler and selector

    static let slots = SchedulingSlots(names: ["cpu", "mem"], types: [.count, .bytes])

    func checkScheduler() {
        guard let plugin = attempt("lifecycle.create", "create() of the instance the checks use", { try SchedulerPlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let empty = SchedulerInput(slots: Self.slots, total: [8 * amountScale, 1 << 34], free: [8 * amountScale, 1 << 34], sessions: [], owners: [])
        let none = attempt("scheduler.empty_queue", "pick_next on an empty queue returns HANGAR_E_NOTHING_TO_SCHEDULE") { try plugin.pickNext(empty) }
        if let none { record("scheduler.empty_queue", none == nil, "picked \(String(describing: none)) from an empty queue") }
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
        guard let plugin = attempt("lifecycle.create", "create() of the instance the checks use", { try AgentSelectorPlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let agents = [
            AgentCandidate(id: "agent-a", architecture: "x86_64", capacity: [4 * amountScale, 1 << 33], occupied: [3 * amountScale, 1 << 32]),
            AgentCandidate(id: "agent-b", architecture: "x86_64", capacity: [8 * amountScale, 1 << 34], occupied: [0, 0]),
            AgentCandidate(id: "agent-c", architecture: "aarch64", capacity: [64 * amountScale, 1 << 36], occupied: [0, 0]),
        ]
        let fits = PlacementRequest(sessionID: "s1", architecture: "x86_64", kernelRequests: [[2 * amountScale, 1 << 30]], singleNode: true)
        if let placement = attempt("selector.place", "a kernel that fits only agent-b is placed there", { try plugin.selectAgents(slots: Self.slots, request: fits, candidates: agents) }) {
            record("selector.place", placement == .placed([1]), "placement \(placement)")
        }
        let tooBig = PlacementRequest(sessionID: "s2", architecture: "x86_64", kernelRequests: [[32 * amountScale, 1 << 30]], singleNode: true)
        if let placement = attempt("selector.too_big", "a kernel larger than any x86_64 agent is not placed", { try plugin.selectAgents(slots: Self.slots, request: tooBig, candidates: agents) }) {
            if case .noAgent(let reason) = placement {
                record("selector.too_big", !reason.isEmpty && reason != "no agent can host the session", "reason: \(reason)")
            } else {
                record("selector.too_big", false, "placed: \(placement)")
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
