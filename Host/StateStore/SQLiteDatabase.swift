import CSQLite
import Foundation

/// SQLite's way of saying "copy this buffer before returning", which the C macro
/// SQLITE_TRANSIENT spells as a cast Swift cannot import.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The embedded default: one SQLite file in WAL mode, one connection used by one caller at
/// a time. SQLite serialises writers anyway; a single connection keeps prepared statements
/// cached and makes "BEGIN IMMEDIATE" transactions the only locking needed.
public final class SQLiteDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.sqlite
    public let path: String
    private var db: OpaquePointer?
    private let lock = NSLock()
    private let connection: SQLiteConnection

    /// Opens (creating if needed) the file and its folder.
    /// - Throws: `StoreError(.connection)` naming the path and SQLite's reason.
    public init(path: String) throws(StoreError) {
        self.path = path
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw StoreError(.connection, "cannot create the database folder \(folder): \(error.localizedDescription)")
            }
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
            let reason = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw StoreError(.connection, "cannot open SQLite database \(path): \(reason)")
        }
        db = handle
        connection = SQLiteConnection(db: handle)
        sqlite3_busy_timeout(handle, 10_000)
        do {
            _ = try connection.query("PRAGMA journal_mode=WAL")
            try connection.execute("PRAGMA foreign_keys=ON")
            try connection.execute("PRAGMA synchronous=NORMAL")
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    @discardableResult
    public func transaction<T>(_ body: (SQLConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard db != nil else { throw StoreError(.connection, "the SQLite database \(path) is closed") }
        // IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading
        // read locks.
        return try inTransaction(connection, begin: "BEGIN IMMEDIATE", body)
    }

    @discardableResult
    public func withConnection<T>(_ body: (SQLConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard db != nil else { throw StoreError(.connection, "the SQLite database \(path) is closed") }
        return try body(connection)
    }

    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard let handle = db else { return }
        connection.finalizeAll()
        sqlite3_close_v2(handle)
        db = nil
    }
}

/// Statements on one SQLite connection, with a prepared-statement cache.
final class SQLiteConnection: SQLConnection {
    private let db: OpaquePointer
    private var cache: [String: OpaquePointer] = [:]

    init(db: OpaquePointer) { self.db = db }

    func finalizeAll() {
        for statement in cache.values { sqlite3_finalize(statement) }
        cache.removeAll()
    }

    private func error(_ sql: String, _ rc: Int32) -> StoreError {
        let message = String(cString: sqlite3_errmsg(db))
        let code: StoreError.Code = (rc & 0xff) == SQLITE_CONSTRAINT ? .constraint : .query
        return StoreError(code, "SQLite: \(message) (in: \(sql.prefix(120)))")
    }

    private func prepare(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> OpaquePointer {
        let statement: OpaquePointer
        if let cached = cache[sql] {
            statement = cached
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        } else {
            var prepared: OpaquePointer?
            let rc = sqlite3_prepare_v2(db, sql, -1, &prepared, nil)
            guard rc == SQLITE_OK, let prepared else { throw error(sql, rc) }
            cache[sql] = prepared
            statement = prepared
        }
        for (i, value) in parameters.enumerated() {
            // `$n` placeholders are named parameters in SQLite; look each one up by name so
            // a placeholder used twice binds once.
            let index = sqlite3_bind_parameter_index(statement, "$\(i + 1)")
            guard index > 0 else { continue }
            let rc: Int32 = switch value {
            case .null: sqlite3_bind_null(statement, index)
            case .int(let v): sqlite3_bind_int64(statement, index, v)
            case .text(let s): sqlite3_bind_text(statement, index, s, -1, sqliteTransient)
            }
            guard rc == SQLITE_OK else { throw error(sql, rc) }
        }
        return statement
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int {
        let statement = try prepare(sql, parameters)
        defer { sqlite3_reset(statement) }
        var rc = sqlite3_step(statement)
        while rc == SQLITE_ROW { rc = sqlite3_step(statement) }
        guard rc == SQLITE_DONE else { throw error(sql, rc) }
        return Int(sqlite3_changes(db))
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
        let statement = try prepare(sql, parameters)
        defer { sqlite3_reset(statement) }
        let count = sqlite3_column_count(statement)
        let columns = (0..<count).map { String(cString: sqlite3_column_name(statement, $0)) }
        var rows: [SQLRow] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(sql, rc) }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(count))
            for i in 0..<count {
                switch sqlite3_column_type(statement, i) {
                case SQLITE_NULL: values.append(.null)
                case SQLITE_INTEGER: values.append(.int(sqlite3_column_int64(statement, i)))
                default:
                    if let text = sqlite3_column_text(statement, i) {
                        values.append(.text(String(cString: text)))
                    } else {
                        values.append(.null)
                    }
                }
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }
}
