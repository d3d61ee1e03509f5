import CLibpq
import Foundation

/// PostgreSQL through libpq: a small pool of connections, each caching its prepared
/// statements. Several managers can share one database; transactions run in parallel, one
/// per pooled connection.
public final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.postgresql
    /// The server's URL (the scheduling leader opens a connection of its own with it).
    let url: String
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var total = 0
    private let maxConnections: Int
    private var closed = false

    /// Connects once up front so a bad URL or an unreachable server fails at start-up.
    /// - Throws: `StoreError(.connection)` with libpq's message (password redacted).
    public init(url: String, maxConnections: Int = 8) throws(StoreError) {
        self.url = url
        self.maxConnections = max(1, maxConnections)
        let first = try PostgresConnection(url: url)
        idle.append(first)
        total = 1
    }

    deinit { close() }

    private func checkout() throws(StoreError) -> PostgresConnection {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if closed { throw StoreError(.connection, "the PostgreSQL pool is closed") }
            if let connection = idle.popLast() { return connection }
            if total < maxConnections {
                total += 1
                condition.unlock()
                do {
                    let connection = try PostgresConnection(url: url)
                    condition.lock()
                    return connection
                } catch {
                    condition.lock()
                    total -= 1
                    throw error
                }
            }
            condition.wait()
        }
    }

    private func checkin(_ connection: PostgresConnection) {
        condition.lock()
        if closed || !connection.isHealthy {
            total -= 1
            connection.close()
        } else {
            idle.append(connection)
        }
        condition.signal()
        condition.unlock()
    }

    @discardableResult
    public func transaction<T>(_ body: (SQLConnection) throws -> T) throws -> T {
        let connection = try checkout()
        defer { checkin(connection) }
        return try inTransaction(connection, body)
    }

    @discardableResult
    public func withConnection<T>(_ body: (SQLConnection) throws -> T) throws -> T {
        let connection = try checkout()
        defer { checkin(connection) }
        return try body(connection)
    }

    public func close() {
        condition.lock()
        closed = true
        for connection in idle { connection.close() }
        total -= idle.count
        idle.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}

/// One libpq connection.
final class PostgresConnection: SQLConnection {
    private var conn: OpaquePointer?
    private var prepared: [String: String] = [:]

    init(url: String) throws(StoreError) {
        conn = PQconnectdb(url)
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let reason = conn.map { String(cString: PQerrorMessage($0)).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "out of memory"
            if let conn { PQfinish(conn) }
            self.conn = nil
            throw StoreError(.connection, "cannot connect to PostgreSQL at \(DatabaseLocation.redacted(url)): \(reason)")
        }
        // Keep NOTICE chatter (e.g. "relation already exists, skipping") out of the logs.
        _ = try? execute("SET client_min_messages TO WARNING")
        // Every statement is prepared once per connection; PostgreSQL's default ("auto") plans
        // a statement afresh on each of its first executions and keeps doing so whenever the
        // fresh plan looks cheaper, which for the keypair list cost 0.85 ms of planning
        // against 0.2 ms of execution on every request. Our statements are small OLTP
        // lookups by key, where one generic plan is right (PostgreSQL 12+; older servers
        // ignore the failed SET and keep "auto").
        _ = try? execute("SET plan_cache_mode TO force_generic_plan")
    }

    var isHealthy: Bool { conn.map { PQstatus($0) == CONNECTION_OK && PQtransactionStatus($0) == PQTRANS_IDLE } ?? false }

    /// The connection's socket, for waiting on notifications (-1 when closed).
    var socket: Int32 { conn.map { PQsocket($0) } ?? -1 }

    /// Reads what the server sent without blocking and drops the notifications (`LISTEN`)
    /// that arrived, those already read by a query included; returns whether there were any.
    func takeNotifications() -> Bool {
        guard let conn else { return false }
        _ = PQconsumeInput(conn)
        var any = false
        while let notification = PQnotifies(conn) {
            any = true
            PQfreemem(notification)
        }
        return any
    }

    func close() {
        if let conn { PQfinish(conn) }
        conn = nil
    }

    private func run(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> OpaquePointer {
        guard let conn else { throw StoreError(.connection, "the PostgreSQL connection is closed") }
        let name: String
        if let known = prepared[sql] {
            name = known
        } else {
            name = "h\(prepared.count)"
            guard let result = PQprepare(conn, name, sql, Int32(parameters.count), nil) else {
                throw StoreError(.connection, "PostgreSQL: \(String(cString: PQerrorMessage(conn)))")
            }
            defer { PQclear(result) }
            guard PQresultStatus(result) == PGRES_COMMAND_OK else { throw failure(result, sql) }
            prepared[sql] = name
        }
        // Text format in both directions: PostgreSQL converts to the column types.
        let texts: [String?] = parameters.map {
            switch $0 {
            case .null: nil
            case .int(let i): String(i)
            case .text(let s): s
            }
        }
        var cStrings: [UnsafeMutablePointer<CChar>?] = texts.map { $0.flatMap { strdup($0) } }
        defer { cStrings.forEach { free($0) } }
        let result = cStrings.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) { values in
                PQexecPrepared(conn, name, Int32(texts.count), parameters.isEmpty ? nil : values, nil, nil, 0)
            }
        }
        guard let result else { throw StoreError(.connection, "PostgreSQL: \(String(cString: PQerrorMessage(conn)))") }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            defer { PQclear(result) }
            throw failure(result, sql)
        }
        return result
    }

    private func failure(_ result: OpaquePointer, _ sql: String) -> StoreError {
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        return StoreError(state.hasPrefix("23") ? .constraint : .query, "PostgreSQL \(state): \(message) (in: \(sql.prefix(120)))")
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        let fields = PQnfields(result)
        let columns = (0..<fields).map { String(cString: PQfname(result, $0)) }
        return (0..<PQntuples(result)).map { row in
            SQLRow(columns: columns, values: (0..<fields).map { field in
                PQgetisnull(result, row, field) == 1 ? .null : .text(String(cString: PQgetvalue(result, row, field)))
            })
        }
    }
}
