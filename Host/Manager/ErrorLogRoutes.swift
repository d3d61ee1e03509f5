import Foundation
import Hummingbird
import StateStore

/// Server error logs as `server-logs list` reads them: the manager records every request it
/// failed with a 5xx (unexpected errors), and clients may append their own. Users see their
/// entries, domain admins their domain's, superadmins all.
extension ManagerAPI {
    var errorLogRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/logs/error", summary: "Error logs, newest first (?page_size=, ?page_no=, ?mark_read=true)", access: .user,
                      bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let query = request.uri.queryParameters
                let size = query.get("page_size").flatMap(Int.init) ?? 20
                let page = query.get("page_no").flatMap(Int.init) ?? 1
                guard (1...100).contains(size), page >= 1, page <= 1_000_000 else { throw APIError.invalidParams("page_size must be 1-100 and page_no at least 1") }
                let markRead = query.get("mark_read")?.lowercased() == "true"
                let userID: String? = caller.isAdmin ? nil : caller.identity.keypair.userID
                let domain: String? = caller.role == .superadmin ? nil : caller.domain
                let (entries, total) = try await store.run {
                    try $0.errorLogs(userID: userID, domain: domain, limit: size, offset: (page - 1) * size, markRead: markRead)
                }
                let logs: [[String: Any]] = entries.map { e in
                    ["log_id": e.id, "created_at": Double(e.createdAt) / 1_000_000, "severity": e.severity, "source": e.source,
                     "user": e.userID as Any, "is_read": e.isRead, "message": e.message, "context_lang": e.contextLang, "context_env": e.contextEnv,
                     "request_url": e.requestURL as Any, "request_status": e.requestStatus as Any, "traceback": e.traceback as Any]
                }
                return try Self.jsonObject(["logs": logs, "count": total])
            },
            RouteSpec(method: .post, path: "/logs/error", summary: "Append an error log entry (severity, source, message, ...)", access: .user,
                      bodyKeys: ["severity", "source", "message", "context_lang", "context_env", "request_url", "request_status", "traceback"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await object(request, allowed: ["severity", "source", "message", "context_lang", "context_env", "request_url",
                                                               "request_status", "traceback"])
                guard let severity = body["severity"] as? String, ["critical", "error", "warning"].contains(severity.lowercased()) else {
                    throw APIError.invalidParams("severity must be critical, error or warning")
                }
                guard let source = body["source"] as? String, let message = body["message"] as? String else {
                    throw APIError.invalidParams("source and message are required")
                }
                let entry = ErrorLogEntry(severity: severity.lowercased(), source: source, userID: caller.identity.keypair.userID, domainName: caller.domain,
                                          message: message, contextLang: body["context_lang"] as? String ?? "",
                                          contextEnv: body["context_env"].map { ($0 as? String) ?? "\($0)" } ?? "{}",
                                          requestURL: body["request_url"] as? String, requestStatus: (body["request_status"] as? NSNumber)?.int64Value,
                                          traceback: body["traceback"] as? String)
                try await store.run { try $0.addErrorLog(entry) }
                return try Self.jsonObject(["success": true])
            },
            RouteSpec(method: .post, path: "/logs/error/:logId/clear", summary: "Hide an error log entry from listings", access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let id = try context.parameters.require("logId")
                let userID: String? = caller.isAdmin ? nil : caller.identity.keypair.userID
                try await store.run { try $0.clearErrorLog(id: id, userID: userID) }
                return try Self.jsonObject(["success": true])
            },
        ]
    }
}
