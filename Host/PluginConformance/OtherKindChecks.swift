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
        guard let plugin = attempt("storage.create", "StoragePlugin created", { try StoragePlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let id = "conformance" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        guard attempt("storage.create_folder", "create_folder(\(id))", { try plugin.createFolder(id) }) != nil else { return }
        if let path = attempt("storage.folder_path", "folder_path returns an existing absolute directory", { try plugin.folderPath(id) }) {
            var isDir: ObjCBool = false
            record("storage.folder_path", path.hasPrefix("/") && FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue, path)
            _ = FileManager.default.createFile(atPath: path + "/probe.bin", contents: Data(repeating: 7, count: 4096))
            if let usage = attempt("storage.get_usage", "get_usage succeeds", { try plugin.usage(of: id) }) {
                record("storage.get_usage", usage.usedBytes >= 4096, "a 4096-byte file shows as \(usage.usedBytes) bytes used, \(usage.fileCount.map(String.init) ?? "uncounted") entries")
            }
        }
        expectFailure("storage.create_folder.exists", "creating an existing folder is refused") { try plugin.createFolder(id) }
        for bad in ["", "../etc", "a/b", "UPPER", String(repeating: "x", count: 65)] {
            expectFailure("storage.invalid_id", "folder id '\(bad.prefix(20))' is refused") { try plugin.createFolder(bad) }
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
        expectFailure("storage.delete_folder", "deleting a missing folder is refused") { try plugin.deleteFolder(id) }
    }

    // MARK: scheduler and selector

    static let slots = SchedulingSlots(names: ["cpu", "mem"], types: [.count, .bytes])

    func checkScheduler() {
        guard let plugin = attempt("scheduler.create", "SchedulerPlugin created", { try SchedulerPlugin(library: library, config: config) }) else { return }
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
        guard let plugin = attempt("selector.create", "AgentSelectorPlugin created", { try AgentSelectorPlugin(library: library, config: config) }) else { return }
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
