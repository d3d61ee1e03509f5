import ClusterProtocol
import Foundation

/// Whose dotfile it is: a user's own, every member's of a project, every user's of a domain.
public enum DotfileScope: String, Sendable {
    case user, project, domain
}

/// A file written into the home directory of every new kernel of its scope's users.
public struct Dotfile: Sendable, Equatable {
    public var path: String
    public var data: String
    /// Octal permission text as the client sends it (`644`, `0755`).
    public var permission: String

    public init(path: String, data: String, permission: String) {
        (self.path, self.data, self.permission) = (path, data, permission)
    }
}

extension StateStore {
    /// Backend.AI's limits: 100 dotfiles per owner, 64 KiB of data in all.
    public static let maxDotfiles = 100
    public static let maxDotfileBytes = 64 << 10

    /// Parses octal permission text; nil when it is not 3-4 octal digits.
    public static func dotfileMode(_ permission: String) -> Int? {
        guard (3...4).contains(permission.count), let mode = Int(permission, radix: 8), mode <= 0o7777 else { return nil }
        return mode
    }

    public func dotfiles(scope: DotfileScope, owner: String) throws -> [Dotfile] {
        try database.withConnection { c in
            try c.query("SELECT path, data, permission FROM dotfiles WHERE scope = $1 AND owner = $2 ORDER BY path",
                        [.text(scope.rawValue), .text(owner)]).map { r in
                Dotfile(path: r.string("path") ?? "", data: r.string("data") ?? "", permission: r.string("permission") ?? "644")
            }
        }
    }

    /// Creates (`replace`: false) or replaces (`replace`: true) one dotfile, within the limits.
    /// - Throws: `StoreError` `.invalid` (a path outside the home, bad permission, over the
    ///   limits), `.constraint` (creating one that exists), `.notFound` (replacing one that does not).
    public func putDotfile(scope: DotfileScope, owner: String, _ dotfile: Dotfile, replace: Bool) throws {
        guard KernelDotfile.homeRelativePath(dotfile.path) != nil else {
            throw StoreError(.invalid, "path '\(dotfile.path)' must lie in the home directory: relative (.bashrc) or under /home/work/, without '..'")
        }
        guard Self.dotfileMode(dotfile.permission) != nil else {
            throw StoreError(.invalid, "permission must be octal like 644 or 755, not '\(dotfile.permission)'")
        }
        try database.transaction { c in
            let existing = try c.query("SELECT path, data FROM dotfiles WHERE scope = $1 AND owner = $2", [.text(scope.rawValue), .text(owner)])
            let exists = existing.contains { $0.string("path") == dotfile.path }
            if replace, !exists { throw StoreError(.notFound, "no dotfile '\(dotfile.path)'") }
            if !replace, exists { throw StoreError(.constraint, "dotfile '\(dotfile.path)' exists; update it instead") }
            let others = existing.filter { $0.string("path") != dotfile.path }
            guard others.count < Self.maxDotfiles else { throw StoreError(.invalid, "at most \(Self.maxDotfiles) dotfiles per owner") }
            let bytes = others.reduce(dotfile.data.utf8.count) { $0 + ($1.string("data")?.utf8.count ?? 0) }
            guard bytes <= Self.maxDotfileBytes else {
                throw StoreError(.invalid, "dotfiles hold at most \(Self.maxDotfileBytes / 1024) KiB per owner; these would hold \(bytes) bytes")
            }
            try c.execute("DELETE FROM dotfiles WHERE scope = $1 AND owner = $2 AND path = $3", [.text(scope.rawValue), .text(owner), .text(dotfile.path)])
            try c.execute("INSERT INTO dotfiles (scope, owner, path, data, permission) VALUES ($1, $2, $3, $4, $5)",
                          [.text(scope.rawValue), .text(owner), .text(dotfile.path), .text(dotfile.data), .text(dotfile.permission)])
        }
    }

    public func deleteDotfile(scope: DotfileScope, owner: String, path: String) throws {
        try database.transaction { c in
            guard try c.execute("DELETE FROM dotfiles WHERE scope = $1 AND owner = $2 AND path = $3",
                                [.text(scope.rawValue), .text(owner), .text(path)]) > 0 else {
                throw StoreError(.notFound, "no dotfile '\(path)'")
            }
        }
    }

    /// What a session's kernels get: the domain's dotfiles, then the project's, then the
    /// user's own; a later one replaces an earlier one at the same path.
    public func kernelDotfiles(session id: String) throws -> [KernelDotfile] {
        guard let detail = try sessionDetail(id: id) else { return [] }
        var byPath: [String: Dotfile] = [:]
        for (scope, owner) in [(DotfileScope.domain, detail.domain), (.project, detail.projectID), (.user, detail.userID)] {
            for dotfile in try dotfiles(scope: scope, owner: owner) { byPath[dotfile.path] = dotfile }
        }
        return byPath.keys.sorted().compactMap { path in
            let dotfile = byPath[path]!
            return Self.dotfileMode(dotfile.permission).map { KernelDotfile(path: dotfile.path, data: dotfile.data, mode: $0) }
        }
    }
}
