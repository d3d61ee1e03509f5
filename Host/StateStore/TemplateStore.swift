import ClusterProtocol
import Foundation

/// A session template (Backend.AI: task template): a named, stored session request that
/// `create-from-template` starts, overriding what the request gives.
public struct SessionTemplate: Sendable, Equatable {
    public var id: String
    public var name: String
    public var userID: String
    public var domainName: String
    public var projectID: String?
    /// The template document as JSON text (`kind`, `metadata`, `spec`).
    public var template: String
    public var createdAt: Int64

    public init(id: String, name: String, userID: String, domainName: String, projectID: String?, template: String, createdAt: Int64) {
        (self.id, self.name, self.userID, self.domainName, self.projectID, self.template, self.createdAt) =
            (id, name, userID, domainName, projectID, template, createdAt)
    }
}

extension StateStore {
    private static func template(from r: SQLRow) -> SessionTemplate {
        SessionTemplate(id: r.string("id") ?? "", name: r.string("name") ?? "", userID: r.string("user_id") ?? "",
                        domainName: r.string("domain_name") ?? "", projectID: r.string("project_id"), template: r.string("template") ?? "{}",
                        createdAt: r.int("created_at") ?? 0)
    }

    public func createSessionTemplate(_ t: SessionTemplate) throws {
        try database.transaction { c in
            try c.execute("""
                INSERT INTO session_templates (id, name, type, domain_name, project_id, user_id, template, created_at)
                VALUES ($1, $2, 'task', $3, $4, $5, $6, $7)
                """, [.text(t.id), .text(t.name), .text(t.domainName), t.projectID.map { .text($0) } ?? .null, .text(t.userID), .text(t.template),
                      .int(t.createdAt)])
        }
    }

    /// Active templates, oldest first: a user's own (nil: everyone's).
    public func sessionTemplates(userID: String?) throws -> [SessionTemplate] {
        try database.withConnection { c in
            if let userID {
                return try c.query("SELECT * FROM session_templates WHERE is_active = 1 AND user_id = $1 ORDER BY created_at, id", [.text(userID)])
                    .map(Self.template)
            }
            return try c.query("SELECT * FROM session_templates WHERE is_active = 1 ORDER BY created_at, id").map(Self.template)
        }
    }

    public func sessionTemplate(id: String) throws -> SessionTemplate? {
        try database.withConnection { c in
            try c.query("SELECT * FROM session_templates WHERE id = $1 AND is_active = 1", [.text(id)]).first.map(Self.template)
        }
    }

    /// Replaces a template's document (and the name it carries).
    public func updateSessionTemplate(id: String, name: String, template: String) throws {
        try database.transaction { c in
            guard try c.execute("UPDATE session_templates SET name = $1, template = $2 WHERE id = $3 AND is_active = 1",
                                [.text(name), .text(template), .text(id)]) > 0 else {
                throw StoreError(.notFound, "no session template '\(id)'")
            }
        }
    }

    /// Deletes a template (Backend.AI keeps the row inactive; so does Hangar).
    public func deleteSessionTemplate(id: String) throws {
        try database.transaction { c in
            guard try c.execute("UPDATE session_templates SET is_active = 0 WHERE id = $1 AND is_active = 1", [.text(id)]) > 0 else {
                throw StoreError(.notFound, "no session template '\(id)'")
            }
        }
    }
}
