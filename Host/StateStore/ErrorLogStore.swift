import ClusterProtocol
import Foundation

/// One server error log entry (Backend.AI's `error_logs`).
public struct ErrorLogEntry: Sendable, Equatable {
    public var id: String
    public var createdAt: Int64
    /// `critical`, `error`, `warning`.
    public var severity: String
    /// Who logged it: `manager`, or what a client says (`webui`, `client`).
    public var source: String
    public var userID: String?
    public var domainName: String?
    public var isRead: Bool
    public var message: String
    public var contextLang: String
    public var contextEnv: String
    public var requestURL: String?
    public var requestStatus: Int64?
    public var traceback: String?

    public init(id: String = UUID().uuidString.lowercased(), createdAt: Int64 = Clock.nowMicros(), severity: String, source: String,
                userID: String? = nil, domainName: String? = nil, isRead: Bool = false, message: String, contextLang: String = "",
                contextEnv: String = "{}", requestURL: String? = nil, requestStatus: Int64? = nil, traceback: String? = nil) {
        (self.id, self.createdAt, self.severity, self.source, self.userID, self.domainName) = (id, createdAt, severity, source, userID, domainName)
        (self.isRead, self.message, self.contextLang, self.contextEnv) = (isRead, message, contextLang, contextEnv)
        (self.requestURL, self.requestStatus, self.traceback) = (requestURL, requestStatus, traceback)
    }
}

extension StateStore {
    /// Entries kept at most; the oldest go first (a flood of errors cannot fill the database).
    public static let maxErrorLogs = 10_000

    public func addErrorLog(_ e: ErrorLogEntry) throws {
        try database.transaction { c in
            try c.execute("""
                INSERT INTO error_logs (id, created_at, severity, source, user_id, domain_name, is_read, message, context_lang, context_env,
                    request_url, request_status, traceback) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                """, [.text(e.id), .int(e.createdAt), .text(e.severity), .text(e.source), e.userID.map { .text($0) } ?? .null,
                      e.domainName.map { .text($0) } ?? .null, SQLValue(e.isRead), .text(String(e.message.prefix(16 << 10))), .text(e.contextLang),
                      .text(e.contextEnv), e.requestURL.map { .text($0) } ?? .null, e.requestStatus.map { .int($0) } ?? .null,
                      e.traceback.map { .text(String($0.prefix(64 << 10))) } ?? .null])
            let count = try c.query("SELECT COUNT(*) AS n FROM error_logs").first?.int("n") ?? 0
            if count > Int64(Self.maxErrorLogs) {
                try c.execute("""
                    DELETE FROM error_logs WHERE id IN (SELECT id FROM error_logs ORDER BY created_at, id LIMIT $1)
                    """, [.int(count - Int64(Self.maxErrorLogs))])
            }
        }
    }

    /// A page of entries not cleared, newest first, and how many there are: every entry
    /// (`userID` and `domain` nil), a domain's users', or one user's. `markRead` marks the page read.
    public func errorLogs(userID: String?, domain: String?, limit: Int, offset: Int, markRead: Bool) throws -> (entries: [ErrorLogEntry], total: Int) {
        try database.transaction { c in
            var clause = "is_cleared = 0"
            var parameters: [SQLValue] = []
            if let userID {
                parameters.append(.text(userID))
                clause += " AND user_id = $\(parameters.count)"
            } else if let domain {
                parameters.append(.text(domain))
                clause += " AND domain_name = $\(parameters.count)"
            }
            let total = Int(try c.query("SELECT COUNT(*) AS n FROM error_logs WHERE \(clause)", parameters).first?.int("n") ?? 0)
            let rows = try c.query("SELECT * FROM error_logs WHERE \(clause) ORDER BY created_at DESC, id LIMIT $\(parameters.count + 1) OFFSET $\(parameters.count + 2)",
                                   parameters + [.int(Int64(limit)), .int(Int64(offset))])
            let entries = rows.map { r in
                ErrorLogEntry(id: r.string("id") ?? "", createdAt: r.int("created_at") ?? 0, severity: r.string("severity") ?? "error",
                              source: r.string("source") ?? "", userID: r.string("user_id"), domainName: r.string("domain_name"),
                              isRead: r.bool("is_read"), message: r.string("message") ?? "", contextLang: r.string("context_lang") ?? "",
                              contextEnv: r.string("context_env") ?? "{}", requestURL: r.string("request_url"), requestStatus: r.int("request_status"),
                              traceback: r.string("traceback"))
            }
            if markRead {
                for entry in entries where !entry.isRead { try c.execute("UPDATE error_logs SET is_read = 1 WHERE id = $1", [.text(entry.id)]) }
            }
            return (entries, total)
        }
    }

    /// Hides an entry from listings (Backend.AI's clear).
    public func clearErrorLog(id: String, userID: String?) throws {
        try database.transaction { c in
            let changed = if let userID {
                try c.execute("UPDATE error_logs SET is_cleared = 1 WHERE id = $1 AND user_id = $2", [.text(id), .text(userID)])
            } else {
                try c.execute("UPDATE error_logs SET is_cleared = 1 WHERE id = $1", [.text(id)])
            }
            guard changed > 0 else { throw StoreError(.notFound, "no error log '\(id)' of yours") }
        }
    }
}
