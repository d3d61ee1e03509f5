import ClusterProtocol
import Foundation
import Hummingbird
import StateStore

/// Dotfiles of a user (`/user-config/dotfiles`), a project (`/group-config/dotfiles`) and a
/// domain (`/domain-config/dotfiles`), as the official client's `dotfile` commands use them:
/// GET lists (or with `?path=` reads one), POST creates, PATCH replaces, DELETE removes. Each
/// new kernel gets its domain's, then its project's, then its user's, in its home directory.
extension ManagerAPI {
    /// The scope and owner a dotfile request names, after checking the caller may read it (or,
    /// with `write`, change it): users their own; project members read their project's; users
    /// read their domain's; admins change their domain's and its projects'; superadmins any.
    func dotfileOwner(_ scope: DotfileScope, caller: Caller, parameters: [String: Any], write: Bool) async throws -> String {
        let domain = parameters["domain"] as? String ?? caller.domain
        switch scope {
        case .user:
            guard let key = parameters["owner_access_key"] as? String, key != caller.accessKey else { return caller.identity.keypair.userID }
            guard caller.isAdmin, let owner = try await store.run({ try $0.identity(accessKey: key) }),
                  caller.role == .superadmin || owner.domainName == caller.domain else {
                throw APIError.forbidden("only admins act on another keypair's dotfiles, and only in their domain")
            }
            return owner.keypair.userID
        case .project:
            guard let group = parameters["group"] as? String else { throw APIError.invalidParams("group (the project's id or name) is required") }
            guard caller.role == .superadmin || domain == caller.domain else { throw APIError.forbidden("that project is not in your domain") }
            let userID = caller.identity.keypair.userID
            let (project, member) = try await store.run { store -> (Project?, Bool) in
                let project = try store.projects(domain: domain).first { $0.id == group || $0.name == group }
                return (project, try project.map { p in try store.projects(ofUser: userID).contains { $0.id == p.id } } ?? false)
            }
            guard let project else { throw APIError.notFound("No such project.", "no project '\(group)' in domain '\(domain)'") }
            if write ? !caller.isAdmin : !(caller.isAdmin || member) {
                throw APIError.forbidden(write ? "only admins change a project's dotfiles" : "you are not a member of project '\(project.name)'")
            }
            return project.id
        case .domain:
            guard caller.role == .superadmin || domain == caller.domain else { throw APIError.forbidden("only your own domain's dotfiles ('\(caller.domain)')") }
            if write, !caller.isAdmin { throw APIError.forbidden("only admins change a domain's dotfiles") }
            return domain
        }
    }

    var dotfileRoutes: [RouteSpec] {
        let scopes: [(String, DotfileScope)] = [("/user-config/dotfiles", .user), ("/group-config/dotfiles", .project), ("/domain-config/dotfiles", .domain)]
        let keys = ["path", "data", "permission", "owner_access_key", "group", "domain"]
        return scopes.flatMap { path, scope in
            [
                RouteSpec(method: .get, path: path, summary: "List the \(scope.rawValue)'s dotfiles, or one with ?path=", access: .user, bodyKeys: nil) { request, _ in
                    let caller = try await auth.authenticate(request)
                    let query = request.uri.queryParameters
                    var parameters: [String: Any] = [:]
                    for key in ["owner_access_key", "onwer_access_key", "group", "domain"] { if let value = query.get(key) { parameters[key] = value } }
                    // 23.9.10's client misspells the key when listing a user's dotfiles.
                    if let misspelt = parameters["onwer_access_key"] { parameters["owner_access_key"] = misspelt }
                    let owner = try await dotfileOwner(scope, caller: caller, parameters: parameters, write: false)
                    let all = try await store.run { try $0.dotfiles(scope: scope, owner: owner) }
                    let render: (Dotfile) -> [String: Any] = { ["path": $0.path, "permission": $0.permission, "data": $0.data] }
                    if let wanted = query.get("path") {
                        guard let found = all.first(where: { $0.path == wanted }) else { throw APIError.notFound("No such dotfile.", "no dotfile '\(wanted)'") }
                        return try Self.jsonObject(render(found))
                    }
                    return try Self.jsonObject(all.map(render))
                },
                RouteSpec(method: .post, path: path, summary: "Create a \(scope.rawValue) dotfile (path, data, permission)", access: .user, bodyKeys: keys) { request, _ in
                    try await putDotfile(scope, request: request, keys: keys, replace: false)
                },
                RouteSpec(method: .patch, path: path, summary: "Replace a \(scope.rawValue) dotfile (path, data, permission)", access: .user, bodyKeys: keys) { request, _ in
                    try await putDotfile(scope, request: request, keys: keys, replace: true)
                },
                RouteSpec(method: .delete, path: path, summary: "Delete a \(scope.rawValue) dotfile (?path=)", access: .user, bodyKeys: nil) { request, _ in
                    let caller = try await auth.authenticate(request)
                    let query = request.uri.queryParameters
                    var parameters: [String: Any] = [:]
                    for key in ["owner_access_key", "group", "domain"] { if let value = query.get(key) { parameters[key] = value } }
                    guard let wanted = query.get("path") else { throw APIError.invalidParams("give the dotfile as ?path=") }
                    let owner = try await dotfileOwner(scope, caller: caller, parameters: parameters, write: true)
                    try await store.run { try $0.deleteDotfile(scope: scope, owner: owner, path: wanted) }
                    return try Self.jsonObject([:] as [String: Any])
                },
            ]
        }
    }

    private func putDotfile(_ scope: DotfileScope, request: Request, keys: [String], replace: Bool) async throws -> Response {
        let caller = try await auth.authenticate(request)
        let body = try await object(request, allowed: keys)
        guard let path = body["path"] as? String, let data = body["data"] as? String else {
            throw APIError.invalidParams("path and data are required")
        }
        let permission = body["permission"] as? String ?? "644"
        let owner = try await dotfileOwner(scope, caller: caller, parameters: body, write: true)
        try await store.run { try $0.putDotfile(scope: scope, owner: owner, Dotfile(path: path, data: data, permission: permission), replace: replace) }
        return try Self.jsonObject([:] as [String: Any])
    }
}
