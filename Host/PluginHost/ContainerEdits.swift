import PluginAPI

/// What a container needs to use an accelerator allocation, as data (in the spirit of CDI's
/// containerEdits). The agent merges the edits of every plugin into the engine's create request.
public struct ContainerEdits: Sendable, Codable, Equatable {
    /// A host device node exposed in the container.
    public struct DeviceNode: Sendable, Codable, Equatable {
        public var hostPath: String
        public var containerPath: String
        public var cgroupPermissions: String
    }
    /// A bind mount.
    public struct Mount: Sendable, Codable, Equatable {
        public var hostPath: String
        public var containerPath: String
        public var readOnly: Bool
    }
    /// An rlimit; -1 means unlimited.
    public struct Ulimit: Sendable, Codable, Equatable {
        public var name: String
        public var soft: Int64
        public var hard: Int64
        public init(name: String, soft: Int64, hard: Int64) {
            self.name = name
            self.soft = soft
            self.hard = hard
        }
        /// Parses "name=soft:hard" (podman's and Docker's --ulimit syntax; -1 is unlimited).
        public init?(_ text: String) {
            let parts = text.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { return nil }
            let values = parts[1].split(separator: ":", maxSplits: 1)
            guard let soft = Int64(values[0]), let hard = values.count == 2 ? Int64(values[1]) : soft, soft >= -1, hard >= -1 else { return nil }
            self.init(name: String(parts[0]), soft: soft, hard: hard)
        }
    }
    /// A name/value pair that keeps the order the plugin emitted it in.
    public struct Pair: Sendable, Codable, Equatable {
        public var name: String
        public var value: String
    }

    public var env: [Pair] = []
    public var deviceNodes: [DeviceNode] = []
    public var mounts: [Mount] = []
    public var cdiDevices: [String] = []
    public var preloadLibraries: [String] = []
    public var allowedSyscalls: [String] = []
    public var capabilities: [String] = []
    public var groups: [String] = []
    public var ulimits: [Ulimit] = []
    public var sysctls: [Pair] = []
    public var securityOptions: [String] = []
    public var hostIPC = false
    public var networks: [String] = []
    /// KEY=VALUE lines for the kernel's resource file.
    public var resourceData: [Pair] = []

    public init() {}

    /// The value of an environment variable (last write wins).
    public func envValue(_ name: String) -> String? { env.last(where: { $0.name == name })?.value }
}

/// Receives a plugin's edits through `hangar_container_edits`, checking each one.
final class ContainerEditsBuilder {
    var edits = ContainerEdits()
    /// The first edit the host refused, with the reason.
    var rejection: String?

    func refuse(_ message: String) -> hangar_status {
        if rejection == nil { rejection = message }
        return HANGAR_E_INVALID_ARGUMENT
    }

    static func from(_ raw: UnsafeMutableRawPointer?) -> ContainerEditsBuilder {
        Unmanaged<ContainerEditsBuilder>.fromOpaque(raw!).takeUnretainedValue()
    }
}

/// Checks that make a malformed edit fail at the plugin boundary instead of deep in the engine.
enum EditRules {
    static func isEnvName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return s.utf8.allSatisfy { $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || isAlnum($0) }
    }
    static func isAlnum(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }
    static func isAbsolutePath(_ s: String) -> Bool {
        s.hasPrefix("/") && !s.split(separator: "/").contains("..") && !s.utf8.contains(0)
    }
    /// `vendor.com/class=name` (CDI's fully qualified device name).
    static func isCDIName(_ s: String) -> Bool {
        guard let eq = s.firstIndex(of: "="), let slash = s[..<eq].firstIndex(of: "/") else { return false }
        let vendor = s[..<slash], cls = s[s.index(after: slash)..<eq], name = s[s.index(after: eq)...]
        return vendor.contains(".") && !cls.isEmpty && !name.isEmpty
            && s.utf8.allSatisfy { isAlnum($0) || "._-/=:".utf8.contains($0) }
    }
    static func isPermissions(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 3 && Set(s).count == s.count && s.allSatisfy { "rwm".contains($0) }
    }
    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { isAlnum($0) || "_-.:=/".utf8.contains($0) }
    }
}

private func str(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

private func editAddEnv(_ ctx: UnsafeMutableRawPointer?, _ name: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let name = str(name), EditRules.isEnvName(name) else { return b.refuse("add_env: invalid variable name '\(str(name) ?? "NULL")'") }
    guard let value = str(value) else { return b.refuse("add_env: value of \(name) is NULL") }
    b.edits.env.removeAll { $0.name == name }
    b.edits.env.append(.init(name: name, value: value))
    return HANGAR_OK
}

private func editAddDeviceNode(_ ctx: UnsafeMutableRawPointer?, _ host: UnsafePointer<CChar>?, _ container: UnsafePointer<CChar>?,
                               _ perms: UnsafePointer<CChar>?) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let host = str(host), EditRules.isAbsolutePath(host) else { return b.refuse("add_device_node: host path '\(str(host) ?? "NULL")' is not an absolute path") }
    let target = str(container) ?? host
    guard EditRules.isAbsolutePath(target) else { return b.refuse("add_device_node: container path '\(target)' is not an absolute path") }
    let permissions = str(perms) ?? "rwm"
    guard EditRules.isPermissions(permissions) else { return b.refuse("add_device_node: cgroup permissions '\(permissions)' must be a subset of 'rwm'") }
    if !b.edits.deviceNodes.contains(where: { $0.containerPath == target }) {
        b.edits.deviceNodes.append(.init(hostPath: host, containerPath: target, cgroupPermissions: permissions))
    }
    return HANGAR_OK
}

private func editAddMount(_ ctx: UnsafeMutableRawPointer?, _ host: UnsafePointer<CChar>?, _ container: UnsafePointer<CChar>?, _ ro: Int32) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let host = str(host), EditRules.isAbsolutePath(host) else { return b.refuse("add_mount: host path '\(str(host) ?? "NULL")' is not an absolute path") }
    guard let target = str(container), EditRules.isAbsolutePath(target) else { return b.refuse("add_mount: container path '\(str(container) ?? "NULL")' is not an absolute path") }
    b.edits.mounts.append(.init(hostPath: host, containerPath: target, readOnly: ro != 0))
    return HANGAR_OK
}

private func editAddCDIDevice(_ ctx: UnsafeMutableRawPointer?, _ name: UnsafePointer<CChar>?) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let name = str(name), EditRules.isCDIName(name) else { return b.refuse("add_cdi_device: '\(str(name) ?? "NULL")' is not a qualified CDI name like vendor.com/class=name") }
    if !b.edits.cdiDevices.contains(name) { b.edits.cdiDevices.append(name) }
    return HANGAR_OK
}

private func editAddPreload(_ ctx: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let path = str(path), EditRules.isAbsolutePath(path) else { return b.refuse("add_preload_library: '\(str(path) ?? "NULL")' is not an absolute path") }
    if !b.edits.preloadLibraries.contains(path) { b.edits.preloadLibraries.append(path) }
    return HANGAR_OK
}

/// Shared shape of the edits that append one validated token to a list.
private func appendToken(_ ctx: UnsafeMutableRawPointer?, _ value: UnsafePointer<CChar>?, call: String,
                         _ keyPath: WritableKeyPath<ContainerEdits, [String]>) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let value = str(value), EditRules.isToken(value) else { return b.refuse("\(call): invalid value '\(str(value) ?? "NULL")'") }
    if !b.edits[keyPath: keyPath].contains(value) { b.edits[keyPath: keyPath].append(value) }
    return HANGAR_OK
}

private func editAddSyscall(_ ctx: UnsafeMutableRawPointer?, _ v: UnsafePointer<CChar>?) -> hangar_status {
    appendToken(ctx, v, call: "add_allowed_syscall", \.allowedSyscalls)
}
private func editAddCapability(_ ctx: UnsafeMutableRawPointer?, _ v: UnsafePointer<CChar>?) -> hangar_status {
    appendToken(ctx, v, call: "add_capability", \.capabilities)
}
private func editAddGroup(_ ctx: UnsafeMutableRawPointer?, _ v: UnsafePointer<CChar>?) -> hangar_status {
    appendToken(ctx, v, call: "add_group", \.groups)
}
private func editAddSecurityOpt(_ ctx: UnsafeMutableRawPointer?, _ v: UnsafePointer<CChar>?) -> hangar_status {
    appendToken(ctx, v, call: "add_security_opt", \.securityOptions)
}
private func editAddNetwork(_ ctx: UnsafeMutableRawPointer?, _ v: UnsafePointer<CChar>?) -> hangar_status {
    appendToken(ctx, v, call: "add_network", \.networks)
}

private func editAddUlimit(_ ctx: UnsafeMutableRawPointer?, _ name: UnsafePointer<CChar>?, _ soft: Int64, _ hard: Int64) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let name = str(name), EditRules.isToken(name) else { return b.refuse("add_ulimit: invalid name '\(str(name) ?? "NULL")'") }
    guard soft >= -1, hard >= -1, hard == -1 || (soft != -1 && soft <= hard) else { return b.refuse("add_ulimit \(name): soft \(soft) must not exceed hard \(hard)") }
    b.edits.ulimits.removeAll { $0.name == name }
    b.edits.ulimits.append(.init(name: name, soft: soft, hard: hard))
    return HANGAR_OK
}

private func editAddSysctl(_ ctx: UnsafeMutableRawPointer?, _ name: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let name = str(name), EditRules.isToken(name), let value = str(value) else { return b.refuse("add_sysctl: invalid name or NULL value") }
    b.edits.sysctls.removeAll { $0.name == name }
    b.edits.sysctls.append(.init(name: name, value: value))
    return HANGAR_OK
}

private func editUseHostIPC(_ ctx: UnsafeMutableRawPointer?) -> hangar_status {
    ContainerEditsBuilder.from(ctx).edits.hostIPC = true
    return HANGAR_OK
}

private func editAddResourceData(_ ctx: UnsafeMutableRawPointer?, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?) -> hangar_status {
    let b = ContainerEditsBuilder.from(ctx)
    guard let key = str(key), EditRules.isEnvName(key) else { return b.refuse("add_resource_data: invalid key '\(str(key) ?? "NULL")'") }
    guard let value = str(value), !value.contains("\n") else { return b.refuse("add_resource_data \(key): value is NULL or spans lines") }
    b.edits.resourceData.removeAll { $0.name == key }
    b.edits.resourceData.append(.init(name: key, value: value))
    return HANGAR_OK
}

func makeEditsTable(context: UnsafeMutableRawPointer) -> hangar_container_edits {
    var t = hangar_container_edits()
    t.struct_size = UInt32(MemoryLayout<hangar_container_edits>.size)
    t.context = context
    t.add_env = editAddEnv
    t.add_device_node = editAddDeviceNode
    t.add_mount = editAddMount
    t.add_cdi_device = editAddCDIDevice
    t.add_preload_library = editAddPreload
    t.add_allowed_syscall = editAddSyscall
    t.add_capability = editAddCapability
    t.add_group = editAddGroup
    t.add_ulimit = editAddUlimit
    t.add_sysctl = editAddSysctl
    t.add_security_opt = editAddSecurityOpt
    t.use_host_ipc = editUseHostIPC
    t.add_network = editAddNetwork
    t.add_resource_data = editAddResourceData
    return t
}

extension ContainerEdits {
    /// One line per edit, in a fixed order (environment, device nodes, mounts, CDI devices,
    /// preloads, syscalls, capabilities, groups, ulimits, sysctls, security options, host IPC,
    /// networks, resource data), as `hangar-plugin edits` prints them and the conformance
    /// suite compares them.
    public var lines: [String] {
        var out: [String] = []
        out += env.map { "env \($0.name)=\($0.value)" }
        out += deviceNodes.map { "device \($0.hostPath)" + ($0.containerPath == $0.hostPath ? "" : " -> \($0.containerPath)") + " (\($0.cgroupPermissions))" }
        out += mounts.map { "mount \($0.hostPath) -> \($0.containerPath)" + ($0.readOnly ? " (read-only)" : "") }
        out += cdiDevices.map { "cdi \($0)" }
        out += preloadLibraries.map { "preload \($0)" }
        out += allowedSyscalls.map { "syscall \($0)" }
        out += capabilities.map { "capability \($0)" }
        out += groups.map { "group \($0)" }
        out += ulimits.map { "ulimit \($0.name) soft=\($0.soft) hard=\($0.hard)" }
        out += sysctls.map { "sysctl \($0.name)=\($0.value)" }
        out += securityOptions.map { "security-opt \($0)" }
        if hostIPC { out.append("ipc host") }
        out += networks.map { "network \($0)" }
        out += resourceData.map { "resource \($0.name)=\($0.value)" }
        return out
    }

    /// True when nothing was emitted.
    public var isEmpty: Bool { lines.isEmpty }
}
