import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import Manager
import StateStore
import Testing
import TestSupport

/// Backend.AI's `POST /auth/authorize`: a password traded for the user's keypair, unsigned,
/// with the same refusals and failed-login blocking as the webserver's login.
@Suite struct AuthorizeTests {
    static func authorize(_ client: some TestClientProtocol, _ body: String) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: "/auth/authorize", method: .post, headers: [.contentType: "application/json"],
                                 body: ByteBuffer(string: body)) { ($0.status, String(buffer: $0.body)) }
    }

    @Test(arguments: Backend.allCases)
    func aPasswordIsTradedForTheKeypair(backend: Backend) async throws {
        let (db, store, _) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let user = try store.createUser(email: "ana@example.com", password: "ana-password", passwordRounds: 1000)
        let keys = try store.createKeypair(userID: user.id)
        let app = try managerApp(store) { $0.loginThrottleUser = LoginThrottle(limit: 3, window: 1200) }
        try await app.test(.router) { client in
            let (status, body) = try await Self.authorize(client, #"{"type": "keypair", "domain": "default", "username": "ana@example.com", "password": "ana-password"}"#)
            #expect(status == .ok, "\(body)")
            let data = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["data"] as? [String: String], "\(body)")
            #expect(data == ["access_key": keys.accessKey, "secret_key": keys.secretKey, "role": "user", "status": "active"])
            // The username (not only the email) logs in too, and the domain may be left out.
            let (byName, _) = try await Self.authorize(client, #"{"type": "keypair", "username": "ana", "password": "ana-password"}"#)
            #expect(byName == .ok)

            let (wrongType, typeText) = try await Self.authorize(client, #"{"type": "jwt", "username": "ana", "password": "ana-password"}"#)
            #expect(wrongType == .badRequest && typeText.contains("only authorization type is \\\"keypair\\\""), "\(typeText)")
            let (unknown, unknownText) = try await Self.authorize(client, #"{"type": "keypair", "username": "ana", "password": "x", "remember": true}"#)
            #expect(unknown == .badRequest && unknownText.contains("remember"), "\(unknownText)")
            let (malformed, _) = try await Self.authorize(client, #"{"type": "keypair", "username": "ana""#)
            #expect(malformed == .badRequest)

            // Three wrong passwords block the user, even with the right one, until the window ends.
            for _ in 0..<3 {
                let (wrong, wrongText) = try await Self.authorize(client, #"{"type": "keypair", "username": "ana@example.com", "password": "nope"}"#)
                #expect(wrong == .unauthorized && wrongText.contains("invalid user ID or password"), "\(wrongText)")
            }
            let (blocked, blockedText) = try await Self.authorize(client, #"{"type": "keypair", "username": "ana@example.com", "password": "ana-password"}"#)
            #expect(blocked == .tooManyRequests && blockedText.contains("try again in"), "\(blockedText)")
        }
        // An inactive account and one without an active keypair get no keys.
        let bea = try store.createUser(email: "bea@example.com", password: "bea-password", passwordRounds: 1000)
        let beaKeys = try store.createKeypair(userID: bea.id)
        try store.setKeypairActive(beaKeys.accessKey, false)
        var inactive = UserChanges()
        inactive.status = "inactive"
        let cid = try store.createUser(email: "cid@example.com", password: "cid-password", passwordRounds: 1000)
        _ = try store.createKeypair(userID: cid.id)
        _ = try store.updateUser(id: cid.id, inactive, passwordRounds: 1000)
        try await app.test(.router) { client in
            let (noKeys, noKeysText) = try await Self.authorize(client, #"{"type": "keypair", "username": "bea@example.com", "password": "bea-password"}"#)
            #expect(noKeys == .unauthorized && noKeysText.contains("no active keypair"), "\(noKeysText)")
            let (off, offText) = try await Self.authorize(client, #"{"type": "keypair", "username": "cid@example.com", "password": "cid-password"}"#)
            #expect(off == .unauthorized && offText.contains("inactive"), "\(offText)")
        }
    }
}
