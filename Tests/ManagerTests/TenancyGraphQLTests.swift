import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import Manager
import StateStore
import Testing
import TestSupport

/// Domains and groups (projects) through the GraphQL the official client's `admin domain`
/// and `admin group` commands send: what each role may do, and what purge refuses.
@Suite struct TenancyGraphQLTests {
    static func data(_ text: String) throws -> [String: Any] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        return object["data"] as? [String: Any] ?? [:]
    }

    @Test(arguments: Backend.allCases)
    func domainsAreCreatedRenamedDeactivatedAndPurgedBySuperadminsOnly(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let root = (admin.accessKey, admin.secretKey)
        let create = "mutation($name: String!, $input: DomainInput!) { create_domain(name: $name, props: $input) { ok msg domain { name total_resource_slots allowed_docker_registries } } }"
        let modify = "mutation($name: String!, $input: ModifyDomainInput!) { modify_domain(name: $name, props: $input) { ok msg } }"
        let info = "query($name: String) { domain(name: $name) { name description is_active } }"
        try await app.test(.router) { client in
            let (_, created) = try await GraphQLTests.query(client, create, variables: #"{"name": "lab", "input": {"description": "a lab", "is_active": true, "total_resource_slots": "{\"cpu\": \"4\"}", "allowed_docker_registries": ["cr.example.com"]}}"#, keys: root)
            #expect(created.contains("\"ok\": true") && created.contains("cr.example.com"), "\(created)")
            let (_, twice) = try await GraphQLTests.query(client, create, variables: #"{"name": "lab", "input": {}}"#, keys: root)
            #expect(twice.contains("\"ok\": false") && twice.contains("exists"), "\(twice)")
            let (_, badSlots) = try await GraphQLTests.query(client, create, variables: #"{"name": "lab2", "input": {"total_resource_slots": "[1]"}}"#, keys: root)
            #expect(badSlots.contains("\"ok\": false") && badSlots.contains("total_resource_slots must be a JSON object"), "\(badSlots)")
            let (_, badName) = try await GraphQLTests.query(client, create, variables: #"{"name": "../etc", "input": {}}"#, keys: root)
            #expect(badName.contains("\"ok\": false") && badName.contains("domain name"), "\(badName)")
        }
        // A domain admin and a user of the new domain.
        let labAdmin = try store.createUser(email: "boss@lab.example", password: "boss-password", role: .admin, domain: "lab", projects: [], passwordRounds: 1000)
        let labAdminKeys = try store.createKeypair(userID: labAdmin.id, isAdmin: true)
        let labUser = try store.createUser(email: "u@lab.example", password: "user-password", domain: "lab", projects: [], passwordRounds: 1000)
        let labUserKeys = try store.createKeypair(userID: labUser.id)
        try await app.test(.router) { client in
            let domainAdmin = (labAdminKeys.accessKey, labAdminKeys.secretKey)
            let (_, listed) = try await GraphQLTests.query(client, "query { domains { name } }", keys: domainAdmin)
            #expect(listed.contains("superadmin") && !listed.contains("\"default\""), "only superadmins list domains: \(listed)")
            let (_, own) = try await GraphQLTests.query(client, info, variables: "{}", keys: domainAdmin)
            #expect(own.contains("\"name\": \"lab\""), "no name reads the caller's own domain: \(own)")
            let (_, other) = try await GraphQLTests.query(client, info, variables: #"{"name": "default"}"#, keys: domainAdmin)
            #expect(other.contains("only your own domain"), "\(other)")
            let (_, refused) = try await GraphQLTests.query(client, modify, variables: #"{"name": "lab", "input": {"description": "mine"}}"#, keys: domainAdmin)
            #expect(refused.contains("superadmin"), "\(refused)")

            // Renaming moves the users; deactivating locks them out (superadmins stay in).
            let (_, renamed) = try await GraphQLTests.query(client, modify, variables: #"{"name": "lab", "input": {"name": "lab2", "description": "renamed"}}"#, keys: root)
            #expect(renamed.contains("\"ok\": true"), "\(renamed)")
            #expect(try store.user(id: labUser.id)?.domainName == "lab2")
            let (_, self_) = try await GraphQLTests.query(client, "mutation { delete_domain(name: \"default\") { ok msg } }", keys: root)
            #expect(self_.contains("\"ok\": false") && self_.contains("your own account"), "\(self_)")
            let (_, deleted) = try await GraphQLTests.query(client, "mutation { delete_domain(name: \"lab2\") { ok msg } }", keys: root)
            #expect(deleted.contains("\"ok\": true"), "\(deleted)")
            let (lockedOut, why) = try await GraphQLTests.query(client, "query { user { email } }", keys: (labUserKeys.accessKey, labUserKeys.secretKey))
            #expect(lockedOut == .unauthorized && why.contains("inactive"), "\(lockedOut) \(why)")
            let (_, shown) = try await GraphQLTests.query(client, info, variables: #"{"name": "lab2"}"#, keys: root)
            #expect(shown.contains("\"is_active\": false") && shown.contains("renamed"), "\(shown)")

            // Purge refuses while users remain, then removes the domain.
            let (_, held) = try await GraphQLTests.query(client, "mutation { purge_domain(name: \"lab2\") { ok msg } }", keys: root)
            #expect(held.contains("\"ok\": false") && held.contains("2 user(s)"), "\(held)")
        }
        try store.purgeUser(id: labUser.id)
        try store.purgeUser(id: labAdmin.id)
        try await app.test(.router) { client in
            let (_, purged) = try await GraphQLTests.query(client, "mutation { purge_domain(name: \"lab2\") { ok msg } }", keys: root)
            #expect(purged.contains("\"ok\": true"), "\(purged)")
        }
        #expect(try store.domains().map(\.name) == ["default"])
    }

    @Test(arguments: Backend.allCases)
    func groupsAreManagedWithinTheAdminsDomainAndPurgeWaitsForTheirSessions(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        _ = try store.createDomain(Domain(name: "lab", description: "", isActive: true, createdAt: Clock.nowMicros()))
        let labAdmin = try store.createUser(email: "boss@lab.example", password: "boss-password", role: .admin, domain: "lab", projects: [], passwordRounds: 1000)
        let labAdminKeys = try store.createKeypair(userID: labAdmin.id, isAdmin: true)
        let labUser = try store.createUser(email: "u@lab.example", password: "user-password", domain: "lab", projects: [], passwordRounds: 1000)
        let labUserKeys = try store.createKeypair(userID: labUser.id)
        let outsider = try store.createUser(email: "out@example.com", password: "outsider-password", passwordRounds: 1000)
        let app = try managerApp(store)
        let domainAdmin = (labAdminKeys.accessKey, labAdminKeys.secretKey)
        let create = "mutation($name: String!, $input: GroupInput!) { create_group(name: $name, props: $input) { ok msg group { id domain_name name scaling_groups } } }"
        let modify = "mutation($gid: UUID!, $input: ModifyGroupInput!) { modify_group(gid: $gid, props: $input) { ok msg } }"
        let groupID = try await app.test(.router) { client -> String in
            let (_, elsewhere) = try await GraphQLTests.query(client, create, variables: #"{"name": "team", "input": {"domain_name": "default"}}"#, keys: domainAdmin)
            #expect(elsewhere.contains("\"ok\": false") && elsewhere.contains("only in their domain"), "\(elsewhere)")
            let (_, created) = try await GraphQLTests.query(client, create, variables: #"{"name": "team", "input": {"domain_name": "lab", "description": "a team"}}"#, keys: domainAdmin)
            #expect(created.contains("\"ok\": true") && created.contains("\"scaling_groups\": [\"default\"]"), "new groups may use the default resource group: \(created)")
            let group = try #require((try Self.data(created)["create_group"] as? [String: Any])?["group"] as? [String: Any])
            let id = try #require(group["id"] as? String)
            let (_, user) = try await GraphQLTests.query(client, create, variables: #"{"name": "t2", "input": {"domain_name": "lab"}}"#, keys: (labUserKeys.accessKey, labUserKeys.secretKey))
            #expect(user.contains("admin keypair"), "users cannot create groups: \(user)")

            // Members: only users of the group's domain, added and removed by uuid.
            let (_, foreign) = try await GraphQLTests.query(client, modify, variables: "{\"gid\": \"\(id)\", \"input\": {\"user_update_mode\": \"add\", \"user_uuids\": [\"\(outsider.id)\"]}}", keys: domainAdmin)
            #expect(foreign.contains("\"ok\": false") && foreign.contains("not in the project's domain"), "\(foreign)")
            let (_, added) = try await GraphQLTests.query(client, modify, variables: "{\"gid\": \"\(id)\", \"input\": {\"user_update_mode\": \"add\", \"user_uuids\": [\"\(labUser.id)\"], \"description\": \"ml\"}}", keys: domainAdmin)
            #expect(added.contains("\"ok\": true"), "\(added)")
            #expect(try store.projects(ofUser: labUser.id).map(\.name) == ["team"])
            // A user lists only their groups; the superadmin sees every domain's by name.
            let (_, mine) = try await GraphQLTests.query(client, "query { groups { name description } }", keys: (labUserKeys.accessKey, labUserKeys.secretKey))
            #expect(mine.contains("\"team\"") && mine.contains("\"ml\"") && !mine.contains("\"default\""), "\(mine)")
            let (_, byName) = try await GraphQLTests.query(client, "query { groups_by_name(name: \"team\") { id domain_name } }", keys: (admin.accessKey, admin.secretKey))
            #expect(byName.contains(id), "\(byName)")
            let (_, hidden) = try await GraphQLTests.query(client, "query { groups(domain_name: \"default\") { name } }", keys: domainAdmin)
            #expect(hidden.contains("only your own domain"), "\(hidden)")
            return id
        }
        // A live session holds the group; delete only deactivates it.
        let session = try store.createSession(SessionSpec(name: "s", accessKey: labUserKeys.accessKey, userID: labUser.id, domain: "lab", projectID: groupID,
                                                          image: "img:1", requested: ResourceSlots(["cpu": 1])))
        try await app.test(.router) { client in
            let (_, deleted) = try await GraphQLTests.query(client, "mutation($gid: UUID!) { delete_group(gid: $gid) { ok msg } }", variables: "{\"gid\": \"\(groupID)\"}", keys: domainAdmin)
            #expect(deleted.contains("\"ok\": true"), "\(deleted)")
            #expect(try store.project(id: groupID)?.isActive == false)
            let (_, held) = try await GraphQLTests.query(client, "mutation($gid: UUID!) { purge_group(gid: $gid) { ok msg } }", variables: "{\"gid\": \"\(groupID)\"}", keys: domainAdmin)
            #expect(held.contains("\"ok\": false") && held.contains("not ended"), "\(held)")
        }
        _ = try store.transition(session: session.id, to: .cancelled)
        try await app.test(.router) { client in
            let (_, purged) = try await GraphQLTests.query(client, "mutation($gid: UUID!) { purge_group(gid: $gid) { ok msg } }", variables: "{\"gid\": \"\(groupID)\"}", keys: domainAdmin)
            #expect(purged.contains("\"ok\": true"), "\(purged)")
        }
        #expect(try store.project(id: groupID) == nil)
        #expect(try store.projects(ofUser: labUser.id).isEmpty)
    }
}
