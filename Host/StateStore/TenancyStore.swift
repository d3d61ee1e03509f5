import ClusterProtocol
import Foundation

/// Domains and projects (Backend.AI: groups) as the admin commands manage them. Deleting one
/// only deactivates it (its users keep their history); purging removes it and refuses while
/// anything live still belongs to it.
extension StateStore {
    /// Domain and project names: what Backend.AI accepts, kept safe for paths and URLs.
    static func checkTenancyName(_ name: String, _ what: String) throws {
        guard (1...64).contains(name.count), name.range(of: #"^[A-Za-z0-9_.-]+$"#, options: .regularExpression) != nil,
              name.first != "." else {
            throw StoreError(.invalid, "a \(what) name is 1-64 letters, digits, '_', '.' or '-' (not starting with '.'), not '\(name)'")
        }
    }

    /// Refuses text that is not a JSON object (resource slots, folder host permissions, options).
    public static func checkJSONObject(_ text: String, _ field: String) throws {
        guard (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any] else {
            throw StoreError(.invalid, "\(field) must be a JSON object, e.g. {}; got '\(text.prefix(80))'")
        }
    }

    static func checkSlots(_ text: String, _ field: String) throws {
        try checkJSONObject(text, field)
        do {
            _ = try ResourceSlots(json: text)
        } catch {
            throw StoreError(.invalid, "\(field): \(error)")
        }
    }

    static func domain(from r: SQLRow) -> Domain {
        let registries = (try? JSONSerialization.jsonObject(with: Data((r.string("allowed_docker_registries") ?? "[]").utf8))) as? [String] ?? []
        return Domain(name: r.string("name") ?? "", description: r.string("description") ?? "", isActive: r.bool("is_active"),
                      createdAt: r.int("created_at") ?? 0, totalResourceSlots: r.string("total_resource_slots") ?? "{}",
                      allowedVFolderHosts: r.string("allowed_vfolder_hosts") ?? "{}", allowedDockerRegistries: registries,
                      integrationID: r.string("integration_id"), modifiedAt: r.int("modified_at"))
    }

    static func project(_ r: SQLRow) -> Project {
        Project(id: r.string("id") ?? "", name: r.string("name") ?? "", domainName: r.string("domain_name") ?? "",
                description: r.string("description") ?? "", isActive: r.bool("is_active"),
                resourcePolicy: r.string("resource_policy") ?? "", createdAt: r.int("created_at") ?? 0,
                totalResourceSlots: r.string("total_resource_slots") ?? "{}", allowedVFolderHosts: r.string("allowed_vfolder_hosts") ?? "{}",
                integrationID: r.string("integration_id"), modifiedAt: r.int("modified_at"))
    }

    private static func registryList(_ registries: [String]) -> SQLValue {
        .text(String(decoding: (try? JSONSerialization.data(withJSONObject: registries)) ?? Data("[]".utf8), as: UTF8.self))
    }

    // MARK: - Domains

    public func domains() throws -> [Domain] {
        try database.withConnection { c in try c.query("SELECT * FROM domains ORDER BY name").map(Self.domain) }
    }

    public func domain(name: String) throws -> Domain? {
        try database.withConnection { c in try c.query("SELECT * FROM domains WHERE name = $1", [.text(name)]).first.map(Self.domain) }
    }

    /// Creates a domain.
    /// - Throws: `StoreError` `.invalid` (a bad name or JSON), `.constraint` (the name is taken).
    public func createDomain(_ d: Domain) throws -> Domain {
        try Self.checkTenancyName(d.name, "domain")
        try Self.checkSlots(d.totalResourceSlots, "total_resource_slots")
        try Self.checkJSONObject(d.allowedVFolderHosts, "allowed_vfolder_hosts")
        return try database.transaction { c in
            guard try c.query("SELECT name FROM domains WHERE name = $1", [.text(d.name)]).isEmpty else {
                throw StoreError(.constraint, "a domain named '\(d.name)' exists")
            }
            try c.execute("""
                INSERT INTO domains (name, description, is_active, total_resource_slots, allowed_vfolder_hosts, allowed_docker_registries,
                    integration_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """, [.text(d.name), .text(d.description), SQLValue(d.isActive), .text(d.totalResourceSlots), .text(d.allowedVFolderHosts),
                      Self.registryList(d.allowedDockerRegistries), d.integrationID.map { .text($0) } ?? .null, .int(d.createdAt)])
            return d
        }
    }

    /// Applies `changes` to a domain in one transaction. A new name moves the domain's users,
    /// projects and sessions with it.
    /// - Throws: `StoreError` `.notFound`, `.invalid`, `.constraint` (the new name is taken).
    public func updateDomain(name: String, _ changes: DomainChanges, now: Int64 = Clock.nowMicros()) throws -> Domain {
        if let newName = changes.name { try Self.checkTenancyName(newName, "domain") }
        if let slots = changes.totalResourceSlots { try Self.checkSlots(slots, "total_resource_slots") }
        if let hosts = changes.allowedVFolderHosts { try Self.checkJSONObject(hosts, "allowed_vfolder_hosts") }
        return try database.transaction { c in
            guard try !c.query("SELECT name FROM domains WHERE name = $1", [.text(name)]).isEmpty else {
                throw StoreError(.notFound, "no domain named '\(name)'")
            }
            var updates = ColumnUpdates()
            if let description = changes.description { updates.set("description", .text(description)) }
            if let active = changes.isActive { updates.set("is_active", SQLValue(active)) }
            if let slots = changes.totalResourceSlots { updates.set("total_resource_slots", .text(slots)) }
            if let hosts = changes.allowedVFolderHosts { updates.set("allowed_vfolder_hosts", .text(hosts)) }
            if let registries = changes.allowedDockerRegistries { updates.set("allowed_docker_registries", Self.registryList(registries)) }
            if let id = changes.integrationID { updates.set("integration_id", .text(id)) }
            updates.set("modified_at", .int(now))
            try updates.apply(c, table: "domains", key: "name", value: name)
            var current = name
            if let newName = changes.name, newName != name {
                guard try c.query("SELECT name FROM domains WHERE name = $1", [.text(newName)]).isEmpty else {
                    throw StoreError(.constraint, "a domain named '\(newName)' exists")
                }
                // The name is the key others refer to: copy the row under the new name, move
                // the references, then drop the old row (foreign keys hold at every step).
                try c.execute("""
                    INSERT INTO domains (name, description, is_active, total_resource_slots, allowed_vfolder_hosts, allowed_docker_registries,
                        integration_id, created_at, modified_at)
                    SELECT $1, description, is_active, total_resource_slots, allowed_vfolder_hosts, allowed_docker_registries,
                        integration_id, created_at, modified_at FROM domains WHERE name = $2
                    """, [.text(newName), .text(name)])
                for table in ["users", "projects", "sessions", "domain_resource_groups"] {
                    try c.execute("UPDATE \(table) SET domain_name = $1 WHERE domain_name = $2", [.text(newName), .text(name)])
                }
                try c.execute("DELETE FROM domains WHERE name = $1", [.text(name)])
                current = newName
            }
            guard let row = try c.query("SELECT * FROM domains WHERE name = $1", [.text(current)]).first else {
                throw StoreError(.notFound, "no domain named '\(current)'")
            }
            return Self.domain(from: row)
        }
    }

    /// Removes a domain and its (empty) projects.
    /// - Throws: `StoreError.constraint` while users, unfinished sessions or project folders
    ///   still belong to it.
    public func purgeDomain(name: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT name FROM domains WHERE name = $1", [.text(name)]).isEmpty else {
                throw StoreError(.notFound, "no domain named '\(name)'")
            }
            let users = try c.query("SELECT COUNT(*) AS n FROM users WHERE domain_name = $1", [.text(name)]).first?.int("n") ?? 0
            guard users == 0 else { throw StoreError(.constraint, "the domain still has \(users) user(s); purge them (or move their work) first") }
            let sessions = try c.query("""
                SELECT COUNT(*) AS n FROM sessions WHERE domain_name = $1 AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                """, [.text(name)]).first?.int("n") ?? 0
            guard sessions == 0 else { throw StoreError(.constraint, "the domain still has \(sessions) session(s) that have not ended; destroy them first") }
            for project in try c.query("SELECT id FROM projects WHERE domain_name = $1", [.text(name)]).compactMap({ $0.string("id") }) {
                try Self.purgeProject(c, id: project)
            }
            try c.execute("DELETE FROM domain_resource_groups WHERE domain_name = $1", [.text(name)])
            try c.execute("DELETE FROM domains WHERE name = $1", [.text(name)])
        }
    }

    // MARK: - Resource groups a domain or project may use

    /// Resource groups linked to a project.
    public func resourceGroups(ofProject projectID: String) throws -> [String] {
        try database.withConnection { c in
            try c.query("SELECT resource_group FROM project_resource_groups WHERE project_id = $1 ORDER BY resource_group",
                        [.text(projectID)]).compactMap { $0.string("resource_group") }
        }
    }

    // MARK: - Projects

    /// Projects of a domain (nil: of every domain; default: the default domain), by name.
    public func projects(domain: String? = defaultDomain) throws -> [Project] {
        try database.withConnection { c in
            if let domain {
                return try c.query("SELECT * FROM projects WHERE domain_name = $1 ORDER BY name", [.text(domain)]).map(Self.project)
            }
            return try c.query("SELECT * FROM projects ORDER BY domain_name, name").map(Self.project)
        }
    }

    public func project(id: String) throws -> Project? {
        try database.withConnection { c in try c.query("SELECT * FROM projects WHERE id = $1", [.text(id)]).first.map(Self.project) }
    }

    /// The ids of a project's members.
    public func projectMembers(_ projectID: String) throws -> [String] {
        try database.withConnection { c in
            try c.query("SELECT user_id FROM project_members WHERE project_id = $1 ORDER BY user_id", [.text(projectID)]).compactMap { $0.string("user_id") }
        }
    }

    /// Creates a project in a domain. It may use the default resource group, as the default
    /// project does, so its members can start sessions at once.
    /// - Throws: `StoreError` `.notFound` (no such domain or policy), `.invalid`, `.constraint`
    ///   (the domain has a project of that name).
    public func createProject(_ p: Project) throws -> Project {
        try Self.checkTenancyName(p.name, "project")
        try Self.checkSlots(p.totalResourceSlots, "total_resource_slots")
        try Self.checkJSONObject(p.allowedVFolderHosts, "allowed_vfolder_hosts")
        return try database.transaction { c in
            guard try !c.query("SELECT name FROM domains WHERE name = $1", [.text(p.domainName)]).isEmpty else {
                throw StoreError(.notFound, "no domain named '\(p.domainName)'")
            }
            guard try c.query("SELECT id FROM projects WHERE domain_name = $1 AND name = $2", [.text(p.domainName), .text(p.name)]).isEmpty else {
                throw StoreError(.constraint, "domain '\(p.domainName)' already has a project named '\(p.name)'")
            }
            guard try !c.query("SELECT name FROM resource_policies WHERE scope = 'project' AND name = $1", [.text(p.resourcePolicy)]).isEmpty else {
                throw StoreError(.notFound, "no project resource policy named '\(p.resourcePolicy)'")
            }
            try c.execute("""
                INSERT INTO projects (id, name, domain_name, description, is_active, resource_policy, total_resource_slots, allowed_vfolder_hosts,
                    integration_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                """, [.text(p.id), .text(p.name), .text(p.domainName), .text(p.description), SQLValue(p.isActive), .text(p.resourcePolicy),
                      .text(p.totalResourceSlots), .text(p.allowedVFolderHosts), p.integrationID.map { .text($0) } ?? .null, .int(p.createdAt)])
            if try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(Self.defaultResourceGroup)]).isEmpty {
                try c.execute("INSERT INTO project_resource_groups (project_id, resource_group) VALUES ($1, $2)",
                              [.text(p.id), .text(Self.defaultResourceGroup)])
            }
            return p
        }
    }

    /// Applies `changes` to a project in one transaction; members must be users of its domain.
    /// - Throws: `StoreError` `.notFound`, `.invalid`, `.constraint` (the new name is taken).
    public func updateProject(id: String, _ changes: ProjectChanges, now: Int64 = Clock.nowMicros()) throws -> Project {
        if let name = changes.name { try Self.checkTenancyName(name, "project") }
        if let slots = changes.totalResourceSlots { try Self.checkSlots(slots, "total_resource_slots") }
        if let hosts = changes.allowedVFolderHosts { try Self.checkJSONObject(hosts, "allowed_vfolder_hosts") }
        return try database.transaction { c in
            guard let row = try c.query("SELECT * FROM projects WHERE id = $1", [.text(id)]).first else {
                throw StoreError(.notFound, "no project with id '\(id)'")
            }
            let domain = row.string("domain_name") ?? ""
            var updates = ColumnUpdates()
            if let name = changes.name {
                guard try c.query("SELECT id FROM projects WHERE domain_name = $1 AND name = $2 AND id <> $3",
                                  [.text(domain), .text(name), .text(id)]).isEmpty else {
                    throw StoreError(.constraint, "domain '\(domain)' already has a project named '\(name)'")
                }
                updates.set("name", .text(name))
            }
            if let description = changes.description { updates.set("description", .text(description)) }
            if let active = changes.isActive { updates.set("is_active", SQLValue(active)) }
            if let slots = changes.totalResourceSlots { updates.set("total_resource_slots", .text(slots)) }
            if let hosts = changes.allowedVFolderHosts { updates.set("allowed_vfolder_hosts", .text(hosts)) }
            if let integration = changes.integrationID { updates.set("integration_id", .text(integration)) }
            updates.set("modified_at", .int(now))
            try updates.apply(c, table: "projects", key: "id", value: id)
            for user in changes.members ?? [] {
                guard let found = try c.query("SELECT domain_name FROM users WHERE id = $1", [.text(user)]).first else {
                    throw StoreError(.notFound, "no user with id '\(user)'")
                }
                guard found.string("domain_name") == domain else {
                    throw StoreError(.invalid, "user '\(user)' is in domain '\(found.string("domain_name") ?? "")', not in the project's domain '\(domain)'")
                }
                try c.execute("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2", [.text(id), .text(user)])
                if changes.membersMode == .add {
                    try c.execute("INSERT INTO project_members (project_id, user_id) VALUES ($1, $2)", [.text(id), .text(user)])
                }
            }
            guard let updated = try c.query("SELECT * FROM projects WHERE id = $1", [.text(id)]).first else {
                throw StoreError(.notFound, "no project with id '\(id)'")
            }
            return Self.project(updated)
        }
    }

    /// Removes a project, its memberships and its resource-group links.
    /// - Throws: `StoreError.constraint` while its sessions run or it owns folders.
    public func purgeProject(id: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT id FROM projects WHERE id = $1", [.text(id)]).isEmpty else {
                throw StoreError(.notFound, "no project with id '\(id)'")
            }
            try Self.purgeProject(c, id: id)
        }
    }

    private static func purgeProject(_ c: SQLConnection, id: String) throws {
        let sessions = try c.query("""
            SELECT COUNT(*) AS n FROM sessions WHERE project_id = $1 AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
            """, [.text(id)]).first?.int("n") ?? 0
        guard sessions == 0 else { throw StoreError(.constraint, "project \(id) still has \(sessions) session(s) that have not ended; destroy them first") }
        let folders = try c.query("SELECT COUNT(*) AS n FROM vfolders WHERE ownership = 'group' AND project_id = $1", [.text(id)]).first?.int("n") ?? 0
        guard folders == 0 else { throw StoreError(.constraint, "project \(id) still owns \(folders) folder(s); delete them first") }
        for statement in ["DELETE FROM project_members WHERE project_id = $1", "DELETE FROM project_resource_groups WHERE project_id = $1",
                          "DELETE FROM projects WHERE id = $1"] {
            try c.execute(statement, [.text(id)])
        }
    }
}
