import ClusterProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Cluster sessions' own networks on this host, built with the kernel's bridge and VXLAN
/// through iproute2 (`ip`, `bridge`; the agent runs as root):
/// - a Linux bridge per session (named by the manager, `hgb<cluster tag><index>`) with no
///   address, so the host routes nothing into it and only the session's kernels are on it;
/// - for a multi-node session, a VXLAN port on the bridge (`hgx…`, id `vni`, UDP 4789)
///   that floods to the session's other agents, which makes one L2 segment across hosts;
/// - a veth per kernel, its inner end `eth1` in the kernel's network namespace with the
///   kernel's address. The kernels' /etc/hosts (written by the engine) name every kernel.
/// The bridge and its VXLAN port go when the session's last kernel on this host goes.
enum SessionNetworks {
    /// Why a network could not be built: the command and what it printed.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The host end of a kernel's veth (interface names have at most 15 characters).
    static func hostVethName(_ kernelID: String) -> String { "hgk" + String(kernelID.filter { $0.isLetter || $0.isNumber }.prefix(12)) }
    /// Asked of `ip`, not /sys: sysfs shows the network namespace it was mounted in, which is
    /// not the agent's on a host simulated with a namespace of its own.
    static func exists(_ interface: String) -> Bool { (try? run(["ip", "link", "show", "dev", interface])) != nil }

    /// Joins the kernel whose first process is `pid` to its session's network on this host.
    /// `localAddress` is this host's address as the other agents reach it (the VXLAN's source);
    /// peers with that same address share this host's bridge and need no tunnel.
    static func attach(_ network: KernelNetwork, kernelID: String, pid: Int32, localAddress: String) throws {
        guard pid > 0 else { throw Failure(description: "the kernel's container has no process to attach the session network to") }
        let bridge = network.bridge, vxlan = network.vxlan, veth = hostVethName(kernelID)
        if !exists(bridge) {
            try run(["ip", "link", "add", bridge, "type", "bridge"], tolerate: "File exists")
        }
        try run(["ip", "link", "set", bridge, "up"])
        let peers = network.peers.filter { $0 != localAddress }
        if !peers.isEmpty {
            if !exists(vxlan) {
                try run(["ip", "link", "add", vxlan, "type", "vxlan", "id", String(network.vni), "dstport", "4789", "local", localAddress, "nolearning"],
                        tolerate: "File exists")
                try run(["ip", "link", "set", vxlan, "master", bridge, "up"])
            }
            // Flood entries: broadcast and unknown frames go to every other agent of the session.
            for peer in peers {
                try run(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vxlan, "dst", peer], tolerate: "File exists")
            }
        }
        if exists(veth) { try run(["ip", "link", "del", veth]) }
        try run(["ip", "link", "add", veth, "mtu", String(network.mtu), "type", "veth", "peer", "name", "eth1", "mtu", String(network.mtu),
                 "netns", String(pid)])
        try run(["ip", "link", "set", veth, "master", bridge, "up"])
        let inside = ["nsenter", "--net=/proc/\(pid)/ns/net", "--"]
        try run(inside + ["ip", "addr", "add", network.address, "dev", "eth1"])
        try run(inside + ["ip", "link", "set", "eth1", "up"])
    }

    /// After the kernel `kernelID` of `network` is gone: removes its veth (the engine's teardown
    /// of the namespace removes it too, but later), then the bridge and its VXLAN port when no
    /// kernel of the session is left on them.
    static func release(_ network: KernelNetwork, kernelID: String) {
        let veth = hostVethName(kernelID)
        if exists(veth) { _ = try? run(["ip", "link", "del", veth]) }
        guard exists(network.bridge) else { return }
        // `ip -o link show master BRIDGE`: one line per port, "N: NAME@PEER: <...> ...".
        let listing = (try? run(["ip", "-o", "link", "show", "master", network.bridge])) ?? "?"
        let ports = listing.split(separator: "\n").compactMap { line in
            line.split(separator: ":", maxSplits: 2).dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? "" }
        }
        guard ports.allSatisfy({ $0 == network.vxlan }) else { return }
        if exists(network.vxlan) { _ = try? run(["ip", "link", "del", network.vxlan]) }
        _ = try? run(["ip", "link", "del", network.bridge])
    }

    /// Runs a command and waits for it (reaped here with waitpid); output containing
    /// `tolerate` counts as success (a concurrent creator won).
    @discardableResult
    static func run(_ argv: [String], tolerate: String? = nil) throws -> String {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Failure(description: "\(argv.joined(separator: " ")): no pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        var pid: pid_t = 0
        let arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        let spawned = posix_spawnp(&pid, argv[0], &actions, nil, arguments, environ)
        posix_spawn_file_actions_destroy(&actions)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw Failure(description: "cannot run \(argv[0]) (\(String(cString: strerror(spawned)))); the agent needs iproute2 and util-linux for cluster networks")
        }
        var output = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fds[0], &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output += buffer[0..<count]
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let exited = status & 0x7F == 0, code = (status >> 8) & 0xFF
        if exited && code == 0 { return text }
        if let tolerate, text.contains(tolerate) { return text }
        throw Failure(description: "\(argv.joined(separator: " ")) failed (\(exited ? "status \(code)" : "signal \(status & 0x7F)")): \(text)")
    }
}
