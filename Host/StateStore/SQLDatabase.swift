import Foundation

/// A value bound to or read from SQL. The schema keeps to types both SQLite and PostgreSQL
/// store the same way: BIGINT for integers, booleans and timestamps (microseconds since the
/// epoch), TEXT for everything else (decimals and JSON included, so nothing goes through
/// binary floating point).
public enum SQLValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case int(Int64)
    case text(String)

    public var description: String {
        switch self {
        case .null: "NULL"
        case .int(let i): String(i)
        case .text(let s): "'\(s)'"
        }
    }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(_ bool: Bool) { self = .int(bool ? 1 : 0) }
    public init(_ int: Int) { self = .int(Int64(int)) }
    public init(_ string: String?) { self = string.map { .text($0) } ?? .null }
}

/// One result row, by column name.
public struct SQLRow: Sendable {
    public let columns: [String]
    public let values: [SQLValue]

    public subscript(_ column: String) -> SQLValue {
        guard let i = columns.firstIndex(of: column) else { return .null }
        return values[i]
    }

    /// The column as text (PostgreSQL returns every value as text; SQLite as stored).
    public func string(_ column: String) -> String? {
        switch self[column] {
        case .null: nil
        case .int(let i): String(i)
        case .text(let s): s
        }
    }

    public func int(_ column: String) -> Int64? {
        switch self[column] {
        case .null: nil
        case .int(let i): i
        case .text(let s): Int64(s)
        }
    }

    public func bool(_ column: String) -> Bool { (int(column) ?? 0) != 0 }
}

/// Failures of the state store, with messages an operator can act on.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// The database cannot be reached or opened.
        public static let connection = Code("connection")
        /// A statement failed.
        public static let query = Code("query")
        /// A uniqueness or foreign-key constraint refused the write.
        public static let constraint = Code("constraint")
        /// The database was written by a newer Hangar.
        public static let schemaTooNew = Code("schema-too-new")
        /// The object does not exist.
        public static let notFound = Code("not-found")
        /// The input is not acceptable.
        public static let invalid = Code("invalid")
        /// The database URL or path is malformed.
        public static let configuration = Code("configuration")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension StoreError: LocalizedError {
    public var errorDescription: String? { message }
}

/// One connection's view inside a transaction.
public protocol SQLConnection: AnyObject {
    /// Runs a statement; `$1`, `$2`, ... in `sql` are bound from `parameters`.
    /// - Returns: the number of rows changed.
    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int
    /// Runs a query and returns every row.
    func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow]
}

extension SQLConnection {
    @discardableResult
    public func execute(_ sql: String) throws(StoreError) -> Int { try execute(sql, []) }
    public func query(_ sql: String) throws(StoreError) -> [SQLRow] { try query(sql, []) }
}

/// The narrow interface both database backends implement. Statements use `$n`
/// placeholders and portable SQL; every write that must be atomic runs in `transaction`.
public protocol SQLDatabase: AnyObject, Sendable {
    /// "sqlite" or "postgresql".
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction on one connection: committed if it returns, rolled
    /// back if it throws. Blocking; call it off the cooperative thread pool (see `StateStore`).
    @discardableResult
    func transaction<T>(_ body: (SQLConnection) throws -> T) throws -> T
    /// Runs `body` on a connection without an explicit transaction (single reads).
    @discardableResult
    func withConnection<T>(_ body: (SQLConnection) throws -> T) throws -> T
    /// Closes every connection.
    func close()
}

/// Runs `body` between `begin` and COMMIT on one connection, rolling back if it throws.
func inTransaction<T>(_ connection: SQLConnection, begin: String = "BEGIN", _ body: (SQLConnection) throws -> T) throws -> T {
    try connection.execute(begin)
    do {
        let result = try body(connection)
        try connection.execute("COMMIT")
        return result
    } catch {
        _ = try? connection.execute("ROLLBACK")
        throw error
    }
}

/// The two supported databases.
public enum SQLDialect: String, Sendable {
    case sqlite
    case postgresql
}

/// Where the state lives: a SQLite file path or a PostgreSQL URL.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgresql(url: String)

    /// Parses `--database`: `postgresql://...`/`postgres://...` or a file path (`sqlite:` prefix optional).
    public init(_ text: String) throws(StoreError) {
        if text.hasPrefix("postgresql://") || text.hasPrefix("postgres://") {
            self = .postgresql(url: text)
        } else if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count)).replacingOccurrences(of: "//", with: "", options: .anchored)
            guard !path.isEmpty else { throw StoreError(.configuration, "database 'sqlite:' needs a file path, e.g. sqlite:/var/lib/hangar/manager.db") }
            self = .sqlite(path: path)
        } else if text.contains("://") {
            throw StoreError(.configuration, "unsupported database URL '\(text)': use a SQLite file path or postgresql://user@host:port/dbname")
        } else {
            guard !text.isEmpty else { throw StoreError(.configuration, "the database path is empty") }
            self = .sqlite(path: text)
        }
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgresql(let url): Self.redacted(url)
        }
    }

    /// The URL without its password, for logs.
    static func redacted(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://"), scheme.upperBound < at else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    /// Opens the database.
    public func open() throws(StoreError) -> SQLDatabase {
        switch self {
        case .sqlite(let path): try SQLiteDatabase(path: path)
        case .postgresql(let url): try PostgresDatabase(url: url)
        }
    }
}
