import ClusterProtocol
import ConfigFile
import Foundation
import Hummingbird
import Identity
import StateStore

/// Backend.AI's vfolder API (`/folders...`, §9 of the wire notes): hosts, create, list, info,
/// file operations through the storage proxy, transfer tokens, the trash, and sharing.
extension ManagerAPI {
    var storageProxies: StorageProxyClient { StorageProxyClient(proxies: config.storageProxies) }

    /// The hosts ("proxy:volume") this manager knows, from every proxy's volume list.
    func vfolderHosts() async -> [(host: String, info: VolumeSummary)] {
        var hosts: [(String, VolumeSummary)] = []
        for name in config.storageProxies.keys.sorted() {
            guard let reply = try? await storageProxies.volumes(name) else { continue }
            for volume in reply.volumes { hosts.append(("\(name):\(volume.name)", volume)) }
        }
        return hosts
    }

    /// A folder the caller can see (by name or id); `need` is the least permission required.
    func visibleFolder(_ nameOrID: String, caller: Caller, need: VFolderPermission = .readOnly) async throws -> VisibleVFolder {
        let userID = caller.identity.keypair.userID
        guard let found = try await store.run({ try $0.visibleVFolder(nameOrID, userID: userID) }) else {
            throw APIError(.notFound, "vfolder-not-found", "No such virtual folder.", "no folder '\(nameOrID)' visible to \(caller.identity.userEmail)")
        }
        guard found.permission >= need else {
            throw APIError.forbidden("folder '\(found.folder.name)' is shared with you as '\(found.permission.rawValue)'; this needs '\(need.rawValue)'")
        }
        return found
    }

    /// The project folder and emails a share or unshare names, once the caller is found to be
    /// an admin of the folder's domain.
    func projectFolderSharing(_ request: Request, context: ManagerRequestContext, keys: [String]) async throws -> (String, [String], [String: Any]) {
        let caller = try await auth.authenticate(request)
        let v = try await visibleFolder(try context.parameters.require("name"), caller: caller)
        guard v.folder.ownership == "group" else { throw APIError.invalidParams("share sets permissions on project folders; invite users to a user folder") }
        guard caller.isAdmin else { throw APIError.forbidden("only admins change members' permissions on a project folder") }
        let body = try await object(request, allowed: keys)
        guard let emails = body["emails"] as? [String], !emails.isEmpty else { throw APIError.invalidParams("'emails' (a list) is required") }
        return (v.folder.id, emails, body)
    }

    /// The storage-proxy message naming one folder.
    func folderTarget(_ f: VFolder) -> FolderTarget { FolderTarget(volume: f.volumeName, folder: f.id) }

    /// A protocol message as the JSON value the Backend.AI API embeds (same keys).
    static func jsonValue(_ message: some Encodable) throws -> Any {
        try JSONSerialization.jsonObject(with: try JSONEncoder().encode(message))
    }

    static func folderInfo(_ v: VisibleVFolder, usage: FolderUsage? = nil) -> [String: Any] {
        let f = v.folder
        var info: [String: Any] = [
            "id": f.id, "name": f.name, "host": f.host, "usage_mode": f.usageMode, "permission": v.permission.rawValue,
            "is_owner": v.isOwner, "status": f.status, "type": f.ownership, "ownership_type": f.ownership,
            "user": f.userID.map { $0 as Any } ?? NSNull(), "group": f.projectID.map { $0 as Any } ?? NSNull(),
            "creator": f.userID.map { $0 as Any } ?? NSNull(), "cloneable": f.cloneable, "max_size": f.quotaBytes,
            "created_at": CivilTime.iso8601(micros: f.createdAt), "shared_via": v.via,
        ]
        if let usage {
            info["numFiles"] = usage.fileCount
            info["num_files"] = usage.fileCount
            info["used_bytes"] = usage.usedBytes
            info["cur_size"] = usage.usedBytes
        } else {
            info["numFiles"] = 0
        }
        return info
    }

    /// A JSON body as a dictionary (GET and DELETE carry bodies in Backend.AI's API).
    func object(_ request: Request, allowed: [String]) async throws -> [String: Any] {
        var request = request
        let buffer = try await request.collectBody(upTo: config.maxBodyBytes)
        guard buffer.readableBytes > 0 else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any] else {
            throw APIError.invalidParams("the request body must be a JSON object")
        }
        let unknown = object.keys.filter { !allowed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw APIError.invalidParams("unknown key\(unknown.count > 1 ? "s" : "") \(unknown.map { "'\($0)'" }.joined(separator: ", ")); accepted keys: \(allowed.joined(separator: ", "))")
        }
        return object
    }

    static func required(_ body: [String: Any], _ key: String) throws -> String {
        guard let value = body[key] as? String, !value.isEmpty else { throw APIError.invalidParams("'\(key)' is required") }
        return value
    }

    /// A byte amount from a JSON number or a size string ("10m", "1g").
    static func bytes(_ value: Any?) throws -> Int64 {
        switch value {
        case nil, is NSNull: return 0
        case let n as Int: return Int64(n)
        case let s as String:
            if s.isEmpty { return 0 }
            guard let amount = ByteSize.parse(s) else { throw APIError.invalidParams("'\(s)' is not a size (e.g. 1073741824, 10m, 5g)") }
            return amount
        default: throw APIError.invalidParams("a size must be a number of bytes or a string like 10m")
        }
    }

    var vfolderRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/folders/_/allowed_types", summary: "Folder ownership types: user and group (project)", access: .user,
                      bodyKeys: nil) { request, _ in
                _ = try await auth.authenticate(request)
                return try Self.jsonObject(["user", "group"])
            },
            RouteSpec(method: .get, path: "/folders/_/all_hosts", summary: "Every vfolder host of the cluster (admin)", access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let hosts = await vfolderHosts().map(\.host)
                let fallback: Any = (config.defaultVFolderHost ?? hosts.first).map { $0 as Any } ?? NSNull()
                return try Self.jsonObject(["default": fallback, "allowed": hosts])
            },
            RouteSpec(method: .get, path: "/folders/_/shared", summary: "Users' own permissions on folders (admin; {vfolder_id} for one folder)",
                      access: .admin, bodyKeys: ["vfolder_id"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let folder = try await object(request, allowed: ["vfolder_id"])["vfolder_id"] as? String
                let domain = caller.role == .superadmin ? nil : caller.domain
                let data = try await store.run { store -> Data in
                    let users = try domain.map { Set(try store.users(domain: $0).map(\.id)) }
                    let owners = Dictionary(try store.users(domain: nil).map { ($0.id, $0.email) }, uniquingKeysWith: { a, _ in a })
                    let shares = try store.vfolderShares(folderID: folder.map { $0.replacingOccurrences(of: "-", with: "") })
                        .filter { users == nil || users!.contains($0.userID) }
                    let rows: [[String: Any]] = shares.map { s in
                        ["vfolder_id": s.folder.id, "vfolder_name": s.folder.name, "status": s.folder.status,
                         "owner": s.folder.userID.flatMap { owners[$0] } ?? s.folder.projectID ?? "", "type": s.folder.ownership,
                         "shared_to": ["uuid": s.userID, "email": s.email], "perm": s.permission.rawValue]
                    }
                    return try JSONSerialization.data(withJSONObject: ["shared": rows])
                }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            },
            RouteSpec(method: .post, path: "/folders/_/shared", summary: "Change (perm) or remove (perm null) a user's own permission on a folder (admin)",
                      access: .admin, bodyKeys: ["vfolder", "user", "perm"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let body = try await object(request, allowed: ["vfolder", "user", "perm"])
                let folder = try Self.required(body, "vfolder").replacingOccurrences(of: "-", with: "")
                let user = try Self.required(body, "user")
                let text = body["perm"] as? String
                let permission = text.flatMap(VFolderPermission.init(rawValue:))
                if let text, permission == nil { throw APIError.invalidParams("perm must be ro, rw or wd, or null to remove, not '\(text)'") }
                try await store.run { store in
                    let target = try store.user(id: user)
                    guard caller.role == .superadmin || target?.domainName == caller.domain else {
                        throw StoreError(.notFound, "no user '\(user)' in your domain")
                    }
                    try store.setVFolderShare(folder, userID: user, permission: permission)
                }
                return try Self.jsonObject(["msg": permission == nil ? "removed" : "updated"])
            },
            RouteSpec(method: .post, path: "/folders/_/change-ownership", summary: "Give a user folder to another user of its domain (admin)",
                      access: .admin, bodyKeys: ["vfolder", "user_email"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let body = try await object(request, allowed: ["vfolder", "user_email"])
                let folder = try Self.required(body, "vfolder").replacingOccurrences(of: "-", with: "")
                let email = try Self.required(body, "user_email")
                try await store.run { store in
                    guard let user = try store.user(email: email), caller.role == .superadmin || user.domainName == caller.domain else {
                        throw StoreError(.notFound, "no user '\(email)' in your domain")
                    }
                    try store.changeVFolderOwner(folder, to: user.id)
                }
                return try Self.jsonObject(["msg": "the folder now belongs to \(email)"])
            },
            RouteSpec(method: .get, path: "/folders/_/hosts", summary: "Vfolder hosts (proxy:volume) and the default", access: .user, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticate(request)
                let hosts = await vfolderHosts()
                let info = Dictionary(try hosts.map { ($0.host, try Self.jsonValue($0.info)) }, uniquingKeysWith: { a, _ in a })
                let fallback: Any = config.defaultVFolderHost ?? hosts.first?.host ?? NSNull()
                return try Self.jsonObject(["default": fallback, "allowed": hosts.map(\.host), "volume_info": info])
            },
            RouteSpec(method: .post, path: "/folders", summary: "Create a virtual folder", access: .user,
                      bodyKeys: ["name", "host", "unmanaged_path", "group", "usage_mode", "permission", "quota", "cloneable"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await object(request, allowed: ["name", "host", "unmanaged_path", "group", "usage_mode", "permission", "quota", "cloneable"])
                try await refuseWhileFrozen(caller)
                return try await createFolder(body, caller: caller)
            },
            RouteSpec(method: .get, path: "/folders", summary: "List the folders you can see (?include_trash=true: your folders in the trash too)",
                      access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let userID = caller.identity.keypair.userID
                let trash = ["true", "1", "yes"].contains(request.uri.queryParameters.get("include_trash")?.lowercased() ?? "")
                let folders = try await store.run { try $0.visibleVFolders(userID: userID, includeTrash: trash) }
                let data = try JSONSerialization.data(withJSONObject: folders.map { Self.folderInfo($0) }, options: [.sortedKeys, .withoutEscapingSlashes])
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            },
            RouteSpec(method: .get, path: "/folders/invitations/list", summary: "Pending invitations for you", access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let email = caller.identity.userEmail
                let invitations = try await store.run { try $0.pendingInvitations(email: email) }
                return try Self.jsonObject(["invitations": invitations.map {
                    ["id": $0.id, "vfolder_id": $0.folderID, "vfolder_name": $0.folderName, "inviter": $0.inviter, "invitee": $0.invitee,
                     "perm": $0.permission.rawValue, "state": $0.state, "created_at": CivilTime.iso8601(micros: $0.createdAt)]
                }])
            },
            RouteSpec(method: .post, path: "/folders/invitations/accept", summary: "Accept an invitation", access: .user, bodyKeys: ["inv_id"]) { request, _ in
                try await answer(request, accept: true)
            },
            RouteSpec(method: .delete, path: "/folders/invitations/delete", summary: "Reject an invitation", access: .user, bodyKeys: ["inv_id"]) { request, _ in
                try await answer(request, accept: false)
            },
            RouteSpec(method: .post, path: "/folders/purge", summary: "Delete a folder in the trash for good", access: .user, bodyKeys: ["id"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let id = try Self.required(try await object(request, allowed: ["id"]), "id")
                let folder = try await trashedFolder(id, caller: caller)
                try await storageProxies.call(folder.proxyName, .deleteFolder, folderTarget(folder))
                try await store.run { try $0.deleteVFolderRecord(folder.id) }
                return Response(status: .noContent)
            },
            RouteSpec(method: .post, path: "/folders/restore-from-trash", summary: "Restore a folder from the trash", access: .user, bodyKeys: ["id"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let id = try Self.required(try await object(request, allowed: ["id"]), "id")
                let folder = try await trashedFolder(id, caller: caller)
                try await store.run { try $0.setVFolderStatus(folder.id, "ready") }
                return Response(status: .noContent)
            },
            RouteSpec(method: .get, path: "/folders/:name", summary: "Folder info", access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller)
                let usage = try? await storageProxies.call(v.folder.proxyName, .folderUsage, folderTarget(v.folder), reply: FolderUsage.self)
                return try Self.jsonObject(Self.folderInfo(v, usage: usage))
            },
            RouteSpec(method: .delete, path: "/folders/:name", summary: "Move a folder to the trash", access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .writeDelete)
                guard v.isOwner || (v.folder.ownership == "group" && caller.isAdmin) else {
                    throw APIError.forbidden("only the owner (or an admin, for a project folder) deletes '\(v.folder.name)'")
                }
                try await store.run { try $0.setVFolderStatus(v.folder.id, "delete-pending") }
                return Response(status: .noContent)
            },
            RouteSpec(method: .post, path: "/folders/:name/mkdir", summary: "Make a directory", access: .user, bodyKeys: ["path", "parents", "exist_ok"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .readWrite)
                let body = try await object(request, allowed: ["path", "parents", "exist_ok"])
                let single = body["path"] is [String] ? "" : try Self.required(body, "path")
                let paths: [String] = (body["path"] as? [String]) ?? [single]
                for path in paths {
                    try await storageProxies.call(v.folder.proxyName, .makeDirectory, MakeDirectoryRequest(
                        volume: v.folder.volumeName, folder: v.folder.id, path: path,
                        parents: body["parents"] as? Bool ?? false, existOK: body["exist_ok"] as? Bool ?? false))
                }
                return try Self.jsonObject([:], status: .created)
            },
            RouteSpec(method: .get, path: "/folders/:name/files", summary: "List a directory ({path}; files is a JSON string)", access: .user,
                      bodyKeys: ["path"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller)
                let body = try await object(request, allowed: ["path"])
                let path = body["path"] as? String ?? request.uri.queryParameters.get("path") ?? "."
                let reply = try await storageProxies.call(v.folder.proxyName, .listFiles,
                                                          ListFilesRequest(volume: v.folder.volumeName, folder: v.folder.id, path: path), reply: FileList.self)
                let files: [[String: Any]] = reply.items.map { ["filename": $0.name, "size": $0.size, "mode": $0.mode, "type": $0.type,
                                                               "ctime": $0.ctime, "atime": $0.atime, "mtime": $0.mtime] }
                let encoded = String(decoding: try JSONSerialization.data(withJSONObject: files, options: [.sortedKeys]), as: UTF8.self)
                return try Self.jsonObject(["items": try Self.jsonValue(reply.items), "files": encoded])
            },
            RouteSpec(method: .post, path: "/folders/:name/rename-file", summary: "Rename a file", access: .user,
                      bodyKeys: ["target_path", "new_name", "is_dir"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .readWrite)
                let body = try await object(request, allowed: ["target_path", "new_name", "is_dir"])
                try await storageProxies.call(v.folder.proxyName, .renameFile, RenameFileRequest(
                    volume: v.folder.volumeName, folder: v.folder.id, path: try Self.required(body, "target_path"), newName: try Self.required(body, "new_name")))
                return try Self.jsonObject([:])
            },
            RouteSpec(method: .post, path: "/folders/:name/move-file", summary: "Move a file within the folder", access: .user, bodyKeys: ["src", "dst"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .readWrite)
                let body = try await object(request, allowed: ["src", "dst"])
                try await storageProxies.call(v.folder.proxyName, .moveFile, MoveFileRequest(
                    volume: v.folder.volumeName, folder: v.folder.id, source: try Self.required(body, "src"), destination: try Self.required(body, "dst")))
                return try Self.jsonObject([:])
            },
            RouteSpec(method: .delete, path: "/folders/:name/delete-files", summary: "Delete files ({files, recursive})", access: .user,
                      bodyKeys: ["files", "recursive"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .readWrite)
                let body = try await object(request, allowed: ["files", "recursive"])
                guard let files = body["files"] as? [String], !files.isEmpty else { throw APIError.invalidParams("'files' (a list of paths) is required") }
                try await storageProxies.call(v.folder.proxyName, .deleteFiles, DeleteFilesRequest(
                    volume: v.folder.volumeName, folder: v.folder.id, paths: files, recursive: body["recursive"] as? Bool ?? false))
                return try Self.jsonObject([:])
            },
            RouteSpec(method: .post, path: "/folders/:name/request-upload",
                      summary: "A token to upload one file to the storage proxy (tus), or a tar archive to unpack into a directory (archive: true)", access: .user,
                      bodyKeys: ["path", "size", "archive"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .readWrite)
                let body = try await object(request, allowed: ["path", "size", "archive"])
                guard let size = UInt64(exactly: try Self.bytes(body["size"])) else { throw APIError.invalidParams("'size' must be a non-negative number of bytes") }
                if body["archive"] != nil, !(body["archive"] is Bool) { throw APIError.invalidParams("'archive' must be true or false") }
                let reply = try await storageProxies.call(v.folder.proxyName, .requestUpload, UploadTicketRequest(
                    volume: v.folder.volumeName, folder: v.folder.id, path: try Self.required(body, "path"), size: size,
                    archive: body["archive"] as? Bool), reply: TransferTicket.self)
                return try Self.jsonObject(["token": reply.token, "url": reply.url])
            },
            RouteSpec(method: .post, path: "/folders/:name/request-download", summary: "A token to download a file (or a directory as tar)", access: .user,
                      bodyKeys: ["path", "archive"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller)
                let body = try await object(request, allowed: ["path", "archive"])
                let target = DownloadTicketRequest(volume: v.folder.volumeName, folder: v.folder.id, path: try Self.required(body, "path"),
                                                   archive: body["archive"] as? Bool)
                let reply = try await storageProxies.call(v.folder.proxyName, .requestDownload, target, reply: TransferTicket.self)
                return try Self.jsonObject(["token": reply.token, "url": reply.url])
            },
            RouteSpec(method: .post, path: "/folders/:name/invite", summary: "Share a folder you own ({perm, user_ids: emails})", access: .user,
                      bodyKeys: ["perm", "user_ids", "emails"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .writeDelete)
                guard v.isOwner, v.folder.ownership == "user" else { throw APIError.forbidden("only the owner of a user folder invites others; project folders are shared with the project") }
                let body = try await object(request, allowed: ["perm", "user_ids", "emails"])
                guard let permission = VFolderPermission(rawValue: body["perm"] as? String ?? "rw") else { throw APIError.invalidParams("perm must be ro, rw or wd") }
                guard let emails = (body["user_ids"] ?? body["emails"]) as? [String], !emails.isEmpty else {
                    throw APIError.invalidParams("'user_ids' (a list of emails) is required")
                }
                let inviter = caller.identity.userEmail
                let invited = try await store.run { try $0.inviteToVFolder(v.folder.id, inviter: inviter, inviteeEmails: emails, permission: permission) }
                return try Self.jsonObject(["invited_ids": invited], status: .created)
            },
            RouteSpec(method: .post, path: "/folders/:name/rename", summary: "Rename a folder you own (new_name)", access: .user,
                      bodyKeys: ["new_name"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .writeDelete)
                guard v.isOwner || (v.folder.ownership == "group" && caller.isAdmin) else {
                    throw APIError.forbidden("only the owner renames a user folder (admins rename project folders)")
                }
                let name = try Self.required(try await object(request, allowed: ["new_name"]), "new_name")
                try await store.run { try $0.renameVFolder(v.folder.id, to: name) }
                return Response(status: .created)
            },
            RouteSpec(method: .post, path: "/folders/:name/update-options", summary: "Change a folder's default permission or cloneability (owner)",
                      access: .user, bodyKeys: ["permission", "cloneable"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller, need: .writeDelete)
                guard v.isOwner || (v.folder.ownership == "group" && caller.isAdmin) else { throw APIError.forbidden("only the folder's owner changes its options") }
                let body = try await object(request, allowed: ["permission", "cloneable"])
                let text = body["permission"] as? String
                let permission = text.flatMap(VFolderPermission.init(rawValue:))
                if let text, permission == nil { throw APIError.invalidParams("permission must be ro, rw or wd, not '\(text)'") }
                let cloneable = body["cloneable"] as? Bool
                try await store.run { try $0.updateVFolderOptions(v.folder.id, permission: permission, cloneable: cloneable) }
                return Response(status: .created)
            },
            RouteSpec(method: .post, path: "/folders/:name/share", summary: "Give project members their own permission on a project folder (admins)",
                      access: .user, bodyKeys: ["permission", "emails"]) { request, context in
                let (folder, emails, body) = try await projectFolderSharing(request, context: context, keys: ["permission", "emails"])
                guard let permission = VFolderPermission(rawValue: body["permission"] as? String ?? "rw") else {
                    throw APIError.invalidParams("permission must be ro, rw or wd")
                }
                let shared = try await store.run { try $0.setVFolderPermission(folder, emails: emails, permission: permission) }
                return try Self.jsonObject(["shared_emails": shared], status: .created)
            },
            RouteSpec(method: .delete, path: "/folders/:name/unshare", summary: "Take back members' own permissions on a project folder (admins)",
                      access: .user, bodyKeys: ["emails"]) { request, context in
                let (folder, emails, _) = try await projectFolderSharing(request, context: context, keys: ["emails"])
                let unshared = try await store.run { try $0.setVFolderPermission(folder, emails: emails, permission: nil) }
                return try Self.jsonObject(["unshared_emails": unshared])
            },
            RouteSpec(method: .post, path: "/folders/:name/leave", summary: "Stop using a folder shared with you (owners: ?shared_user_uuid removes a user)",
                      access: .user, bodyKeys: ["shared_user_uuid"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller)
                guard v.folder.ownership == "user" else { throw APIError.invalidParams("a project folder cannot be left; its project's members use it") }
                let body = try await object(request, allowed: ["shared_user_uuid"])
                let user: String
                if let other = body["shared_user_uuid"] as? String, other != caller.identity.keypair.userID {
                    guard v.isOwner else { throw APIError.forbidden("only the owner removes others from a folder") }
                    user = other
                } else {
                    guard !v.isOwner else { throw APIError.invalidParams("you own folder '\(v.folder.name)'; delete it instead of leaving it") }
                    user = caller.identity.keypair.userID
                }
                try await store.run { try $0.leaveVFolder(v.folder.id, userID: user) }
                return try Self.jsonObject(["msg": "left the shared folder"])
            },
            RouteSpec(method: .post, path: "/folders/:name/clone", summary: "Clone a folder (a snapshot where the backend can)", access: .user,
                      bodyKeys: ["target_name", "target_host", "usage_mode", "permission", "cloneable"]) { request, context in
                let caller = try await auth.authenticate(request)
                let v = try await visibleFolder(try context.parameters.require("name"), caller: caller)
                guard v.isOwner || v.folder.cloneable else { throw APIError.forbidden("folder '\(v.folder.name)' is not cloneable") }
                let body = try await object(request, allowed: ["target_name", "target_host", "usage_mode", "permission", "cloneable"])
                let name = try Self.required(body, "target_name")
                guard (body["target_host"] as? String ?? v.folder.host) == v.folder.host else {
                    throw APIError.invalidParams("clones stay on the source's host (\(v.folder.host))")
                }
                let userID = caller.identity.keypair.userID
                try await checkFolderLimits(caller: caller, quota: v.folder.quotaBytes)
                let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
                try await storageProxies.call(v.folder.proxyName, .cloneFolder, CloneFolderRequest(volume: v.folder.volumeName, source: v.folder.id, target: id))
                let source = v.folder
                let usageMode = body["usage_mode"] as? String ?? source.usageMode
                let cloneable = body["cloneable"] as? Bool ?? false
                let clone: VFolder
                do {
                    clone = try await store.run {
                        try $0.createVFolder(id: id, name: name, host: source.host, quotaBytes: source.quotaBytes, userID: userID, projectID: nil,
                                             usageMode: usageMode, cloneable: cloneable)
                    }
                } catch {
                    try? await storageProxies.call(source.proxyName, .deleteFolder, FolderTarget(volume: source.volumeName, folder: id))
                    throw error
                }
                return try Self.jsonObject(Self.folderInfo(VisibleVFolder(folder: clone, permission: .writeDelete, isOwner: true, via: "owner")), status: .created)
            },
        ]
    }

    func answer(_ request: Request, accept: Bool) async throws -> Response {
        let caller = try await auth.authenticate(request)
        let id = try Self.required(try await object(request, allowed: ["inv_id"]), "inv_id")
        let (userID, email) = (caller.identity.keypair.userID, caller.identity.userEmail)
        try await store.run { try $0.answerInvitation(id, userID: userID, email: email, accept: accept) }
        return try Self.jsonObject(["msg": accept ? "accepted" : "rejected"])
    }

    /// A folder in the trash that the caller may purge or restore (its owner, or an admin).
    func trashedFolder(_ id: String, caller: Caller) async throws -> VFolder {
        let userID = caller.identity.keypair.userID
        guard let folder = try await store.run({ try $0.vfolder(id: id) }), folder.status == "delete-pending",
              folder.userID == userID || caller.isAdmin else {
            throw APIError(.notFound, "vfolder-not-found", "No such folder in the trash.", "no folder '\(id)' of yours is in the trash (delete it first)")
        }
        return folder
    }

    /// The keypair policy's folder count and size limits.
    func checkFolderLimits(caller: Caller, quota: Int64) async throws {
        let userID = caller.identity.keypair.userID
        let policyName = caller.identity.keypair.resourcePolicy
        let (owned, policy) = try await store.run { store in
            (try store.ownedVFolderCount(userID: userID), try store.resourcePolicies(scope: .keypair).first { $0.name == policyName })
        }
        if let policy, policy.maxVfolderCount > 0, owned >= policy.maxVfolderCount {
            throw APIError(.badRequest, "vfolder-count-limit", "Too many folders.", "you own \(owned) folders (the trash included), your policy's limit (max_vfolder_count \(policy.maxVfolderCount)); purge some")
        }
        if let policy, policy.maxVfolderSize > 0, quota > policy.maxVfolderSize {
            throw APIError(.badRequest, "vfolder-size-limit", "The quota is too large.", "quota \(quota) bytes is over your policy's max_vfolder_size \(policy.maxVfolderSize)")
        }
    }

    func createFolder(_ body: [String: Any], caller: Caller) async throws -> Response {
        let name = try Self.required(body, "name")
        guard body["unmanaged_path"] == nil || body["unmanaged_path"] is NSNull else {
            throw APIError.invalidParams("unmanaged paths are not supported; create a managed folder")
        }
        let hosts = await vfolderHosts().map(\.host)
        let host = body["host"] as? String ?? config.defaultVFolderHost ?? hosts.first ?? ""
        guard hosts.contains(host) else {
            throw APIError.invalidParams("unknown vfolder host '\(host)'; usable hosts: \(hosts.joined(separator: ", "))")
        }
        guard let permission = VFolderPermission(rawValue: body["permission"] as? String ?? "rw") else { throw APIError.invalidParams("permission must be ro, rw or wd") }
        let usageMode = body["usage_mode"] as? String ?? "general"
        guard ["general", "model", "data"].contains(usageMode) else { throw APIError.invalidParams("usage_mode must be general, model or data") }
        var quota = try Self.bytes(body["quota"])
        guard quota >= 0 else { throw APIError.invalidParams("'quota' must be a non-negative number of bytes") }
        let userID = caller.identity.keypair.userID
        var projectID: String?
        if let group = body["group"] as? String, !group.isEmpty {
            let domain = caller.domain
            guard let project = try await store.run({ try $0.projects(domain: domain).first { $0.name == group || $0.id == group } }) else {
                throw APIError.notFound("No such project.", "no project '\(group)' in domain '\(domain)'")
            }
            guard caller.isAdmin else { throw APIError.forbidden("only admins create project folders") }
            projectID = project.id
        } else {
            try await checkFolderLimits(caller: caller, quota: quota)
            // The policy's size limit also caps folders created without a quota.
            let policyName = caller.identity.keypair.resourcePolicy
            if quota == 0, let max = try await store.run({ try $0.resourcePolicies(scope: .keypair).first { $0.name == policyName }?.maxVfolderSize }), max > 0 {
                quota = max
            }
        }
        let proxy = String(host.split(separator: ":", maxSplits: 1).first ?? "")
        let volume = String(host.split(separator: ":", maxSplits: 1).last ?? "")
        let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let owner = projectID
        let finalQuota = quota
        let cloneable = body["cloneable"] as? Bool ?? false
        // Record first (name uniqueness), then create on the proxy; undo the record if that fails.
        let folder = try await store.run {
            try $0.createVFolder(id: id, name: name, host: host, quotaBytes: finalQuota, userID: owner == nil ? userID : nil, projectID: owner,
                                 permission: permission, usageMode: usageMode, cloneable: cloneable)
        }
        do {
            try await storageProxies.call(proxy, .createFolder, CreateFolderRequest(volume: volume, folder: id, quota: UInt64(clamping: quota)))
        } catch {
            try? await store.run { try $0.deleteVFolderRecord(id) }
            throw error
        }
        let view = VisibleVFolder(folder: folder, permission: owner == nil ? .writeDelete : permission, isOwner: owner == nil, via: owner == nil ? "owner" : "project")
        return try Self.jsonObject(Self.folderInfo(view), status: .created)
    }

    /// Resolves the folders a session asks to mount: visible, ready, and at most the caller's
    /// permission (a requested `ro` lowers it). Targets default to /home/work/<name>.
    func resolveMounts(_ names: [String], map: [String: String], caller: Caller) async throws -> [SessionMount] {
        var mounts: [SessionMount] = []
        for raw in names {
            // "name" or "name:target[:ro]"
            let parts = raw.split(separator: ":").map(String.init)
            guard let name = parts.first, !name.isEmpty else { continue }
            let v = try await visibleFolder(name, caller: caller)
            var target = map[name] ?? (parts.count > 1 ? parts[1] : name)
            if !target.hasPrefix("/") { target = KernelPaths.workDirectory + "/" + target }
            guard !target.split(separator: "/").contains("..") else { throw APIError.invalidParams("mount target '\(target)' must not contain '..'") }
            let hostPath = try await storageProxies.call(v.folder.proxyName, .mountFolder, folderTarget(v.folder), reply: MountedFolder.self).path
            let readOnly = v.permission == .readOnly || (parts.count > 2 && parts[2] == "ro")
            mounts.append(SessionMount(folderID: v.folder.id, name: v.folder.name, hostPath: hostPath, containerPath: target, readOnly: readOnly))
        }
        return mounts
    }
}
