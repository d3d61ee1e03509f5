import Foundation

/// Finds out whether the kernel's OOM killer ended a container, from the kernel log.
///
/// The engine's own `State.OOMKilled` is not reliable everywhere (podman 4.3 on cgroup v1
/// reports false for a container whose process the memory cgroup killed), but the kernel
/// logs every memcg OOM kill with the cgroup path, which contains the container id:
/// `oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/libpod_parent/libpod-<id>,...`.
public enum OOMEvidence {
    /// True if /dev/kmsg (readable by root) records an OOM kill in the container's cgroup.
    /// False when there is no such record or the log cannot be read.
    public static func containerWasOOMKilled(_ containerID: String, kmsgPath: String = "/dev/kmsg") -> Bool {
        guard containerID.count >= 12 else { return false }
        let fd = open(kmsgPath, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EPIPE { continue }  // a record was overwritten while reading; go on
                return false                    // EAGAIN: end of the log
            }
            if n == 0 { return false }
            let record = String(decoding: buffer[0..<n], as: UTF8.self)
            if record.contains("oom-kill:"), let memcg = record.range(of: "oom_memcg=") {
                let path = record[memcg.upperBound...].prefix { $0 != "," && $0 != "\n" }
                if path.contains(containerID) { return true }
            }
        }
    }
}
