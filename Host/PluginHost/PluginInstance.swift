import Foundation
import Logging
import PluginAPI
import Synchronization

/// What a plugin instance reaches through `hangar_host_services.host_context`.
final class HostServicesContext: @unchecked Sendable {
    let logger: Logger
    let config: ConfigValue
    let plugin: String

    init(plugin: String, config: ConfigValue, logger: Logger) {
        self.plugin = plugin
        self.config = config
        self.logger = logger
    }
}

/// One created plugin instance of any kind: the opaque handle, the host services it was
/// given, and the lock that enforces the descriptor's threading contract. The kind wrappers
/// (`AcceleratorPlugin`, `StoragePlugin`, ...) are built on it.
public final class PluginInstance: @unchecked Sendable {
    public let library: PluginLibrary
    /// The plugin key (descriptor name).
    public var name: String { library.descriptor.name }
    /// The configuration the instance was created with (host-only keys removed, schema defaults filled in).
    public let config: ConfigValue

    // The threading contract. Plugins that are not thread-safe get a mutex around every
    // call. Thread-safe plugins get an in-flight counter instead (uncontended atomics, far
    // cheaper than a read-write lock), so their calls run in parallel while destroy() still
    // waits for every call to return, as the ABI promises plugins. The fields live here
    // rather than in a lock object so the hot path touches one object and retains nothing.
    @usableFromInline let exclusive: Bool
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline let inFlight = Atomic<Int>(0)
    @usableFromInline let closing = Atomic<Bool>(false)
    /// Only written by init and destroy (which first waits out every call), so the dynamic
    /// exclusivity check Swift would put on every read is pure overhead on the hot path.
    @exclusivity(unchecked) @usableFromInline var handle: UnsafeMutableRawPointer?
    private let lifecycle: LifecycleFunctions
    private let services: UnsafeMutablePointer<hangar_host_services>
    private let context: Unmanaged<HostServicesContext>

    /// Fills in the schema's defaults, validates the result against the plugin's schema and
    /// calls its `create()`: a plugin never sees a config its schema does not allow (plugin.h).
    ///
    /// - Throws: `PluginError` `.invalidConfig` listing every schema violation,
    ///   `.createFailed` with the plugin's own message, or `.duplicateKey` when a
    ///   single-instance plugin already has an instance.
    public init(library: PluginLibrary, config given: ConfigValue = .emptyTable, logger: Logger? = nil) throws(PluginError) {
        let descriptor = library.descriptor
        guard case .table = given else {
            throw PluginError(.invalidConfig, plugin: descriptor.name, file: library.path, reason: "the plugin configuration must be a table (a TOML [section] or a JSON object), found \(given.typeName)")
        }
        var config = given
        if let schemaText = descriptor.configSchema {
            let schema = try ConfigSchema(json: schemaText)
            config = schema.applyingDefaults(to: given)
            let problems = schema.violations(of: config)
            if !problems.isEmpty {
                throw PluginError(.invalidConfig, plugin: descriptor.name, file: library.path, call: "config",
                                  reason: problems.joined(separator: "; ") + " (see `hangar-plugin inspect \(descriptor.name)` for the schema)")
            }
        }
        try library.acquireInstanceSlot()
        self.library = library
        self.config = config
        self.exclusive = !descriptor.isThreadSafe
        self.mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        self.lifecycle = LifecycleFunctions(library: library)
        let log = logger ?? Logger(label: "hangar.plugin.\(descriptor.name)")
        self.context = Unmanaged.passRetained(HostServicesContext(plugin: descriptor.name, config: config, logger: log))
        self.services = .allocate(capacity: 1)
        services.initialize(to: makeHostServices(context: context.toOpaque()))

        var out: UnsafeMutableRawPointer?
        var err = [CChar](repeating: 0, count: 2048)
        let status = config.json.withCString { json in
            err.withUnsafeMutableBufferPointer { buf in
                lifecycle.create(services, json, &out, buf.baseAddress, buf.count)
            }
        }
        guard status == HANGAR_OK, let out else {
            let message = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            releaseResources()
            if status == HANGAR_OK {
                throw PluginError(.contractViolation, plugin: descriptor.name, file: library.path, call: "create",
                                  reason: "create() returned HANGAR_OK but no instance")
            }
            throw PluginError(.createFailed, plugin: descriptor.name, file: library.path, call: "create",
                              status: PluginStatus(status), reason: message.isEmpty ? "the plugin gave no message" : message)
        }
        handle = out
    }

    deinit {
        destroy()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Enters a call; false once the instance is being destroyed.
    @inlinable @inline(__always) func lockCall() -> Bool {
        if exclusive {
            pthread_mutex_lock(mutex)
            return true
        }
        // Sequentially consistent here and in destroy() so that either the caller sees
        // `closing` or the destroyer sees the caller in flight.
        inFlight.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if _slowPath(closing.load(ordering: .sequentiallyConsistent)) {
            inFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            return false
        }
        return true
    }

    @inlinable @inline(__always) func unlockCall() {
        if exclusive { pthread_mutex_unlock(mutex) } else { inFlight.wrappingSubtract(1, ordering: .releasing) }
    }

    private func releaseResources() {
        services.deinitialize(count: 1)
        services.deallocate()
        context.release()
        library.releaseInstanceSlot()
    }

    /// Destroys the instance after every call in flight has returned. Idempotent.
    public func destroy() {
        pthread_mutex_lock(mutex)
        closing.store(true, ordering: .sequentiallyConsistent)
        while inFlight.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
        let h = handle
        handle = nil
        pthread_mutex_unlock(mutex)
        guard let h else { return }
        lifecycle.destroy(h)
        releaseResources()
    }

    /// Runs one ABI call under the instance's threading contract and turns a failing status
    /// into a `PluginError` that carries the instance's last error message.
    ///
    /// - Parameters:
    ///   - call: the ABI function's name, for error messages.
    ///   - body: makes the call with the instance handle and returns its status.
    @inlinable
    public func invoke(_ call: StaticString, _ body: (UnsafeMutableRawPointer) -> hangar_status) throws(PluginError) {
        guard lockCall() else { throw destroyedError(call) }
        guard let h = handle else {
            unlockCall()
            throw destroyedError(call)
        }
        let status = body(h)
        if _fastPath(status == HANGAR_OK) {
            unlockCall()
            return
        }
        let error = failure(call, status: status, handle: h)
        unlockCall()
        throw error
    }

    /// Like `invoke`, but `allowed` (a status with a meaning other than failure, such as
    /// HANGAR_E_NOTHING_TO_SCHEDULE) is returned instead of thrown.
    @inlinable
    public func invoke(_ call: StaticString, allowing allowed: hangar_status,
                       _ body: (UnsafeMutableRawPointer) -> hangar_status) throws(PluginError) -> hangar_status {
        guard lockCall() else { throw destroyedError(call) }
        guard let h = handle else {
            unlockCall()
            throw destroyedError(call)
        }
        let status = body(h)
        if _fastPath(status == HANGAR_OK || status == allowed) {
            unlockCall()
            return status
        }
        let error = failure(call, status: status, handle: h)
        unlockCall()
        throw error
    }

    /// Like `invoke`, for calls that return no status (or whose status the caller interprets).
    @inlinable
    public func withHandle<R>(_ call: StaticString, _ body: (UnsafeMutableRawPointer) -> R) throws(PluginError) -> R {
        guard lockCall() else { throw destroyedError(call) }
        defer { unlockCall() }
        guard let h = handle else { throw destroyedError(call) }
        return body(h)
    }

    @usableFromInline
    func destroyedError(_ call: StaticString) -> PluginError {
        PluginError(.destroyed, plugin: name, file: library.path, call: "\(call)", reason: "the instance was already destroyed")
    }

    /// Builds the error for a failed call; must run while the lock is held so the message
    /// belongs to this call.
    @usableFromInline
    func failure(_ call: StaticString, status: hangar_status, handle h: UnsafeMutableRawPointer) -> PluginError {
        var buf = [CChar](repeating: 0, count: 1024)
        let length = buf.withUnsafeMutableBufferPointer { lifecycle.lastError(h, $0.baseAddress, $0.count) }
        var message = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        if length >= buf.count { message += "…" }
        if status < 0 {
            return PluginError(.contractViolation, plugin: name, file: library.path, call: "\(call)", status: PluginStatus(status),
                               reason: "returned a negative status, which the ABI does not allow" + (message.isEmpty ? "" : " (\(message))"))
        }
        return PluginError(.callFailed, plugin: name, file: library.path, call: "\(call)", status: PluginStatus(status),
                           reason: message.isEmpty ? "the plugin gave no message" : message)
    }

    /// The instance's most recent error message (empty if none).
    public func lastError() -> String {
        (try? withHandle("last_error") { h in
            var buf = [CChar](repeating: 0, count: 1024)
            _ = buf.withUnsafeMutableBufferPointer { lifecycle.lastError(h, $0.baseAddress, $0.count) }
            return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }) ?? ""
    }
}

extension PluginLibrary {
    func acquireInstanceSlot() throws(PluginError) {
        let ok = instances.withLock { count in
            if descriptor.isSingleInstance && count > 0 { return false }
            count += 1
            return true
        }
        if !ok {
            throw PluginError(.duplicateKey, plugin: descriptor.name, file: path, call: "create",
                              reason: "the plugin allows one instance per process (HANGAR_THREAD_SINGLE_INSTANCE) and one exists already")
        }
    }

    func releaseInstanceSlot() {
        instances.withLock { $0 -= 1 }
    }
}

// MARK: - Host services (C callbacks)

// These are nonisolated top-level functions on purpose: plugins may call them from threads
// of their own, and a closure literal would silently inherit an actor's isolation.

private func context(_ raw: UnsafeMutableRawPointer?) -> HostServicesContext? {
    raw.map { Unmanaged<HostServicesContext>.fromOpaque($0).takeUnretainedValue() }
}

private func hostLog(_ raw: UnsafeMutableRawPointer?, _ level: Int32, _ message: UnsafePointer<CChar>?) {
    guard let ctx = context(raw), let message else { return }
    let text = String(cString: message)
    let swiftLevel: Logger.Level = switch level {
    case ...HANGAR_LOG_TRACE: .trace
    case HANGAR_LOG_DEBUG: .debug
    case HANGAR_LOG_INFO: .info
    case HANGAR_LOG_NOTICE: .notice
    case HANGAR_LOG_WARNING: .warning
    case HANGAR_LOG_ERROR: .error
    default: .critical
    }
    ctx.logger.log(level: swiftLevel, "\(text)", metadata: ["plugin": .string(ctx.plugin)])
}

private func hostMonotonicNanoseconds(_ raw: UnsafeMutableRawPointer?) -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

private func hostConfigString(_ raw: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ buf: UnsafeMutablePointer<CChar>?,
                              _ len: Int, _ outLen: UnsafeMutablePointer<Int>?) -> hangar_status {
    guard let ctx = context(raw), let path else { return HANGAR_E_INVALID_ARGUMENT }
    guard let value = ctx.config.lookup(String(cString: path)) else { return HANGAR_E_NOT_FOUND }
    let text: String
    switch value {
    case .string(let s): text = s
    case .integer(let i): text = String(i)
    case .double(let d): text = String(d)
    case .bool(let b): text = b ? "true" : "false"
    case .array, .table: return HANGAR_E_INVALID_ARGUMENT
    }
    return copyOut(text, buf, len, outLen)
}

private func hostConfigInt(_ raw: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int64>?) -> hangar_status {
    guard let ctx = context(raw), let path, let out else { return HANGAR_E_INVALID_ARGUMENT }
    guard let value = ctx.config.lookup(String(cString: path)) else { return HANGAR_E_NOT_FOUND }
    switch value {
    case .integer(let i): out.pointee = i
    case .double(let d) where d.rounded() == d && abs(d) < 9.2e18: out.pointee = Int64(d)
    case .string(let s):
        guard let n = ByteSize.parse(s) ?? Int64(s) else { return HANGAR_E_INVALID_ARGUMENT }
        out.pointee = n
    default: return HANGAR_E_INVALID_ARGUMENT
    }
    return HANGAR_OK
}

private func hostConfigDouble(_ raw: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Double>?) -> hangar_status {
    guard let ctx = context(raw), let path, let out else { return HANGAR_E_INVALID_ARGUMENT }
    guard let value = ctx.config.lookup(String(cString: path)) else { return HANGAR_E_NOT_FOUND }
    switch value {
    case .integer(let i): out.pointee = Double(i)
    case .double(let d): out.pointee = d
    case .string(let s):
        guard let d = Double(s) else { return HANGAR_E_INVALID_ARGUMENT }
        out.pointee = d
    default: return HANGAR_E_INVALID_ARGUMENT
    }
    return HANGAR_OK
}

private func hostConfigBool(_ raw: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int32>?) -> hangar_status {
    guard let ctx = context(raw), let path, let out else { return HANGAR_E_INVALID_ARGUMENT }
    guard let value = ctx.config.lookup(String(cString: path)) else { return HANGAR_E_NOT_FOUND }
    guard case .bool(let b) = value else { return HANGAR_E_INVALID_ARGUMENT }
    out.pointee = b ? 1 : 0
    return HANGAR_OK
}

private func hostConfigCount(_ raw: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?) -> Int64 {
    guard let ctx = context(raw), let path, let value = ctx.config.lookup(String(cString: path)) else { return -1 }
    switch value {
    case .array(let items): return Int64(items.count)
    case .table(let entries): return Int64(entries.count)
    default: return -1
    }
}

private func hostConfigKey(_ raw: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ index: Int64,
                           _ buf: UnsafeMutablePointer<CChar>?, _ len: Int, _ outLen: UnsafeMutablePointer<Int>?) -> hangar_status {
    guard let ctx = context(raw), let path else { return HANGAR_E_INVALID_ARGUMENT }
    guard case .table(let entries) = ctx.config.lookup(String(cString: path)), index >= 0, index < Int64(entries.count) else {
        return HANGAR_E_NOT_FOUND
    }
    return copyOut(entries[Int(index)].0, buf, len, outLen)
}

/// Copies `text` into a caller buffer with the ABI's BUFFER_TOO_SMALL protocol.
private func copyOut(_ text: String, _ buf: UnsafeMutablePointer<CChar>?, _ len: Int, _ outLen: UnsafeMutablePointer<Int>?) -> hangar_status {
    let bytes = Array(text.utf8)
    outLen?.pointee = bytes.count
    guard let buf, len > bytes.count else { return HANGAR_E_BUFFER_TOO_SMALL }
    bytes.withUnsafeBufferPointer { src in
        if let base = src.baseAddress { UnsafeMutableRawPointer(buf).copyMemory(from: base, byteCount: bytes.count) }
    }
    buf[bytes.count] = 0
    return HANGAR_OK
}

private func makeHostServices(context: UnsafeMutableRawPointer) -> hangar_host_services {
    var s = hangar_host_services()
    s.struct_size = UInt32(MemoryLayout<hangar_host_services>.size)
    s.abi_version = HostABI.packed
    s.host_context = context
    s.log = hostLog
    s.monotonic_ns = hostMonotonicNanoseconds
    s.config_string = hostConfigString
    s.config_int = hostConfigInt
    s.config_double = hostConfigDouble
    s.config_bool = hostConfigBool
    s.config_count = hostConfigCount
    s.config_key = hostConfigKey
    return s
}
