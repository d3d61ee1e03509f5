import Foundation

/// Which of several managers on one database schedules: the holder of a PostgreSQL advisory
/// lock, taken on a connection of its own so that the lock lives exactly as long as that
/// connection. Every other manager still serves the API and tries for the lock each round.
///
/// Each time a manager becomes leader it raises the epoch in `scheduler_leadership`; the
/// scheduler's writes check their epoch inside their transaction (`StateStore.fence`), so a
/// leader that lost the lock while paused or cut off can never commit a reservation after
/// another manager took over. The leader's connection sets PostgreSQL's
/// `idle_session_timeout`: a leader that stops talking (stopped, partitioned) loses the lock
/// on the server's side within that time, and the next manager takes over.
///
/// On SQLite there is one manager (see `ManagerLock`): it always leads, unfenced.
public final class SchedulerLeadership: @unchecked Sendable {
    /// The advisory lock's key ("Hangar" in ASCII), the same for every manager.
    public static let lockKey: Int64 = 0x48_61_6E_67_61_72

    private let store: StateStore
    private let url: String?
    /// Who this manager is, for logs and `scheduler_leadership.holder`.
    public let holder: String
    private let sessionTimeout: Int
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private var epoch: Int64?
    /// Set by `resign()`: the wake listener ends.
    private var stopped = false

    /// - Parameters:
    ///   - holder: a name for this manager (host, pid, address).
    ///   - sessionTimeout: seconds after which PostgreSQL drops a silent leader's connection and
    ///     with it the lock; the leader speaks at least once per scheduling round.
    public init(store: StateStore, holder: String, sessionTimeout: Double = 10) {
        self.store = store
        url = (store.database as? PostgresDatabase)?.url
        self.holder = holder
        self.sessionTimeout = max(1, Int(sessionTimeout.rounded(.up)))
    }

    deinit { connection?.close() }

    /// Whether this manager led at its last round (always on SQLite).
    public var isLeading: Bool { lock.withLock { url == nil || epoch != nil } }

    /// What a round found: still leading, newly leading, or not (having lost the lead now or
    /// before).
    public enum Change: Equatable, Sendable {
        /// Still leading (`epoch` nil: SQLite's only manager, unfenced).
        case kept(epoch: Int64?)
        case acquired(epoch: Int64)
        case lost(reason: String)
        case follower
    }

    /// Keeps the leadership (checking the lock's connection still answers) or tries to take
    /// it. Blocking: call it through `StateStore.run` or from a thread that may block.
    public func refresh(now: Int64 = Clock.nowMicros()) -> Change {
        lock.withLock {
            // SQLite has one manager (`ManagerLock`), which always leads; nothing to fence.
            guard let url else { return .kept(epoch: nil) }
            if let connection, let held = epoch {
                if (try? connection.query("SELECT 1 AS alive")) != nil, connection.isHealthy { return .kept(epoch: held) }
                connection.close()
                self.connection = nil
                epoch = nil
                return .lost(reason: "the connection that held the scheduling lock broke (PostgreSQL ends a silent session after \(sessionTimeout) s)")
            }
            do {
                if connection == nil {
                    let fresh = try PostgresConnection(url: url)
                    _ = try? fresh.execute("SET idle_session_timeout = \(sessionTimeout * 1000)")
                    connection = fresh
                }
                guard let connection else { return .follower }
                let got = try connection.query("SELECT CASE WHEN pg_try_advisory_lock($1::bigint) THEN 1 ELSE 0 END AS got", [.int(Self.lockKey)]).first?.int("got")
                guard got == 1 else { return .follower }
                let taken = try inTransaction(connection) { c in try Self.takeOver(c, holder: holder, now: now) }
                // Managers that accept a session or end one notify this channel (`wakeScheduler`),
                // so the leader schedules at once instead of at its next round.
                _ = try connection.execute("LISTEN \(Self.wakeChannel)")
                epoch = taken
                return .acquired(epoch: taken)
            } catch {
                connection?.close()
                connection = nil
                epoch = nil
                return .lost(reason: "\(error)")
            }
        }
    }

    /// Gives the lead up (the manager is stopping), so another manager takes over at once.
    public func resign() {
        lock.withLock {
            stopped = true
            connection?.close()
            connection = nil
            epoch = nil
        }
    }

    /// The notification channel through which any manager wakes the scheduling leader.
    public static let wakeChannel = "hangar_scheduler_wake"

    /// While this manager leads on PostgreSQL, calls `onWake` soon after another manager (or
    /// this one) notifies `wakeChannel`; several notifications that arrive together wake it
    /// once. The wait runs on a thread of its own (it blocks in `poll`), which ends with
    /// `resign()`. Nothing happens on SQLite, where the only manager wakes itself.
    public func listenForWakes(_ onWake: @escaping @Sendable () -> Void) {
        guard url != nil else { return }
        let thread = Thread { [self] in
            while true {
                let (fd, woken, done): (Int32, Bool, Bool) = lock.withLock {
                    guard !stopped else { return (-1, false, true) }
                    guard epoch != nil, let connection else { return (-1, false, false) }
                    // Notifications a refresh's query already read wait in libpq's queue.
                    return (connection.socket, connection.takeNotifications(), false)
                }
                if done { return }
                if woken { onWake(); continue }
                guard fd >= 0 else { Thread.sleep(forTimeInterval: 0.25); continue }
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, 250)
                // A closed or replaced connection: look again after the next refresh.
                if ready < 0 || descriptor.revents & Int16(POLLNVAL | POLLERR | POLLHUP) != 0 { Thread.sleep(forTimeInterval: 0.25) }
            }
        }
        thread.name = "scheduler-wake"
        thread.start()
    }

    /// Raises the epoch for a new leader and returns it.
    static func takeOver(_ c: SQLConnection, holder: String, now: Int64) throws -> Int64 {
        try c.execute("UPDATE scheduler_leadership SET epoch = epoch + 1, holder = $1, since = $2 WHERE id = 1", [.text(holder), .int(now)])
        guard let epoch = try c.query("SELECT epoch FROM scheduler_leadership WHERE id = 1").first?.int("epoch") else {
            throw StoreError(.query, "scheduler_leadership has no row; the database's schema is damaged")
        }
        return epoch
    }
}

extension StateStore {
    /// The scheduling leader as the database knows it: epoch, holder and since when.
    public func schedulerLeader() throws -> (epoch: Int64, holder: String, since: Int64) {
        let row = try database.withConnection { c in try c.query("SELECT epoch, holder, since FROM scheduler_leadership WHERE id = 1").first }
        return (row?.int("epoch") ?? 0, row?.string("holder") ?? "", row?.int("since") ?? 0)
    }

    /// How long a fenced scheduler transaction may sit idle (its manager paused or cut off)
    /// before PostgreSQL aborts it: a bound on how long a new leader's takeover waits for it.
    static let fencedIdleLimitSeconds = 15

    /// Refuses a scheduler write made under an epoch that is no longer the leader's (nil:
    /// unfenced, for tests and the simulator). On PostgreSQL the row is share-locked, so a
    /// new leader's epoch increment waits for transactions already checked and every later
    /// one sees the new epoch.
    static func fence(_ c: SQLConnection, dialect: SQLDialect, epoch: Int64?) throws {
        guard let epoch else { return }
        if dialect == .postgresql {
            // A leader paused inside this transaction keeps the share lock, which holds up the
            // next leader's epoch increment; the server ends such a transaction after this
            // long, so a takeover waits at most that (the paused pass then commits nothing).
            _ = try c.query("SELECT set_config('idle_in_transaction_session_timeout', $1, true) AS set", [.text("\(fencedIdleLimitSeconds * 1000)")])
        }
        let current = try c.query("SELECT epoch FROM scheduler_leadership WHERE id = 1" + (dialect == .postgresql ? " FOR SHARE" : "")).first?.int("epoch") ?? 0
        guard current == epoch else {
            throw StoreError(.leadershipLost, "this manager is no longer the scheduling leader (its epoch \(epoch), the current one \(current)); "
                + "the new leader schedules, nothing of this pass was written")
        }
    }
}

extension StateStore {
    /// Inside a transaction: tells the scheduling leader (on PostgreSQL, whichever manager it
    /// is) that there is something to schedule, when the transaction commits. On SQLite the
    /// only manager wakes itself, so nothing is sent.
    static func wakeScheduler(_ c: SQLConnection, dialect: SQLDialect) throws {
        guard dialect == .postgresql else { return }
        _ = try c.query("SELECT pg_notify($1, '') IS NULL AS sent", [.text(SchedulerLeadership.wakeChannel)])
    }
}

extension StoreError.Code {
    /// A scheduler write from a manager that is no longer the scheduling leader.
    public static let leadershipLost = StoreError.Code("leadership-lost")
}
