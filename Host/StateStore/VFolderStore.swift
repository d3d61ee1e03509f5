import Foundation

/// A virtual folder's access levels, as Backend.AI names them. `wd` is read-write plus
/// deleting the folder; owners count as `wd`.
public enum VFolderPermission: String, Sendable, Codable, CaseIterable, Comparable {
    case readOnly = "ro"
    case readWrite = "rw"
    case writeDelete = "wd"

    var rank: Int {
        switch self {
        case .readOnly: 0
        case .readWrite: 1
        case .writeDelete: 2
        }
    }
    public static func < (a: VFolderPermission, b: VFolderPermission) -> Bool { a.rank < b.rank }
}

/// A virtual folder as stored. `host` is "proxy:volume"; the folder's id (32 hex digits) names
/// it on that volume.
public struct VFolder: Sendable, Equatable {
    public var id: String
    public var name: String
    public var host: String
    public var quotaBytes: Int64
    /// "user" or "group" (a project folder).
    public var ownership: String
    public var userID: String?
    public var projectID: String?
    /// For project folders, what members get.
    public var permission: VFolderPermission
    /// "ready", "delete-pending" (in the trash), ...
    public var status: String
    public var usageMode: String
    public var cloneable: Bool
    public var createdAt: Int64

    public var proxyName: String { String(host.split(separator: ":", maxSplits: 1).first ?? "") }
    public var volumeName: String { host.split(separator: ":", maxSplits: 1).dropFirst().first.map(String.init) ?? "" }
}

/// A folder as one user sees it: with their effective permission and how they reach it.
public struct VisibleVFolder: Sendable, Equatable {
    public var folder: VFolder
    public var permission: VFolderPermission
    public var isOwner: Bool
    /// "owner", "project" or "shared".
    public var via: String

    public init(folder: VFolder, permission: VFolderPermission, isOwner: Bool, via: String) {
        self.folder = folder
        self.permission = permission
        self.isOwner = isOwner
        self.via = via
    }
}

/// An invitation to share a user folder.
public struct VFolderInvitation: Sendable, Equatable {
    public var id: String
    public var folderID: String
    public var folderName: String
    public var inviter: String
    public var invitee: String
    public var permission: VFolderPermission
    public var state: String
    public var createdAt: Int64
}

extension StateStore {
    static func vfolder(from r: SQLRow) -> VFolder {
        VFolder(id: r.string("id") ?? "", name: r.string("name") ?? "", host: r.string("host") ?? "", quotaBytes: r.int("quota_bytes") ?? 0,
                ownership: r.string("ownership") ?? "user", userID: r.string("user_id"), projectID: r.string("project_id"),
                permission: VFolderPermission(rawValue: r.string("permission") ?? "rw") ?? .readWrite, status: r.string("status") ?? "ready",
                usageMode: r.string("usage_mode") ?? "general", cloneable: r.bool("cloneable"), createdAt: r.int("created_at") ?? 0)
    }

    /// Records a new folder (the storage proxy has created it already). Names are unique per
    /// owner (a user, or a project) among folders not purged.
    public func createVFolder(id: String = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""), name: String, host: String,
                              quotaBytes: Int64, userID: String?, projectID: String?, permission: VFolderPermission = .readWrite,
                              usageMode: String = "general", cloneable: Bool = false, now: Int64 = Clock.nowMicros()) throws -> VFolder {
        try Self.checkFolderName(name)
        let ownership = projectID == nil ? "user" : "group"
        return try database.transaction { c in
            let clash = projectID == nil
                ? try c.query("SELECT id FROM vfolders WHERE name = $1 AND user_id = $2 AND ownership = 'user'", [.text(name), .text(userID ?? "")])
                : try c.query("SELECT id FROM vfolders WHERE name = $1 AND project_id = $2 AND ownership = 'group'", [.text(name), .text(projectID!)])
            guard clash.isEmpty else { throw StoreError(.constraint, "a folder named '\(name)' already exists (in the trash too: purge it first)") }
            try c.execute("""
                INSERT INTO vfolders (id, name, host, quota_bytes, ownership, user_id, project_id, permission, status, usage_mode, cloneable, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ready', $9, $10, $11)
                """, [.text(id), .text(name), .text(host), .int(quotaBytes), .text(ownership), SQLValue(userID), SQLValue(projectID),
                      .text(permission.rawValue), .text(usageMode), .int(cloneable ? 1 : 0), .int(now)])
            return VFolder(id: id, name: name, host: host, quotaBytes: quotaBytes, ownership: ownership, userID: userID, projectID: projectID,
                           permission: permission, status: "ready", usageMode: usageMode, cloneable: cloneable, createdAt: now)
        }
    }

    /// Every folder a user can see: their own, their projects', and those shared with them.
    /// - Parameter includeTrash: also folders in the trash (only their owners see those).
    public func visibleVFolders(userID: String, includeTrash: Bool = false) throws -> [VisibleVFolder] {
        try database.withConnection { c in
            var out: [VisibleVFolder] = []
            var seen = Set<String>()
            let statusFilter = includeTrash ? "" : " AND v.status = 'ready'"
            for r in try c.query("SELECT v.* FROM vfolders v WHERE v.ownership = 'user' AND v.user_id = $1" + statusFilter + " ORDER BY v.name", [.text(userID)]) {
                let f = Self.vfolder(from: r)
                seen.insert(f.id)
                out.append(VisibleVFolder(folder: f, permission: .writeDelete, isOwner: true, via: "owner"))
            }
            // A project folder's permission, unless an admin shared it with this member with
            // another (`vfolder share`).
            for r in try c.query("""
                SELECT v.*, p.permission AS granted FROM vfolders v JOIN project_members m ON m.project_id = v.project_id
                LEFT JOIN vfolder_permissions p ON p.vfolder_id = v.id AND p.user_id = m.user_id
                WHERE v.ownership = 'group' AND m.user_id = $1 AND v.status = 'ready' ORDER BY v.name
                """, [.text(userID)]) where !seen.contains(r.string("id") ?? "") {
                let f = Self.vfolder(from: r)
                seen.insert(f.id)
                let granted = r.string("granted").flatMap(VFolderPermission.init(rawValue:))
                out.append(VisibleVFolder(folder: f, permission: granted ?? f.permission, isOwner: false, via: "project"))
            }
            for r in try c.query("""
                SELECT v.*, p.permission AS granted FROM vfolders v JOIN vfolder_permissions p ON p.vfolder_id = v.id
                WHERE p.user_id = $1 AND v.status = 'ready' ORDER BY v.name
                """, [.text(userID)]) where !seen.contains(r.string("id") ?? "") {
                let f = Self.vfolder(from: r)
                seen.insert(f.id)
                out.append(VisibleVFolder(folder: f, permission: VFolderPermission(rawValue: r.string("granted") ?? "ro") ?? .readOnly, isOwner: false, via: "shared"))
            }
            return out
        }
    }

    /// A folder by name or id as the user sees it (own folders win over project and shared ones).
    public func visibleVFolder(_ nameOrID: String, userID: String, includeTrash: Bool = false) throws -> VisibleVFolder? {
        try visibleVFolders(userID: userID, includeTrash: includeTrash).first { $0.folder.name == nameOrID || $0.folder.id == nameOrID }
    }

    public func vfolder(id: String) throws -> VFolder? {
        try database.withConnection { c in try c.query("SELECT * FROM vfolders WHERE id = $1", [.text(id)]).first.map(Self.vfolder(from:)) }
    }

    /// Every folder (admins).
    public func allVFolders() throws -> [VFolder] {
        try database.withConnection { c in try c.query("SELECT * FROM vfolders ORDER BY created_at").map(Self.vfolder(from:)) }
    }

    /// Folders a user owns (the trash included), for the policy's count limit.
    public func ownedVFolderCount(userID: String) throws -> Int {
        try database.withConnection { c in
            Int(try c.query("SELECT COUNT(*) AS n FROM vfolders WHERE ownership = 'user' AND user_id = $1", [.text(userID)]).first?.int("n") ?? 0)
        }
    }

    public func setVFolderStatus(_ id: String, _ status: String) throws {
        try database.transaction { try $0.execute("UPDATE vfolders SET status = $1 WHERE id = $2", [.text(status), .text(id)]) }
    }

    /// Forgets a purged folder and everything that referred to it.
    public func deleteVFolderRecord(_ id: String) throws {
        try database.transaction { c in
            try c.execute("DELETE FROM vfolder_permissions WHERE vfolder_id = $1", [.text(id)])
            try c.execute("DELETE FROM vfolder_invitations WHERE vfolder_id = $1", [.text(id)])
            try c.execute("DELETE FROM vfolders WHERE id = $1", [.text(id)])
        }
    }

    /// Renames a folder; names are unique among its owner's (user's or project's) folders.
    public func renameVFolder(_ id: String, to name: String) throws {
        try Self.checkFolderName(name)
        try database.transaction { c in
            guard let r = try c.query("SELECT * FROM vfolders WHERE id = $1", [.text(id)]).first else { throw StoreError(.notFound, "no folder '\(id)'") }
            let f = Self.vfolder(from: r)
            let clash = f.ownership == "user"
                ? try c.query("SELECT id FROM vfolders WHERE name = $1 AND user_id = $2 AND ownership = 'user' AND id <> $3", [.text(name), .text(f.userID ?? ""), .text(id)])
                : try c.query("SELECT id FROM vfolders WHERE name = $1 AND project_id = $2 AND ownership = 'group' AND id <> $3", [.text(name), .text(f.projectID ?? ""), .text(id)])
            guard clash.isEmpty else { throw StoreError(.constraint, "a folder named '\(name)' exists") }
            try c.execute("UPDATE vfolders SET name = $1 WHERE id = $2", [.text(name), .text(id)])
        }
    }

    /// Folder names: what Backend.AI accepts, safe as path components.
    static func checkFolderName(_ name: String) throws {
        guard (1...64).contains(name.count), name.range(of: #"^[A-Za-z0-9_.-]+$"#, options: .regularExpression) != nil, name.first != "." else {
            throw StoreError(.invalid, "a folder name is 1-64 letters, digits, '_', '.' or '-' (not starting with '.'), not '\(name)'")
        }
    }

    /// Changes a folder's default permission and whether others may clone it.
    public func updateVFolderOptions(_ id: String, permission: VFolderPermission?, cloneable: Bool?) throws {
        try database.transaction { c in
            var updates = ColumnUpdates()
            if let permission { updates.set("permission", .text(permission.rawValue)) }
            if let cloneable { updates.set("cloneable", SQLValue(cloneable)) }
            guard try !c.query("SELECT id FROM vfolders WHERE id = $1", [.text(id)]).isEmpty else { throw StoreError(.notFound, "no folder '\(id)'") }
            try updates.apply(c, table: "vfolders", key: "id", value: id)
        }
    }

    /// Gives users (by email) their own permission on a project folder, or with nil takes it
    /// back; only members of the folder's project are affected. Returns the emails changed.
    public func setVFolderPermission(_ id: String, emails: [String], permission: VFolderPermission?) throws -> [String] {
        try database.transaction { c in
            guard let r = try c.query("SELECT * FROM vfolders WHERE id = $1", [.text(id)]).first else { throw StoreError(.notFound, "no folder '\(id)'") }
            let f = Self.vfolder(from: r)
            var changed: [String] = []
            for email in emails {
                guard let user = try c.query("""
                    SELECT u.id AS id FROM users u JOIN project_members m ON m.user_id = u.id WHERE u.email = $1 AND m.project_id = $2
                    """, [.text(email), .text(f.projectID ?? "")]).first?.string("id") else { continue }
                let removed = try c.execute("DELETE FROM vfolder_permissions WHERE vfolder_id = $1 AND user_id = $2", [.text(id), .text(user)])
                if let permission {
                    try c.execute("INSERT INTO vfolder_permissions (vfolder_id, user_id, permission) VALUES ($1, $2, $3)",
                                  [.text(id), .text(user), .text(permission.rawValue)])
                    changed.append(email)
                } else if removed > 0 {
                    changed.append(email)
                }
            }
            return changed
        }
    }

    /// Ends a user's access to a folder shared with them (by invitation).
    public func leaveVFolder(_ id: String, userID: String) throws {
        try database.transaction { c in
            guard try c.execute("DELETE FROM vfolder_permissions WHERE vfolder_id = $1 AND user_id = $2", [.text(id), .text(userID)]) > 0 else {
                throw StoreError(.notFound, "folder '\(id)' is not shared with this user")
            }
        }
    }

    /// One user's own permission on a folder (Backend.AI's shared-folder rows).
    public struct VFolderShare: Sendable, Equatable {
        public var folder: VFolder
        public var userID: String
        public var email: String
        public var permission: VFolderPermission
    }

    /// Every user's own permission on folders (one folder's, with `folderID`), by folder name.
    public func vfolderShares(folderID: String? = nil) throws -> [VFolderShare] {
        try database.withConnection { c in
            let sql = """
                SELECT v.*, p.user_id AS shared_user, p.permission AS granted, u.email AS shared_email
                FROM vfolder_permissions p JOIN vfolders v ON v.id = p.vfolder_id JOIN users u ON u.id = p.user_id
                """
            let rows = if let folderID {
                try c.query(sql + " WHERE v.id = $1 ORDER BY v.name, u.email", [.text(folderID)])
            } else {
                try c.query(sql + " ORDER BY v.name, u.email")
            }
            return rows.map { r in
                VFolderShare(folder: Self.vfolder(from: r), userID: r.string("shared_user") ?? "", email: r.string("shared_email") ?? "",
                             permission: VFolderPermission(rawValue: r.string("granted") ?? "ro") ?? .readOnly)
            }
        }
    }

    /// Sets (or with nil removes) one user's own permission on a folder they already share.
    public func setVFolderShare(_ folderID: String, userID: String, permission: VFolderPermission?) throws {
        try database.transaction { c in
            guard try !c.query("SELECT user_id FROM vfolder_permissions WHERE vfolder_id = $1 AND user_id = $2", [.text(folderID), .text(userID)]).isEmpty else {
                throw StoreError(.notFound, "folder '\(folderID)' is not shared with user '\(userID)'")
            }
            if let permission {
                try c.execute("UPDATE vfolder_permissions SET permission = $1 WHERE vfolder_id = $2 AND user_id = $3",
                              [.text(permission.rawValue), .text(folderID), .text(userID)])
            } else {
                try c.execute("DELETE FROM vfolder_permissions WHERE vfolder_id = $1 AND user_id = $2", [.text(folderID), .text(userID)])
            }
        }
    }

    /// Gives a user folder to another user of the same domain (their own permission on it,
    /// if they had one, ends: they own it now).
    public func changeVFolderOwner(_ folderID: String, to userID: String) throws {
        try database.transaction { c in
            guard let r = try c.query("SELECT * FROM vfolders WHERE id = $1", [.text(folderID)]).first else { throw StoreError(.notFound, "no folder '\(folderID)'") }
            let f = Self.vfolder(from: r)
            guard f.ownership == "user", let owner = f.userID else { throw StoreError(.invalid, "only user folders change owners; project folders belong to their project") }
            let domains = try c.query("SELECT id, domain_name FROM users WHERE id = $1 OR id = $2", [.text(owner), .text(userID)])
            guard domains.count == 2 || owner == userID else { throw StoreError(.notFound, "no user '\(userID)'") }
            guard Set(domains.compactMap { $0.string("domain_name") }).count == 1 else {
                throw StoreError(.invalid, "the new owner must be in the folder owner's domain")
            }
            guard try c.query("SELECT id FROM vfolders WHERE name = $1 AND user_id = $2 AND ownership = 'user' AND id <> $3",
                              [.text(f.name), .text(userID), .text(folderID)]).isEmpty else {
                throw StoreError(.constraint, "the new owner already has a folder named '\(f.name)'")
            }
            try c.execute("UPDATE vfolders SET user_id = $1 WHERE id = $2", [.text(userID), .text(folderID)])
            try c.execute("DELETE FROM vfolder_permissions WHERE vfolder_id = $1 AND user_id = $2", [.text(folderID), .text(userID)])
        }
    }

    // MARK: - Sharing

    /// Invites users (by email) to a user folder. Already-shared users and the owner are skipped.
    public func inviteToVFolder(_ folderID: String, inviter: String, inviteeEmails: [String], permission: VFolderPermission,
                                now: Int64 = Clock.nowMicros()) throws -> [String] {
        try database.transaction { c in
            var invited: [String] = []
            for email in inviteeEmails {
                guard let user = try c.query("SELECT id FROM users WHERE email = $1", [.text(email)]).first?.string("id") else {
                    throw StoreError(.notFound, "no user with the email '\(email)'")
                }
                let pending = try c.query("SELECT id FROM vfolder_invitations WHERE vfolder_id = $1 AND invitee = $2 AND state = 'pending'",
                                          [.text(folderID), .text(email)])
                let shared = try c.query("SELECT user_id FROM vfolder_permissions WHERE vfolder_id = $1 AND user_id = $2", [.text(folderID), .text(user)])
                guard pending.isEmpty, shared.isEmpty, email != inviter else { continue }
                let id = UUID().uuidString.lowercased()
                try c.execute("""
                    INSERT INTO vfolder_invitations (id, vfolder_id, inviter, invitee, permission, state, created_at)
                    VALUES ($1, $2, $3, $4, $5, 'pending', $6)
                    """, [.text(id), .text(folderID), .text(inviter), .text(email), .text(permission.rawValue), .int(now)])
                invited.append(id)
            }
            return invited
        }
    }

    /// Pending invitations addressed to an email.
    public func pendingInvitations(email: String) throws -> [VFolderInvitation] {
        try database.withConnection { c in
            try c.query("""
                SELECT i.*, v.name AS folder_name FROM vfolder_invitations i JOIN vfolders v ON v.id = i.vfolder_id
                WHERE i.invitee = $1 AND i.state = 'pending' AND v.status = 'ready' ORDER BY i.created_at
                """, [.text(email)]).map { r in
                VFolderInvitation(id: r.string("id") ?? "", folderID: r.string("vfolder_id") ?? "", folderName: r.string("folder_name") ?? "",
                                  inviter: r.string("inviter") ?? "", invitee: r.string("invitee") ?? "",
                                  permission: VFolderPermission(rawValue: r.string("permission") ?? "ro") ?? .readOnly,
                                  state: r.string("state") ?? "", createdAt: r.int("created_at") ?? 0)
            }
        }
    }

    /// Accepts (granting the permission) or rejects an invitation addressed to this user.
    public func answerInvitation(_ id: String, userID: String, email: String, accept: Bool) throws {
        try database.transaction { c in
            guard let r = try c.query("SELECT * FROM vfolder_invitations WHERE id = $1 AND invitee = $2 AND state = 'pending'", [.text(id), .text(email)]).first else {
                throw StoreError(.notFound, "no pending invitation '\(id)' for \(email)")
            }
            try c.execute("UPDATE vfolder_invitations SET state = $1 WHERE id = $2", [.text(accept ? "accepted" : "rejected"), .text(id)])
            if accept {
                try c.execute("INSERT INTO vfolder_permissions (vfolder_id, user_id, permission) VALUES ($1, $2, $3)",
                              [.text(r.string("vfolder_id") ?? ""), .text(userID), .text(r.string("permission") ?? "ro")])
            }
        }
    }
}
