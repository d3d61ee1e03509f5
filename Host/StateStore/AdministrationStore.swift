import ClusterProtocol
import Foundation

/// What admins change besides tenants: resource groups and where they may be used, resource
/// policies, and cluster-wide manager settings (kept in the database, so every manager of a
/// cluster reads the same).
extension StateStore {
    // MARK: - Resource groups

    /// Applies `changes` to a resource group; the caller has checked plugin names.
    /// - Throws: `StoreError` `.notFound`, `.invalid` (options that are not a JSON object).
    public func updateResourceGroup(name: String, _ changes: ResourceGroupChanges) throws {
        if let options = changes.schedulerOptions {
            try Self.checkJSONObject(options, "scheduler_opts")
            _ = try SchedulerOptions(json: options)
        }
        try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(name)]).isEmpty else {
                throw StoreError(.notFound, "no resource group named '\(name)'")
            }
            var updates = ColumnUpdates()
            if let description = changes.description { updates.set("description", .text(description)) }
            if let active = changes.isActive { updates.set("is_active", SQLValue(active)) }
            if let flag = changes.isPublic { updates.set("is_public", SQLValue(flag)) }
            if let scheduler = changes.scheduler { updates.set("scheduler", .text(scheduler)) }
            if let selector = changes.agentSelector { updates.set("agent_selector", .text(selector)) }
            if let options = changes.schedulerOptions { updates.set("scheduler_options", .text(options)) }
            if let address = changes.wsproxyAddress { updates.set("wsproxy_addr", .text(address)) }
            if let flag = changes.useHostNetwork { updates.set("use_host_network", SQLValue(flag)) }
            try updates.apply(c, table: "resource_groups", key: "name", value: name)
        }
    }

    /// Removes a resource group and its links.
    /// - Throws: `StoreError.constraint` while agents are registered in it or its sessions
    ///   have not ended.
    public func deleteResourceGroup(name: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(name)]).isEmpty else {
                throw StoreError(.notFound, "no resource group named '\(name)'")
            }
            let agents = try c.query("SELECT COUNT(*) AS n FROM agents WHERE resource_group = $1 AND status <> 'TERMINATED'", [.text(name)]).first?.int("n") ?? 0
            guard agents == 0 else {
                throw StoreError(.constraint, "\(agents) agent(s) still serve resource group '\(name)'; move them to another group (agent config) first")
            }
            let sessions = try c.query("""
                SELECT COUNT(*) AS n FROM sessions WHERE resource_group = $1 AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                """, [.text(name)]).first?.int("n") ?? 0
            guard sessions == 0 else { throw StoreError(.constraint, "resource group '\(name)' still has \(sessions) session(s) that have not ended") }
            for statement in ["DELETE FROM project_resource_groups WHERE resource_group = $1", "DELETE FROM domain_resource_groups WHERE resource_group = $1",
                              "DELETE FROM resource_groups WHERE name = $1"] {
                try c.execute(statement, [.text(name)])
            }
        }
    }

    /// Lets a domain's users (or a project's members) use a resource group, or stops it.
    /// Dissociating what was not associated is not an error (Backend.AI answers ok too).
    /// - Throws: `StoreError.notFound` when the group, domain or project does not exist.
    public func setResourceGroupLink(_ group: String, domain: String? = nil, project: String? = nil, linked: Bool) throws {
        try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(group)]).isEmpty else {
                throw StoreError(.notFound, "no resource group named '\(group)'")
            }
            let (table, column, key): (String, String, String)
            if let domain {
                guard try !c.query("SELECT name FROM domains WHERE name = $1", [.text(domain)]).isEmpty else {
                    throw StoreError(.notFound, "no domain named '\(domain)'")
                }
                (table, column, key) = ("domain_resource_groups", "domain_name", domain)
            } else if let project {
                guard try !c.query("SELECT id FROM projects WHERE id = $1", [.text(project)]).isEmpty else {
                    throw StoreError(.notFound, "no project with id '\(project)'")
                }
                (table, column, key) = ("project_resource_groups", "project_id", project)
            } else {
                throw StoreError(.invalid, "name a domain or a project to associate the resource group with")
            }
            try c.execute("DELETE FROM \(table) WHERE \(column) = $1 AND resource_group = $2", [.text(key), .text(group)])
            if linked { try c.execute("INSERT INTO \(table) (\(column), resource_group) VALUES ($1, $2)", [.text(key), .text(group)]) }
        }
    }

    /// Resource groups associated with a domain itself.
    public func resourceGroups(ofDomain domain: String) throws -> [String] {
        try database.withConnection { c in
            try c.query("SELECT resource_group FROM domain_resource_groups WHERE domain_name = $1 ORDER BY resource_group",
                        [.text(domain)]).compactMap { $0.string("resource_group") }
        }
    }

    // MARK: - Resource policies

    public func resourcePolicy(scope: PolicyScope, name: String) throws -> ResourcePolicy? {
        try resourcePolicies(scope: scope).first { $0.name == name }
    }

    /// Removes a resource policy.
    /// - Throws: `StoreError.constraint` while keypairs (or users, or projects) use it.
    public func deleteResourcePolicy(scope: PolicyScope, name: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_policies WHERE scope = $1 AND name = $2", [.text(scope.rawValue), .text(name)]).isEmpty else {
                throw StoreError(.notFound, "no \(scope.rawValue) resource policy named '\(name)'")
            }
            let table = switch scope {
            case .keypair: "keypairs"
            case .user: "users"
            case .project: "projects"
            }
            let users = try c.query("SELECT COUNT(*) AS n FROM \(table) WHERE resource_policy = $1", [.text(name)]).first?.int("n") ?? 0
            guard users == 0 else { throw StoreError(.constraint, "\(users) \(table) still use resource policy '\(name)'; give them another first") }
            try c.execute("DELETE FROM resource_policies WHERE scope = $1 AND name = $2", [.text(scope.rawValue), .text(name)])
        }
    }

    // MARK: - Manager settings

    /// A cluster-wide manager setting (nil: never set).
    public func managerSetting(_ key: String) throws -> String? {
        try database.withConnection { c in try c.query("SELECT value FROM manager_settings WHERE key = $1", [.text(key)]).first?.string("value") }
    }

    /// Sets (or with nil, clears) a cluster-wide manager setting.
    public func setManagerSetting(_ key: String, _ value: String?, now: Int64 = Clock.nowMicros()) throws {
        try database.transaction { c in
            try c.execute("DELETE FROM manager_settings WHERE key = $1", [.text(key)])
            if let value {
                try c.execute("INSERT INTO manager_settings (key, value, updated_at) VALUES ($1, $2, $3)", [.text(key), .text(value), .int(now)])
            }
        }
    }

    /// Sessions that have not ended, cluster-wide (their ids).
    public func unfinishedSessions() throws -> [String] {
        try database.withConnection { c in
            try c.query("SELECT id FROM sessions WHERE status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR') ORDER BY created_at")
                .compactMap { $0.string("id") }
        }
    }
}
