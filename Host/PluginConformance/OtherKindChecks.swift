import Foundation
import PluginAPI
import PluginHost

/// The storage, scheduler and agent-selector rules.
extension ConformanceSuite {
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
        let total: [Int64] = [8 * amountScale, 1 << 34]
        let empty = SchedulerInput(slots: Self.slots, total: total, free: total, sessions: [], owners: [])
        do {
            let none = try plugin.pickNext(empty)
            record("scheduler.empty_queue", none == nil, passed: "an empty queue gives HANGAR_E_NOTHING_TO_SCHEDULE",
                   failed: "pick_next on an empty queue returned HANGAR_OK with index \(String(describing: none)); it must return HANGAR_E_NOTHING_TO_SCHEDULE")
        } catch {
            record("scheduler.empty_queue", false, passed: "", failed: "pick_next on an empty queue: \(error)")
        }
        let owners = [SchedulingOwner(accessKey: "AKIAONE", occupied: [0, 0]), SchedulingOwner(accessKey: "AKIATWO", occupied: [2 * amountScale, 1 << 30])]
        let sessions = (0..<5).map { i in
            PendingSession(id: "s\(i)", ownerIndex: i % 2, createdAtMicros: 1_700_000_000_000_000 + Int64(i) * 1000, requested: [amountScale, 1 << 28])
        }
        let input = SchedulerInput(slots: Self.slots, total: total, free: [6 * amountScale, 1 << 33], sessions: sessions, owners: owners)
        let a = attempt("scheduler.pick", "pick_next over 5 sessions returns an index in range") { try plugin.pickNext(input) }
        let b = try? plugin.pickNext(input)
        if let a {
            record("scheduler.deterministic", a == b && a != nil, passed: "the same snapshot gives the same pick (\(a.map(String.init) ?? "none"))",
                   failed: "the same snapshot gave \(String(describing: a)) and then \(String(describing: b))")
        }
        // Priorities 5, 20, 10 in arrival order: the priority-20 session must run first.
        let ranked = zip([5, 20, 10] as [Int32], 0...).map { priority, i in
            PendingSession(id: "p\(i)", ownerIndex: 0, priority: priority, createdAtMicros: 1_700_000_000_000_000 + Int64(i) * 1000, requested: [amountScale, 1 << 28])
        }
        do {
            let pick = try plugin.pickNext(SchedulerInput(slots: Self.slots, total: total, free: total, sessions: ranked, owners: owners))
            record("scheduler.priority", pick == 1, passed: "of priorities 5, 20 and 10 the priority-20 session runs first",
                   failed: "of sessions with priorities 5, 20 and 10 it picked index \(pick.map(String.init) ?? "none") (priority \(pick.map { ranked[$0].priority } ?? 0))")
        } catch {
            record("scheduler.priority", false, passed: "", failed: "pick_next: \(error)")
        }
        // One priority, different ages, sizes and fair-share factors: a multifactor order.
        let mixed = zip([0.9, 0.2, 0.5, 0.7], 0...).map { fairshare, i in
            PendingSession(id: "m\(i)", ownerIndex: i % 2, createdAtMicros: 1_700_000_000_000_000 + Int64(i) * 600_000_000,
                           requested: [Int64(1 + i) * amountScale, 1 << 28], fairshare: fairshare)
        }
        checkExplain(plugin, inputs: [SchedulerInput(slots: Self.slots, total: total, free: total, sessions: mixed, owners: owners, now: 1_700_000_900_000_000),
                                      SchedulerInput(slots: Self.slots, total: total, free: total, sessions: ranked, owners: owners, now: 1_700_000_100_000_000)])
        let fns = SchedulerTable(library.functions).raw
        var index = 0
        let nullInput = (try? plugin.instance.withHandle("pick_next") { h in fns.pick_next!(h, nil, &index) }) ?? HANGAR_E_INTERNAL
        let nullOut = (try? plugin.instance.withHandle("pick_next") { h in fns.pick_next!(h, input.raw, nil) }) ?? HANGAR_E_INTERNAL
        record("scheduler.null_input", nullInput == HANGAR_E_INVALID_ARGUMENT && nullOut == HANGAR_E_INVALID_ARGUMENT,
               passed: "a NULL input or out_index gives HANGAR_E_INVALID_ARGUMENT",
               failed: "a NULL input gave \(PluginStatus(nullInput).name) and a NULL out_index \(PluginStatus(nullOut).name); both must give HANGAR_E_INVALID_ARGUMENT")
    }

    func checkExplain(_ plugin: SchedulerPlugin, inputs: [SchedulerInput]) {
        guard plugin.explains else { return notApplicable("scheduler.explain", "the scheduler has no explain (optional)") }
        do {
            for input in inputs {
                guard let pick = try plugin.pickNext(input) else { continue }
                let factors = try input.sessions.indices.map { try plugin.explain(input, index: $0)! }
                if let bad = factors.firstIndex(where: { f in [f.age, f.fairshare, f.priority, f.size].contains { !(0...1).contains($0) } }) {
                    return record("scheduler.explain", false, passed: "", failed: "explain of session \(bad) gave factors outside [0, 1]: \(factors[bad])")
                }
                let peers = input.sessions.indices.filter { input.sessions[$0].priority == input.sessions[pick].priority }
                if let better = peers.first(where: { factors[$0].total > factors[pick].total }) {
                    return record("scheduler.explain", false, passed: "",
                                  failed: "pick_next chose session \(pick) (total \(factors[pick].total)) but explain gives session \(better) of the same priority a higher total (\(factors[better].total))")
                }
            }
            let input = inputs[0]
            var out = hangar_sched_factors()
            out.struct_size = UInt32(MemoryLayout<hangar_sched_factors>.size)
            let fns = SchedulerTable(library.functions).raw
            let status = (try? plugin.instance.withHandle("explain") { h in fns.explain!(h, input.raw, input.sessions.count, &out) }) ?? HANGAR_E_INTERNAL
            record("scheduler.explain", status == HANGAR_E_INVALID_ARGUMENT, passed: "explain's factors are in [0, 1] and agree with pick_next; an index out of range is refused",
                   failed: "explain of index \(input.sessions.count) (out of range) gave \(PluginStatus(status).name), not HANGAR_E_INVALID_ARGUMENT")
        } catch {
            record("scheduler.explain", false, passed: "", failed: "explain: \(error)")
        }
    }

    func checkSelector() {
        guard let plugin = attempt("lifecycle.create", "create() of the instance the checks use", { try AgentSelectorPlugin(library: library, config: config) }) else { return }
        defer { plugin.instance.destroy() }
        let agents = [
            AgentCandidate(id: "agent-a", architecture: "x86_64", capacity: [4 * amountScale, 1 << 33], occupied: [3 * amountScale, 1 << 32]),
            AgentCandidate(id: "agent-b", architecture: "x86_64", capacity: [8 * amountScale, 1 << 34], occupied: [0, 0]),
            AgentCandidate(id: "agent-c", architecture: "aarch64", capacity: [64 * amountScale, 1 << 36], occupied: [0, 0]),
        ]
        /// Places `request`; the host turns an over-commit, a wrong architecture or a spread
        /// single-node session into a contract violation, which fails the check.
        func place(_ id: String, _ request: PlacementRequest, on candidates: [AgentCandidate] = agents, expect: (Placement) -> (Bool, String), passed: String) {
            do {
                let placement = try plugin.selectAgents(slots: Self.slots, request: request, candidates: candidates)
                let (ok, why) = expect(placement)
                record(id, ok, passed: passed, failed: why)
            } catch {
                record(id, false, passed: "", failed: "\(error)")
            }
        }
        let fits = PlacementRequest(sessionID: "s1", architecture: "x86_64", kernelRequests: [[2 * amountScale, 1 << 30]], singleNode: true)
        place("selector.place", fits, expect: { ($0 == .placed([1]), "a kernel only agent-b fits got \($0)") }, passed: "a kernel only agent-b fits is placed there")
        let tooBig = PlacementRequest(sessionID: "s2", architecture: "x86_64", kernelRequests: [[32 * amountScale, 1 << 30]], singleNode: true)
        place("selector.too_big", tooBig, expect: { placement in
            guard case .noAgent(let reason) = placement else { return (false, "a kernel no agent fits was placed: \(placement)") }
            return (reason != "no agent can host the session", "a kernel no agent fits gave HANGAR_E_NO_AGENT without a last_error reason")
        }, passed: "a kernel no agent fits gives HANGAR_E_NO_AGENT with a reason")
        let multi = PlacementRequest(sessionID: "s3", architecture: nil, kernelRequests: Array(repeating: [4 * amountScale, 1 << 30], count: 3), singleNode: false)
        place("selector.multi_kernel", multi, expect: { placement in
            if case .placed = placement { return (true, "") }
            return (false, "three kernels that fit agent-b and agent-c together were not placed: \(placement)")
        }, passed: "three kernels are placed without over-committing any agent")
        let armOnly = PlacementRequest(sessionID: "s4", architecture: "x86_64", kernelRequests: [[16 * amountScale, 1 << 30]], singleNode: true)
        place("selector.architecture", armOnly, expect: { placement in
            if case .noAgent = placement { return (true, "") }
            return (false, "an x86_64 kernel only the aarch64 agent has room for was placed: \(placement)")
        }, passed: "an x86_64 kernel is never placed on the aarch64 agent")
        let pair = [AgentCandidate(id: "agent-d", architecture: "x86_64", capacity: [8 * amountScale, 1 << 34], occupied: [0, 0]),
                    AgentCandidate(id: "agent-e", architecture: "x86_64", capacity: [8 * amountScale, 1 << 34], occupied: [0, 0])]
        let together = PlacementRequest(sessionID: "s5", architecture: nil, kernelRequests: Array(repeating: [3 * amountScale, 1 << 30], count: 2), singleNode: true)
        place("selector.single_node", together, on: pair, expect: { placement in
            guard case .placed(let where_) = placement else { return (false, "a single-node session that fits one agent was not placed: \(placement)") }
            return (Set(where_).count == 1, "a single-node session was spread over agents \(where_)")
        }, passed: "a single-node session's kernels share one agent")
        let overfull = [AgentCandidate(id: "agent-f", architecture: "x86_64", capacity: [8 * amountScale, 1 << 34], occupied: [9 * amountScale, 0])]
        let memoryOnly = PlacementRequest(sessionID: "s6", architecture: nil, kernelRequests: [[0, 1 << 30]], singleNode: true)
        place("selector.overcommitted_agent", memoryOnly, on: overfull, expect: { placement in
            if case .noAgent = placement { return (true, "") }
            return (false, "an agent already over its cpu capacity took a kernel: \(placement)")
        }, passed: "an agent already over its capacity takes nothing")
        let fns = SelectorTable(library.functions).raw
        var out = [Int](repeating: 0, count: 4)
        let status = (try? plugin.instance.withHandle("select_agents") { h in out.withUnsafeMutableBufferPointer { fns.select_agents!(h, nil, $0.baseAddress) } }) ?? HANGAR_E_INTERNAL
        let noKernels = PlacementRequest(sessionID: "s7", architecture: nil, kernelRequests: [], singleNode: true)
        var zeroStatus = "HANGAR_E_INVALID_ARGUMENT"
        do {
            let placement = try plugin.selectAgents(slots: Self.slots, request: noKernels, candidates: agents)
            zeroStatus = "\(placement)"
        } catch {
            if error.status?.rawValue != HANGAR_E_INVALID_ARGUMENT { zeroStatus = error.status?.name ?? error.code.description }
        }
        record("selector.null_input", status == HANGAR_E_INVALID_ARGUMENT && zeroStatus == "HANGAR_E_INVALID_ARGUMENT",
               passed: "a NULL input and kernel_count 0 give HANGAR_E_INVALID_ARGUMENT",
               failed: "a NULL input gave \(PluginStatus(status).name) and kernel_count 0 gave \(zeroStatus); both must give HANGAR_E_INVALID_ARGUMENT")
    }
}
