import Foundation
import PluginAPI
import PluginHost

/// One contract the suite checked.
public struct ConformanceCheck: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable { case pass, fail, notApplicable = "n/a" }
    /// The check id, one of `ConformanceRules.all`, e.g. `accelerator.container_edits.unknown_device`.
    public var id: String
    public var outcome: Outcome
    /// What was observed: on a pass what was checked, on a failure what was wrong.
    public var detail: String
    /// The header rule the check enforces (`header: rule`).
    public var rule: String
}

/// The result of verifying one plugin.
public struct ConformanceReport: Sendable, Codable {
    public var plugin: String
    public var file: String
    public var kind: String
    public var checks: [ConformanceCheck]
    public var passed: Bool { !checks.contains { $0.outcome == .fail } }
    /// The checks that failed.
    public var failures: [ConformanceCheck] { checks.filter { $0.outcome == .fail } }
}

/// The conformance suite a plugin author runs until their plugin passes: it creates
/// instances, calls every function with valid and invalid input, and records each rule of the
/// ABI headers (`ConformanceRules`) that can be checked from outside as pass or fail. The
/// same suite runs over every bundled plugin in the tests, and over one broken fixture per
/// check.
public struct ConformanceSuite {
    public let library: PluginLibrary
    public let config: ConfigValue
    /// Checks recorded so far (a reference, so checks can be recorded from inside closures).
    final class Log { var checks: [ConformanceCheck] = [] }
    let log = Log()

    public init(library: PluginLibrary, config: ConfigValue) {
        self.library = library
        self.config = config
    }

    /// Runs every check for the plugin's kind.
    public static func run(library: PluginLibrary, config: ConfigValue = .emptyTable) -> ConformanceReport {
        let suite = ConformanceSuite(library: library, config: config)
        suite.runAll()
        return ConformanceReport(plugin: library.descriptor.name, file: library.path, kind: library.descriptor.kind.description,
                                 checks: suite.log.checks)
    }

    /// The report for a library the host refused to open: the refusal is the failure of the
    /// check whose rule it broke.
    public static func report(loadFailure error: PluginError, file: String) -> ConformanceReport {
        let id: String = switch error.code {
        case .missingEntrySymbol: "entry.exported"
        case .nullDescriptor: "entry.returns_descriptor"
        case .abiMismatch: "descriptor.abi"
        case .missingFunction: "descriptor.functions"
        case .badSlotName: "descriptor.static_slot_names"
        default: error.call.flatMap { ConformanceRules.rule($0) != nil ? $0 : nil } ?? "entry.exported"
        }
        let check = ConformanceCheck(id: id, outcome: .fail, detail: "the host refused to load the library: \(error.reason)",
                                     rule: ruleText(id))
        return ConformanceReport(plugin: error.plugin ?? "?", file: file, kind: "unknown", checks: [check])
    }

    static func ruleText(_ id: String) -> String {
        guard let rule = ConformanceRules.rule(id) else { return "" }
        return "\(rule.header): \(rule.rule)"
    }

    /// Records a check. `passed` says what was verified; `failed` what was wrong instead.
    func record(_ id: String, _ ok: Bool, passed: @autoclosure () -> String, failed: @autoclosure () -> String) {
        precondition(ConformanceRules.rule(id) != nil, "conformance check '\(id)' is not in ConformanceRules.all")
        log.checks.append(ConformanceCheck(id: id, outcome: ok ? .pass : .fail, detail: ok ? passed() : failed(), rule: Self.ruleText(id)))
    }

    func notApplicable(_ id: String, _ detail: String) {
        precondition(ConformanceRules.rule(id) != nil, "conformance check '\(id)' is not in ConformanceRules.all")
        log.checks.append(ConformanceCheck(id: id, outcome: .notApplicable, detail: detail, rule: Self.ruleText(id)))
    }

    /// Runs `body`, recording a pass, or a failure with the error if it throws.
    @discardableResult
    func attempt<T>(_ id: String, _ detail: String, _ body: () throws -> T) -> T? {
        do {
            let value = try body()
            record(id, true, passed: detail, failed: "")
            return value
        } catch {
            record(id, false, passed: "", failed: "\(detail): failed: \(error)")
            return nil
        }
    }

    /// Expects `body` to fail with `status` (nil: any status) and a last_error message.
    func expectRefusal(_ id: String, _ what: String, status: Int32?, _ body: () throws -> Any) {
        do {
            _ = try body()
            record(id, false, passed: "", failed: "\(what) was accepted; it must be refused" + (status.map { " with \(PluginStatus($0).name)" } ?? ""))
        } catch let error as PluginError {
            let got = error.status?.name ?? error.code.description
            if let status, error.status?.rawValue != status {
                record(id, false, passed: "", failed: "\(what) was refused with \(got); the header names \(PluginStatus(status).name) (\(error.reason))")
            } else {
                record(id, true, passed: "\(what) is refused with \(got): \(error.reason)", failed: "")
            }
        } catch {
            record(id, false, passed: "", failed: "\(what): \(error)")
        }
    }

    func runAll() {
        let d = library.descriptor
        record("descriptor.abi", d.abiMajor == HostABI.major, passed: "built for ABI \(d.abiMajor).\(d.abiMinor), host \(HostABI.major).\(HostABI.minor)",
               failed: "built for ABI \(d.abiMajor).\(d.abiMinor), but the host speaks \(HostABI.major).\(HostABI.minor)")
        let missing = [("vendor", d.vendor), ("version", d.version), ("description", d.description), ("license", d.license)].filter { $0.1.isEmpty }.map(\.0)
        record("descriptor.metadata", missing.isEmpty, passed: "vendor '\(d.vendor)', version '\(d.version)', license '\(d.license)', description set",
               failed: "descriptor fields left empty: \(missing.joined(separator: ", "))")
        let unknownThreadBits = d.threadSafety & ~UInt32(HANGAR_THREAD_SAFE | HANGAR_THREAD_SINGLE_INSTANCE)
        record("descriptor.thread_safety", unknownThreadBits == 0, passed: "thread_safety 0x\(String(d.threadSafety, radix: 16)) uses known flags only",
               failed: "thread_safety has unknown bits 0x\(String(unknownThreadBits, radix: 16))")
        let first = library.entry(HostABI.packed)
        let second = library.entry(HostABI.packed)
        record("entry.idempotent", first != nil && first == second, passed: "the entry symbol returns the same static descriptor on every call",
               failed: "two calls of the entry symbol returned different descriptors (\(String(describing: first)), \(String(describing: second)))")
        if let schema = d.configSchema {
            do {
                _ = try ConfigSchema(json: schema)
                record("descriptor.config_schema", true, passed: "config schema uses only the keywords the host enforces", failed: "")
            } catch {
                record("descriptor.config_schema", false, passed: "", failed: error.reason)
            }
        } else {
            notApplicable("descriptor.config_schema", "no config schema declared (any config accepted)")
        }
        guard checkLifecycle() else { return }
        switch d.kind {
        case .accelerator: checkAccelerator()
        case .storage: checkStorage()
        case .scheduler: checkScheduler()
        case .agentSelector: checkSelector()
        }
    }

    // MARK: lifecycle

    /// Creates, checks last_error's contract, destroys and re-creates; false when create() fails.
    func checkLifecycle() -> Bool {
        let instance: PluginInstance
        do {
            instance = try PluginInstance(library: library, config: config)
            record("lifecycle.create", true, passed: "create() succeeds with the given config", failed: "")
        } catch {
            let silent = error.reason == "the plugin gave no message"
            record("lifecycle.create", false, passed: "",
                   failed: silent ? "create() failed (\(error.status?.name ?? "?")) and wrote no message into err" : "create() failed: \(error.description)")
            return false
        }
        checkLastError(instance)
        if !library.descriptor.isSingleInstance {
            do {
                let second = try PluginInstance(library: library, config: config)
                second.destroy()
                record("lifecycle.two_instances", true, passed: "a second instance can be created while the first exists", failed: "")
            } catch {
                record("lifecycle.two_instances", false, passed: "", failed: "a second create() while the first instance exists failed: \(error.reason)")
            }
        } else {
            notApplicable("lifecycle.two_instances", "HANGAR_THREAD_SINGLE_INSTANCE is set")
        }
        instance.destroy()
        do {
            let again = try PluginInstance(library: library, config: config)
            again.destroy()
            record("lifecycle.recreate", true, passed: "a second create() after destroy() succeeds", failed: "")
        } catch {
            record("lifecycle.recreate", false, passed: "", failed: "create() after destroy() failed: \(error.reason)")
        }
        return true
    }

    /// last_error after a failing call: the full length with a short buffer, NUL-terminated,
    /// and (NULL, 0) accepted.
    func checkLastError(_ instance: PluginInstance) {
        let lifecycle = LifecycleFunctions(library: library)
        guard let failing = failingCall(instance) else {
            notApplicable("lifecycle.last_error", "no call of this kind can be made to fail from outside")
            return
        }
        let result = try? instance.withHandle("last_error") { h -> (Int, Int, [CChar], Int) in
            _ = failing(h)
            let full = lifecycle.lastError(h, nil, 0)
            var big = [CChar](repeating: 0x7f, count: 4096)
            let again = big.withUnsafeMutableBufferPointer { lifecycle.lastError(h, $0.baseAddress, $0.count) }
            var small = [CChar](repeating: 0x7f, count: 8)
            let short = small.withUnsafeMutableBufferPointer { lifecycle.lastError(h, $0.baseAddress, 4) }
            _ = big
            return (full, again, small, short)
        }
        guard let (full, again, small, short) = result else {
            record("lifecycle.last_error", false, passed: "", failed: "the instance could not be called")
            return
        }
        if full == 0 {
            record("lifecycle.last_error", false, passed: "", failed: "after a failing call, last_error(instance, NULL, 0) returned 0: no message")
        } else if again != full || short != full {
            record("lifecycle.last_error", false, passed: "",
                   failed: "last_error returned \(full) with (NULL, 0), \(again) with a large buffer and \(short) with a 4-byte buffer; it must return the full length every time")
        } else if small[3] != 0 || small[4] != 0x7f {
            record("lifecycle.last_error", false, passed: "", failed: "with a 4-byte buffer last_error did not write a NUL at byte 3 or wrote past the buffer")
        } else {
            record("lifecycle.last_error", true, passed: "a \(full)-byte message; (NULL, 0), large and 4-byte buffers give its full length, truncated and NUL-terminated", failed: "")
        }
    }

    /// A call that must fail on this kind, made with a raw handle.
    func failingCall(_ instance: PluginInstance) -> ((UnsafeMutableRawPointer) -> hangar_status)? {
        switch library.descriptor.kind {
        case .accelerator:
            let fns = AcceleratorTable(library.functions).raw
            return { h in fns.container_edits!(h, nil, nil) }
        case .storage:
            let fns = StorageTable(library.functions).raw
            return { h in fns.create_folder!(h, "../not a folder id", 0) }
        case .scheduler:
            let fns = SchedulerTable(library.functions).raw
            return { h in
                var index = 0
                return fns.pick_next!(h, nil, &index)
            }
        case .agentSelector:
            let fns = SelectorTable(library.functions).raw
            return { h in
                var out = [Int](repeating: 0, count: 1)
                return out.withUnsafeMutableBufferPointer { fns.select_agents!(h, nil, $0.baseAddress) }
            }
        }
    }
}
