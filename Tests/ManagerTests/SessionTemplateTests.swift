import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import Manager
import StateStore
import Testing
import TestSupport

/// `session-template` and `create-from-template`: templates are checked when stored, seen
/// only by their owner (and admins), and a session from one takes the request's overrides.
@Suite struct SessionTemplateTests {
    static let yaml = """
        kind: task_template
        metadata:
          name: py-small
        spec:
          session_type: batch
          kernel:
            image: hangar/python:3.11-bookworm
            run:
              startup_command: python -c 'print(1)'
          resources:
            cpu: 1
            mem: 256m
        """

    static func body(_ payload: String) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: ["payload": payload, "group_name": "default"]), as: UTF8.self)
    }

    @Test(arguments: Backend.allCases)
    func templatesAreCheckedPrivateAndStartSessions(backend: Backend) async throws {
        let (db, store, _) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let alice = try store.createUser(email: "alice@example.com", password: "alice-password", passwordRounds: 1000)
        let aliceKeys = try store.createKeypair(userID: alice.id)
        let bob = try store.createUser(email: "bob@example.com", password: "bob-password", passwordRounds: 1000)
        let bobKeys = try store.createKeypair(userID: bob.id)
        let a = (aliceKeys.accessKey, aliceKeys.secretKey), b = (bobKeys.accessKey, bobKeys.secretKey)
        try await app.test(.router) { client in
            let (bad, why) = try await AdministrationTests.rest(client, .post, "/template/session", body: try Self.body("kind: pod\nmetadata: {name: x}"), keys: a)
            #expect(bad == .badRequest && why.contains("kind must be task_template"), "\(why)")
            let (noImage, why2) = try await AdministrationTests.rest(client, .post, "/template/session",
                                                                    body: try Self.body("metadata: {name: x}\nspec: {kernel: {}}"), keys: a)
            #expect(noImage == .badRequest && why2.contains("spec.kernel.image"), "\(why2)")
            let hostile = String(repeating: "[", count: 100_000)
            let (deep, why3) = try await AdministrationTests.rest(client, .post, "/template/session", body: try Self.body(hostile), keys: a)
            #expect(deep == .badRequest && why3.contains("nests more than 64"), "\(why3)")
            let (created, ids) = try await AdministrationTests.rest(client, .post, "/template/session", body: try Self.body(Self.yaml), keys: a)
            #expect(created == .ok, "\(ids)")
            let list = try #require(try JSONSerialization.jsonObject(with: Data(ids.utf8)) as? [[String: Any]])
            let id = try #require(list.first?["id"] as? String)

            let (_, yaml) = try await AdministrationTests.rest(client, .get, "/template/session/\(id)?format=yaml", keys: a)
            #expect(yaml.contains("startup_command: python -c 'print(1)'") || yaml.contains("startup_command: python -c '"), "\(yaml)")
            let (_, json) = try await AdministrationTests.rest(client, .get, "/template/session/\(id)?format=json", keys: a)
            #expect(json.contains("\"session_type\":\"batch\""), "\(json)")
            let (hidden, _) = try await AdministrationTests.rest(client, .get, "/template/session/\(id)", keys: b)
            #expect(hidden == .notFound, "another user's template is not there for them")
            let (_, bobsList) = try await AdministrationTests.rest(client, .get, "/template/session", keys: b)
            #expect(bobsList == "[]", "\(bobsList)")

            // The request's fields override the template's.
            let request = "{\"template_id\": \"\(id)\", \"name\": \"from-tpl\", \"enqueueOnly\": true, \"config\": {\"resources\": {\"cpu\": \"2\"}}}"
            let (started, reply) = try await AdministrationTests.rest(client, .post, "/session/_/create-from-template", body: request, keys: a)
            #expect(started == .created, "\(reply)")
            let (denied, _) = try await AdministrationTests.rest(client, .post, "/session/_/create-from-template",
                                                                  body: "{\"template_id\": \"\(id)\", \"name\": \"bobs\"}", keys: b)
            #expect(denied == .notFound)

            let (deleted, _) = try await AdministrationTests.rest(client, .delete, "/template/session/\(id)", keys: a)
            #expect(deleted == .ok)
            let (gone, _) = try await AdministrationTests.rest(client, .get, "/template/session/\(id)", keys: a)
            #expect(gone == .notFound)
        }
        let session = try #require(try store.findSession("from-tpl", accessKey: aliceKeys.accessKey))
        #expect(session.image == "hangar/python:3.11-bookworm" && session.type == "batch")
        #expect(session.requested["cpu"] == 2, "the request's cpu overrides the template's: \(session.requested)")
        #expect(try store.startupCommand(session: session.id) == "python -c 'print(1)'")
    }
}
