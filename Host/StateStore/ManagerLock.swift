import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One manager per SQLite database: SQLite's file locking keeps the data safe, but two
/// managers would both schedule, and nothing fences them apart (several managers need
/// PostgreSQL, where one leads; see `SchedulerLeadership`). The lock is an exclusive `flock`
/// on `DATABASE.manager-lock`, held while the manager runs; the kernel drops it when the
/// process ends, however it ends, so a crash never leaves a stale lock.
public final class ManagerLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// Takes the lock for `database` (nil for PostgreSQL, which needs none).
    /// - Throws: `StoreError(.configuration)` naming the other manager's pid when it is taken.
    public static func acquire(for database: SQLDatabase) throws -> ManagerLock? {
        guard let sqlite = database as? SQLiteDatabase else { return nil }
        let path = sqlite.path + ".manager-lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.connection, "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let other = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw StoreError(.configuration, "another manager\(other.isEmpty ? "" : " (pid \(other))") already serves the SQLite database \(sqlite.path); "
                + "a SQLite database serves one manager. To run several managers, give them one PostgreSQL database (--database postgresql://USER@HOST:PORT/DB)")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return ManagerLock(descriptor: fd)
    }
}

extension StateStore {
    /// Takes `ManagerLock` for this store's database (nil on PostgreSQL); keep it while serving.
    public func managerLock() throws -> ManagerLock? { try ManagerLock.acquire(for: database) }
}
