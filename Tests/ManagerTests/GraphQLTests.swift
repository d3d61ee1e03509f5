import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
@testable import Manager
import StateStore
import Testing
import TestSupport

/// `POST /admin/gql`: the documents the official client sends, field order as queried,
/// role checks on every root, and limits on hostile queries.
@Suite struct GraphQLTests {
    /// `variables` is JSON text (the test's closures must stay Sendable).
    static func query(_ client: some TestClientProtocol, _ document: String, variables: String = "{}", keys: (String, String)) async throws -> (HTTPResponse.Status, String) {
        let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [document]), as: UTF8.self).dropFirst().dropLast()
        let body = Data("{\"query\": \(quoted), \"variables\": \(variables)}".utf8)
        return try await client.execute(uri: "/admin/gql", method: .post,
                                        headers: try SignedAPI.headers(method: .post, path: "/admin/gql", accessKey: keys.0, secretKey: keys.1),
                                        body: ByteBuffer(bytes: body)) { ($0.status, String(buffer: $0.body)) }
    }

    @Test(arguments: Backend.allCases)
    func clientDocumentsOrderAndAuthorisation(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let project = try #require(try store.projects().first)
        let alice = try store.createUser(email: "alice@example.com", password: "alice-password", passwordRounds: 1000)
        let aliceKeys = try store.createKeypair(userID: alice.id)
        let bob = try store.createUser(email: "bob@example.com", password: "bob-password", passwordRounds: 1000)
        let bobKeys = try store.createKeypair(userID: bob.id)
        let mine = try store.createSession(SessionSpec(name: "alice-s", accessKey: aliceKeys.accessKey, userID: alice.id, projectID: project.id,
                                                       image: "img:1", requested: ResourceSlots(["cpu": 1])))
        _ = try store.createSession(SessionSpec(name: "bob-s", accessKey: bobKeys.accessKey, userID: bob.id, projectID: project.id,
                                                image: "img:1", requested: ResourceSlots(["cpu": 1])))
        let app = try managerApp(store)
        let ps = """
            query($limit:Int!, $offset:Int!, $status: String, $access_key: String, $filter: String, $order: String) {
              compute_session_list(
                  limit:$limit, offset:$offset, status:$status, access_key:$access_key, filter:$filter, order:$order) {
                items { name access_key id group_name main_kernel_id image type status status_info status_changed result }
                total_count
              }
            }
            """
        let variables = #"{"status": "PENDING,SCHEDULED,RUNNING", "access_key": null, "filter": null, "order": null, "limit": 20, "offset": 0}"#
        try await app.test(.router) { client in
            // A user sees only their own sessions, with the fields in query order.
            let (status, text) = try await Self.query(client, ps, variables: variables, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(status == .ok)
            #expect(text.contains("alice-s") && !text.contains("bob-s"), "\(text)")
            let order = ["\"name\"", "\"access_key\"", "\"id\"", "\"group_name\"", "\"main_kernel_id\"", "\"image\"", "\"type\"", "\"status\"",
                         "\"status_info\"", "\"status_changed\"", "\"result\""].map { text.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil } && zip(order, order.dropFirst()).allSatisfy { $0! < $1! }, "fields come back in query order: \(text)")
            #expect(text.contains("\"total_count\": 1"))
            // Naming another user's key is refused; admins see everyone.
            let other = variables.replacingOccurrences(of: #""access_key": null"#, with: "\"access_key\": \"\(bobKeys.accessKey)\"")
            let (_, refused) = try await Self.query(client, ps, variables: other, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(refused.contains("errors") && !refused.contains("bob-s"), "\(refused)")
            let (_, all) = try await Self.query(client, ps, variables: variables, keys: (admin.accessKey, admin.secretKey))
            #expect(all.contains("alice-s") && all.contains("bob-s") && all.contains("\"total_count\": 2"))

            // compute_session by UUID, as `session info` asks for it.
            let info = "query($id: UUID!) {  compute_session(id: $id) {    name id status occupying_slots containers { id cluster_role occupied_slots } dependencies { name id }  }}"
            let (_, found) = try await Self.query(client, info, variables: "{\"id\": \"\(mine.id)\"}", keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(found.contains("\"name\": \"alice-s\"") && found.contains("\"occupying_slots\": \"{"), "JSONString fields are strings: \(found)")
            let (_, hidden) = try await Self.query(client, info, variables: "{\"id\": \"\(mine.id)\"}", keys: (bobKeys.accessKey, bobKeys.secretKey))
            #expect(hidden.contains("\"compute_session\": null"), "\(hidden)")

            // Admin roots need an admin keypair; users read their own keypair only.
            let keypairs = "query($limit:Int!, $offset:Int!) { keypair_list(limit:$limit, offset:$offset) { items { access_key secret_key } total_count } }"
            let (_, denied) = try await Self.query(client, keypairs, variables: #"{"limit": 20, "offset": 0}"#, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(denied.contains("admin") && !denied.contains(bobKeys.secretKey), "\(denied)")
            let (_, own) = try await Self.query(client, "query {  keypair {    user_id access_key secret_key is_active is_admin  }}", keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(own.contains(aliceKeys.accessKey) && !own.contains(bobKeys.accessKey))
            let (_, listed) = try await Self.query(client, keypairs, variables: #"{"limit": 20, "offset": 0}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(listed.contains(bobKeys.accessKey) && listed.contains("\"total_count\": 3"), "\(listed)")
            let users = "query($limit:Int!, $offset:Int!, $status: String, $group_id: UUID) { user_list(limit:$limit, offset:$offset, status:$status, group_id:$group_id) { items { email groups { id name } } total_count } }"
            let (_, userList) = try await Self.query(client, users, variables: #"{"limit": 20, "offset": 0, "status": null, "group_id": null}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(userList.contains("alice@example.com") && userList.contains("\"groups\": [{"), "\(userList)")

            // A mutation: admins create keypairs, users cannot.
            let create = "mutation($u: String!) { create_keypair(user_id: $u, props: {is_active: true, rate_limit: 100}) { ok msg keypair { access_key } } }"
            let (_, made) = try await Self.query(client, create, variables: #"{"u": "bob@example.com"}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(made.contains("\"ok\": true"), "\(made)")
            let (_, notAllowed) = try await Self.query(client, create, variables: #"{"u": "bob@example.com"}"#, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(notAllowed.contains("errors"))
            #expect(try store.keypairs(userID: bob.id).count == 2)

            // Image aliases: admins set them, users cannot; sessions resolve them.
            let alias = #"mutation { alias_image(alias: "py", target: "hangar/python:3.11-bookworm") { ok msg } }"#
            let (_, aliased) = try await Self.query(client, alias, keys: (admin.accessKey, admin.secretKey))
            #expect(aliased.contains("\"ok\": true"), "\(aliased)")
            let (_, userAlias) = try await Self.query(client, alias, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(userAlias.contains("errors"))
            let sessionBody = #"{"name": "aliased", "image": "py", "enqueueOnly": true, "config": {"resources": {"cpu": "1"}}}"#
            try await client.execute(uri: "/session", method: .post,
                                     headers: try SignedAPI.headers(method: .post, path: "/session", accessKey: aliceKeys.accessKey, secretKey: aliceKeys.secretKey),
                                     body: ByteBuffer(string: sessionBody)) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
            }
            #expect(try store.findSession("aliased", accessKey: aliceKeys.accessKey)?.image == "hangar/python:3.11-bookworm")
            let (_, dealiased) = try await Self.query(client, #"mutation { dealias_image(alias: "py") { ok msg } }"#, keys: (admin.accessKey, admin.secretKey))
            #expect(dealiased.contains("\"ok\": true"))

            // GraphQL errors are HTTP 200 with errors; hostile queries are refused before execution.
            let (badStatus, bad) = try await Self.query(client, "{ no_such_root }", keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(badStatus == .ok && bad.contains("errors"))
            let deep = "{ compute_session_list(limit: 1, offset: 0) { items { containers { id } " + String(repeating: "a { ", count: 12) + "b" + String(repeating: " }", count: 12) + " } } }"
            let (_, tooDeep) = try await Self.query(client, deep, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(tooDeep.contains("levels deep"), "\(tooDeep)")
            let wide = "{ " + (0..<1200).map { "a\($0): keypair { access_key }" }.joined(separator: " ") + " }"
            let (_, tooWide) = try await Self.query(client, wide, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(tooWide.contains("more than 1000 fields"), "\(tooWide.prefix(300))")
            let (syntaxStatus, syntax) = try await Self.query(client, "{ keypair { access_key ", keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(syntaxStatus == .ok && syntax.contains("errors") && syntax.contains("Syntax Error"), "\(syntax)")
            // A refused text stays refused when it comes again (its verdict is cached).
            let (_, again) = try await Self.query(client, deep, keys: (aliceKeys.accessKey, aliceKeys.secretKey))
            #expect(again.contains("the query nests 15 levels deep") && tooDeep.contains("the query nests 15 levels deep"), "\(again)")
        }
    }

    /// `admin user add` as the official client sends it: every UserInput field is accepted and
    /// kept, the new user gets a keypair at once, TOTP is refused by name, and the `user` root
    /// shows users to themselves and to admins only.
    @Test(arguments: Backend.allCases)
    func createdUsersGetAKeypairAndKeepTheirOptions(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let create = """
            mutation($email: String!, $input: UserInput!) { create_user(email: $email, props: $input) { ok msg user { email username uuid main_access_key } } }
            """
        let input = #"{"password": "alice-password-1", "role": "user", "status": "active", "need_password_change": true, "description": "data team", "#
            + #""domain_name": "default", "totp_activated": false, "sudo_session_enabled": true, "username": "alice", "allowed_client_ip": ["10.0.0.0/8"]}"#
        try await app.test(.router) { client in
            let (_, created) = try await Self.query(client, create, variables: #"{"email": "alice@example.com", "input": \#(input)}"#,
                                                    keys: (admin.accessKey, admin.secretKey))
            #expect(created.contains("\"ok\": true") && created.contains("\"main_access_key\": \"AKIA"), "\(created)")
            let alice = try #require(try store.user(email: "alice@example.com"))
            #expect(alice.description == "data team" && alice.needPasswordChange && alice.sudoSessionEnabled && alice.allowedClientIPs == ["10.0.0.0/8"])
            let aliceKey = try #require(try store.keypairs(userID: alice.id).first, "a new user gets a keypair")
            #expect(aliceKey.isActive && !aliceKey.isAdmin)

            let totp = input.replacingOccurrences(of: #""totp_activated": false"#, with: #""totp_activated": true"#)
            let (_, refused) = try await Self.query(client, create, variables: #"{"email": "bob@example.com", "input": \#(totp)}"#,
                                                    keys: (admin.accessKey, admin.secretKey))
            #expect(refused.contains("\"ok\": false") && refused.contains("TOTP"), "\(refused)")
            #expect(try store.user(email: "bob@example.com") == nil, "a refused user is not created")

            let info = "query($email: String) { user(email: $email) { email description need_password_change allowed_client_ip sudo_session_enabled groups { name } } }"
            let (_, shown) = try await Self.query(client, info, variables: #"{"email": "alice@example.com"}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(shown.contains("\"description\": \"data team\"") && shown.contains("\"allowed_client_ip\": [\"10.0.0.0/8\"]")
                    && shown.contains("\"sudo_session_enabled\": true") && shown.contains("\"name\": \"default\""), "\(shown)")
            let (_, own) = try await Self.query(client, info, variables: "{}", keys: (aliceKey.accessKey, aliceKey.secretKey))
            #expect(own.contains("alice@example.com"), "no email: the caller: \(own)")
            let (_, other) = try await Self.query(client, info, variables: "{\"email\": \"\(admin.email)\"}", keys: (aliceKey.accessKey, aliceKey.secretKey))
            #expect(other.contains("errors") && !other.contains("\"email\": \"\(admin.email)\""), "users read only themselves: \(other)")

            // admin user update / delete / purge, with their refusals.
            let modify = "mutation($email: String!, $input: ModifyUserInput!) { modify_user(email: $email, props: $input) { ok msg } }"
            let adminKeys = (admin.accessKey, admin.secretKey)
            let (_, updated) = try await Self.query(client, modify, variables: #"{"email": "alice@example.com", "input": {"description": "ml team", "sudo_session_enabled": false, "full_name": "Alice A"}}"#, keys: adminKeys)
            #expect(updated.contains("\"ok\": true"), "\(updated)")
            let changed = try #require(try store.user(email: "alice@example.com"))
            #expect(changed.description == "ml team" && !changed.sudoSessionEnabled && changed.fullName == "Alice A" && changed.allowedClientIPs == ["10.0.0.0/8"])
            let (_, noTOTP) = try await Self.query(client, modify, variables: #"{"email": "alice@example.com", "input": {"totp_activated": true}}"#, keys: adminKeys)
            #expect(noTOTP.contains("\"ok\": false") && noTOTP.contains("TOTP"), "\(noTOTP)")
            let (_, notSelf) = try await Self.query(client, modify, variables: "{\"email\": \"\(admin.email)\", \"input\": {\"status\": \"inactive\"}}", keys: adminKeys)
            #expect(notSelf.contains("\"ok\": false") && notSelf.contains("yourself"), "\(notSelf)")
            let (_, notAdmin) = try await Self.query(client, modify, variables: #"{"email": "alice@example.com", "input": {"description": "x"}}"#, keys: (aliceKey.accessKey, aliceKey.secretKey))
            #expect(notAdmin.contains("admin") && notAdmin.contains("errors"), "\(notAdmin)")

            let purge = "mutation($email: String!, $input: PurgeUserInput!) { purge_user(email: $email, props: $input) { ok msg } }"
            let project = try #require(try store.projects().first)
            let running = try store.createSession(SessionSpec(name: "alice-busy", accessKey: aliceKey.accessKey, userID: alice.id, projectID: project.id,
                                                              image: "img:1", requested: ResourceSlots(["cpu": 1])))
            let (_, busy) = try await Self.query(client, purge, variables: #"{"email": "alice@example.com", "input": {"purge_shared_vfolders": false}}"#, keys: adminKeys)
            #expect(busy.contains("\"ok\": false") && busy.contains("session"), "purge waits for sessions to end: \(busy)")
            let (_, deleted) = try await Self.query(client, "mutation($email: String!) { delete_user(email: $email) { ok msg } }",
                                                    variables: #"{"email": "alice@example.com"}"#, keys: adminKeys)
            #expect(deleted.contains("\"ok\": true"), "\(deleted)")
            #expect(try store.user(email: "alice@example.com")?.status == "deleted" && (try store.keypairs(userID: alice.id)).allSatisfy { !$0.isActive })
            let (lockedOut, _) = try await Self.query(client, info, variables: "{}", keys: (aliceKey.accessKey, aliceKey.secretKey))
            #expect(lockedOut == .unauthorized, "a deleted user's keys stop working")
            _ = try store.transition(session: running.id, to: .cancelled, reason: "test")
            let (_, purged) = try await Self.query(client, purge, variables: #"{"email": "alice@example.com", "input": {"purge_shared_vfolders": false}}"#, keys: adminKeys)
            #expect(purged.contains("\"ok\": true"), "\(purged)")
            #expect(try store.user(email: "alice@example.com") == nil && (try store.keypairs(userID: alice.id)).isEmpty)
        }
    }

    /// `admin keypair update|activate|deactivate|delete` as the official client sends them
    /// (`ModifyKeyPairInput`): every field applies, a deactivated key stops working, and the
    /// signing key cannot be deactivated, demoted or deleted; a key in use cannot be deleted.
    @Test(arguments: Backend.allCases)
    func keypairsAreModifiedAndDeletedAsTheClientAsks(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let bob = try store.createUser(email: "bob@example.com", password: "bob-password", passwordRounds: 1000)
        let bobKey = try store.createKeypair(userID: bob.id)
        let adminKeys = (admin.accessKey, admin.secretKey)
        let modify = "mutation($access_key: String!, $input: ModifyKeyPairInput!) { modify_keypair(access_key: $access_key, props: $input) { ok msg } }"
        let delete = "mutation($access_key: String!) { delete_keypair(access_key: $access_key) { ok msg } }"
        try await managerApp(store).test(.router) { client in
            let (_, updated) = try await Self.query(client, modify, variables: "{\"access_key\": \"\(bobKey.accessKey)\", \"input\": {\"rate_limit\": 100, \"is_admin\": true, \"resource_policy\": \"default\"}}", keys: adminKeys)
            #expect(updated.contains("\"ok\": true"), "\(updated)")
            var stored = try #require(try store.keypairs(userID: bob.id).first)
            #expect(stored.rateLimit == 100 && stored.isAdmin && stored.isActive)
            let (_, negative) = try await Self.query(client, modify, variables: "{\"access_key\": \"\(bobKey.accessKey)\", \"input\": {\"rate_limit\": -1}}", keys: adminKeys)
            #expect(negative.contains("\"ok\": false") && negative.contains("rate_limit"), "\(negative)")
            let (_, off) = try await Self.query(client, modify, variables: "{\"access_key\": \"\(bobKey.accessKey)\", \"input\": {\"is_active\": false}}", keys: adminKeys)
            #expect(off.contains("\"ok\": true"), "\(off)")
            stored = try #require(try store.keypairs(userID: bob.id).first)
            #expect(!stored.isActive && stored.rateLimit == 100, "only the given field changed")
            let (bobStatus, _) = try await Self.query(client, "{ keypair { access_key } }", keys: (bobKey.accessKey, bobKey.secretKey))
            #expect(bobStatus == .unauthorized, "a deactivated key stops working")
            for input in [#"{"is_active": false}"#, #"{"is_admin": false}"#] {
                let (_, own) = try await Self.query(client, modify, variables: "{\"access_key\": \"\(admin.accessKey)\", \"input\": \(input)}", keys: adminKeys)
                #expect(own.contains("\"ok\": false") && own.contains("signed with"), "\(own)")
            }
            let (_, ownDelete) = try await Self.query(client, delete, variables: "{\"access_key\": \"\(admin.accessKey)\"}", keys: adminKeys)
            #expect(ownDelete.contains("\"ok\": false"), "\(ownDelete)")
            let project = try #require(try store.projects().first)
            let session = try store.createSession(SessionSpec(name: "bob-s", accessKey: bobKey.accessKey, userID: bob.id, projectID: project.id,
                                                              image: "img:1", requested: ResourceSlots(["cpu": 1])))
            let (_, inUse) = try await Self.query(client, delete, variables: "{\"access_key\": \"\(bobKey.accessKey)\"}", keys: adminKeys)
            #expect(inUse.contains("\"ok\": false") && inUse.contains("session"), "\(inUse)")
            _ = try store.transition(session: session.id, to: .cancelled, reason: "test")
            let (_, deleted) = try await Self.query(client, delete, variables: "{\"access_key\": \"\(bobKey.accessKey)\"}", keys: adminKeys)
            let remaining = try store.keypairs(userID: bob.id)
            #expect(deleted.contains("\"ok\": true") && remaining.isEmpty, "\(deleted)")
        }
    }

    /// `admin scaling-group info` and `admin keypair-resource-policy info`: one object by name;
    /// users see only what is theirs, and an unknown name is null.
    @Test func infoRootsFindOneObjectByName() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        _ = db
        defer { store.close() }
        let carol = try store.createUser(email: "carol@example.com", password: "carol-password", passwordRounds: 1000)
        let carolKey = try store.createKeypair(userID: carol.id)
        try await managerApp(store).test(.router) { client in
            let group = "query($name: String) { scaling_group(name: $name) { name scheduler is_active } }"
            let (_, found) = try await Self.query(client, group, variables: #"{"name": "default"}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(found.contains("\"name\": \"default\"") && found.contains("\"scheduler\": \"fifo\""), "\(found)")
            let (_, missing) = try await Self.query(client, group, variables: #"{"name": "nope"}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(missing.contains("\"scaling_group\": null"), "\(missing)")
            let policy = "query($name: String) { keypair_resource_policy(name: $name) { name max_concurrent_sessions } }"
            let (_, own) = try await Self.query(client, policy, variables: "{}", keys: (carolKey.accessKey, carolKey.secretKey))
            #expect(own.contains("\"name\": \"default\""), "no name: the caller's own policy: \(own)")
            let (_, other) = try await Self.query(client, policy, variables: #"{"name": "unknown-policy"}"#, keys: (carolKey.accessKey, carolKey.secretKey))
            #expect(other.contains("\"keypair_resource_policy\": null"), "\(other)")
        }
    }

    /// The SDK's unpaginated `users` and `keypairs` roots: admins only, filtered as asked;
    /// model serving's `inference_session_list` answers "not supported by Hangar".
    @Test func unpaginatedUserAndKeypairRootsAndServingRefusal() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        _ = db
        defer { store.close() }
        let carol = try store.createUser(email: "carol@example.com", password: "carol-password", passwordRounds: 1000)
        let carolKey = try store.createKeypair(userID: carol.id)
        try await managerApp(store).test(.router) { client in
            let adminKeys = (admin.accessKey, admin.secretKey)
            let (_, users) = try await Self.query(client, "query($status: String) { users(status: $status) { email status } }", variables: #"{"status": "active"}"#, keys: adminKeys)
            #expect(users.contains("carol@example.com") && users.contains("\"status\": \"active\""), "\(users)")
            let (_, keys) = try await Self.query(client, "query($email: String) { keypairs(email: $email) { access_key } }",
                                                 variables: #"{"email": "carol@example.com"}"#, keys: adminKeys)
            #expect(keys.contains(carolKey.accessKey) && !keys.contains(admin.accessKey), "only carol's: \(keys)")
            let (_, refused) = try await Self.query(client, "{ users { email } }", variables: "{}", keys: (carolKey.accessKey, carolKey.secretKey))
            #expect(refused.contains("users needs an admin keypair"), "\(refused)")
            let (_, serving) = try await Self.query(client, "{ inference_session_list { total_count } }", variables: "{}", keys: adminKeys)
            #expect(serving.contains("not supported by Hangar") && serving.contains("inference_session_list"), "\(serving)")
        }
    }

    /// Container registries: superadmins add, modify and delete them; the password is sealed
    /// in the database (not readable there), opens with the cluster secret, and is never
    /// answered — by GraphQL or by `GET /config/docker-registries`; bad input is refused by name.
    @Test(arguments: Backend.allCases)
    func registriesKeepTheirPasswordSealed(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let dana = try store.createUser(email: "dana@example.com", password: "dana-password", passwordRounds: 1000)
        let danaKey = try store.createKeypair(userID: dana.id)
        let create = "mutation($h: String!, $p: ContainerRegistryInput!) { create_container_registry(hostname: $h, props: $p) { ok msg container_registry { hostname config { url password has_password } } } }"
        let keys = (admin.accessKey, admin.secretKey)
        try await managerApp(store).test(.router) { client in
            let (_, made) = try await Self.query(client, create, variables: #"{"h": "cr.example.com:5000", "p": {"url": "https://cr.example.com:5000", "type": "docker", "username": "robot", "password": "s3cret-Pass"}}"#, keys: keys)
            #expect(made.contains("\"ok\": true") && made.contains("\"has_password\": true") && made.contains("\"password\": null"), "\(made)")
            #expect(!made.contains("s3cret-Pass"))
            let (_, again) = try await Self.query(client, create, variables: #"{"h": "cr.example.com:5000", "p": {"url": "https://cr.example.com:5000"}}"#, keys: keys)
            #expect(again.contains("already exists"), "\(again)")
            let (_, badURL) = try await Self.query(client, create, variables: #"{"h": "bad.example.com", "p": {"url": "ftp://bad.example.com", "type": "docker"}}"#, keys: keys)
            #expect(badURL.contains("must be the registry's http:// or https:// address"), "\(badURL)")
            let (_, badType) = try await Self.query(client, create, variables: #"{"h": "h.example.com", "p": {"url": "https://h.example.com", "type": "harbor"}}"#, keys: keys)
            #expect(badType.contains("registry type 'harbor' is not supported"), "\(badType)")
            let (_, badHost) = try await Self.query(client, create, variables: #"{"h": "no/slash", "p": {"url": "https://x.example.com"}}"#, keys: keys)
            #expect(badHost.contains("must be a registry host name"), "\(badHost)")
            let (_, refused) = try await Self.query(client, create, variables: #"{"h": "user.example.com", "p": {"url": "https://user.example.com"}}"#, keys: (danaKey.accessKey, danaKey.secretKey))
            #expect(refused.contains("needs a superadmin keypair"), "\(refused)")

            // At rest: sealed, and only the cluster secret opens it.
            let stored = try #require(try store.containerRegistries().first)
            let sealed = try #require(stored.sealedPassword)
            #expect(!sealed.contains("s3cret-Pass") && sealed.hasPrefix("sealed-v1:"))
            #expect(try SecretBox(clusterSecret: "test-cluster-secret").open(sealed) == "s3cret-Pass")
            #expect(throws: SecretBoxError.self) { try SecretBox(clusterSecret: "another-secret").open(sealed) }

            let modify = "mutation($h: String!, $p: ContainerRegistryInput!) { modify_container_registry(hostname: $h, props: $p) { ok msg } }"
            let (_, modified) = try await Self.query(client, modify, variables: #"{"h": "cr.example.com:5000", "p": {"project": ["ml", "base"], "ssl_verify": false, "password": ""}}"#, keys: keys)
            #expect(modified.contains("\"ok\": true"), "\(modified)")
            let (status, rest) = try await client.execute(uri: "/config/docker-registries", method: .get,
                                                          headers: try SignedAPI.headers(method: .get, path: "/config/docker-registries", accessKey: admin.accessKey, secretKey: admin.secretKey)) {
                ($0.status, String(buffer: $0.body))
            }
            #expect(status == .ok && rest.contains("\"cr.example.com:5000\"") && rest.contains("\"ml\"") && rest.contains("\"has_password\":false"), "\(rest)")
            #expect(!rest.contains("sealed-v1"))
            let list = "query { container_registries { hostname config { project ssl_verify has_password } } }"
            let (_, listed) = try await Self.query(client, list, keys: keys)
            #expect(listed.contains("\"ssl_verify\": false") && listed.contains("\"has_password\": false"), "\(listed)")
            let (_, hidden) = try await Self.query(client, list, keys: (danaKey.accessKey, danaKey.secretKey))
            #expect(hidden.contains("for admins"), "users do not see registries: \(hidden)")
            let delete = "mutation($h: String!) { delete_container_registry(hostname: $h) { ok msg } }"
            let (_, deleted) = try await Self.query(client, delete, variables: #"{"h": "cr.example.com:5000"}"#, keys: keys)
            #expect(deleted.contains("\"ok\": true"), "\(deleted)")
            let (_, gone) = try await Self.query(client, delete, variables: #"{"h": "cr.example.com:5000"}"#, keys: keys)
            #expect(gone.contains("no registry 'cr.example.com:5000'"), "\(gone)")
        }
        #expect(try store.containerRegistries().isEmpty)
    }

    /// Each query text is parsed and validated once; the verdict is reused, refusals
    /// included, and the cache stays within its bound, evicting the oldest text.
    @Test func documentVerdictsAreReusedAndBounded() throws {
        let schema = GQLSchema.shared.schema
        let cache = GQLDocumentCache(capacity: 3, largestCachedText: 200)
        let valid = "{ keypair { access_key } }"
        guard case .ready(let first) = cache.verdict(valid, schema: schema), case .ready(let second) = cache.verdict(valid, schema: schema) else {
            Issue.record("a valid document is ready"); return
        }
        #expect(first == second && cache.count == 1)
        guard case .refused(let errors) = cache.verdict("{ no_such_root }", schema: schema) else { Issue.record("unknown roots are refused"); return }
        #expect(errors.first?.message.contains("no_such_root") == true, "\(errors)")
        guard case .refused(let syntax) = cache.verdict("{ keypair {", schema: schema) else { Issue.record("syntax errors are refused"); return }
        #expect(syntax.first?.message.contains("Syntax Error") == true, "\(syntax)")
        #expect(cache.count == 3)
        _ = cache.verdict("{ keypair { secret_key } }", schema: schema)
        #expect(cache.count == 3, "the fourth text evicts the oldest")
        let long = "{ keypair { access_key " + String(repeating: " ", count: 300) + "} }"
        guard case .ready = cache.verdict(long, schema: schema) else { Issue.record("a long valid text is still checked"); return }
        #expect(cache.count == 3, "texts over the size bound are checked but not kept")
    }
}
