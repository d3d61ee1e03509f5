import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import Manager
import StateStore
import Testing
import TestSupport

/// A resource group's kernel sandbox: set by a superadmin only, checked before it is stored
/// (mode, TOML, syscall names), handed to the agent with each kernel; watch reports become
/// session events.
@Suite struct SandboxSettingsTests {
    static let path = "/admin/resource-groups/default"

    static func patch(_ client: some TestClientProtocol, _ body: String, as key: (String, String)) async throws -> (HTTPResponse.Status, [String: Any]?) {
        let (status, text) = try await client.execute(uri: path, method: .patch,
                                                      headers: try SignedAPI.headers(method: .patch, path: path, accessKey: key.0, secretKey: key.1),
                                                      body: ByteBuffer(string: body)) { ($0.status, String(buffer: $0.body)) }
        return (status, try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }
    @Test(arguments: Backend.allCases)
    func onlyASuperadminSetsACheckedSandbox(backend: Backend) async throws {
        let (db, store, superadmin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let domainAdmin = try store.createUser(email: "da@example.com", password: "admin-password", role: .admin, passwordRounds: 1000)
        let adminKey = try store.createKeypair(userID: domainAdmin.id, isAdmin: true)
        let user = try store.createUser(email: "u@example.com", password: "user-password", passwordRounds: 1000)
        let userKey = try store.createKeypair(userID: user.id)
        try await managerApp(store).test(.router) { client in
            let su = (superadmin.accessKey, superadmin.secretKey)
            for key in [(adminKey.accessKey, adminKey.secretKey), (userKey.accessKey, userKey.secretKey)] {
                let (status, _) = try await Self.patch(client, #"{"sandbox": "none"}"#, as: key)
                #expect(status == .forbidden, "only a superadmin may switch a group's sandbox off")
            }
            #expect(try store.resourceGroups().first { $0.name == "default" }?.sandbox == nil)

            let (badMode, modeBody) = try await Self.patch(client, #"{"sandbox": "off"}"#, as: su)
            #expect(badMode == .badRequest && (modeBody?["msg"] as? String)?.contains(#""enforce", "watch" or "none""#) == true, "\(modeBody ?? [:])")
            let (badName, nameBody) = try await Self.patch(client, #"{"sandbox": "enforce", "sandboxPolicy": "allow = [\"mountt\"]"}"#, as: su)
            #expect(badName == .badRequest && (nameBody?["msg"] as? String)?.contains("sandboxPolicy: 'allow': 'mountt' is not a syscall") == true, "\(nameBody ?? [:])")
            let (badKey, _) = try await Self.patch(client, #"{"sandbox": "enforce", "sandboxPolicy": "alow = []"}"#, as: su)
            #expect(badKey == .badRequest)
            let (unknown, _) = try await Self.patch(client, #"{"mode": "none"}"#, as: su)
            #expect(unknown == .badRequest)
            #expect(try store.resourceGroups().first { $0.name == "default" }?.sandbox == nil, "nothing refused was stored")

            let (ok, group) = try await Self.patch(client, #"{"sandbox": "watch", "sandboxPolicy": "deny = [\"ptrace\"]\nallow = [\"bpf\"]"}"#, as: su)
            #expect(ok == .ok && group?["sandbox"] as? String == "watch", "\(group ?? [:])")
            let stored = try #require(try store.resourceGroups().first { $0.name == "default" })
            #expect(stored.sandbox == "watch" && stored.sandboxPolicy == "deny = [\"ptrace\"]\nallow = [\"bpf\"]")
            let (missing, _) = try await Self.patch(client, #"{"sandbox": "none"}"#, as: su) // same group again: fine
            #expect(missing == .ok)
            let otherPath = "/admin/resource-groups/nonexistent"
            let status = try await client.execute(uri: otherPath, method: .patch, headers: try SignedAPI.headers(method: .patch, path: otherPath, accessKey: su.0, secretKey: su.1),
                                                  body: ByteBuffer(string: #"{"sandbox": "none"}"#)) { $0.status }
            #expect(status == .notFound)
        }
    }

    @Test(arguments: Backend.allCases)
    func watchReportsBecomeSessionEvents(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let session = try store.createSession(try StoreFixtures.sessionSpec(store, admin, name: "watched", cpu: 1))
        let kernel = try #require(try store.kernels(session: session.id).first)
        let report = SandboxReport(kernelID: kernel.id, syscall: "setns", pid: 42, time: 1_800_000_000)
        try store.addSessionEvents([SessionEvent(kernelID: kernel.id, kind: "sandbox_watch", data: ManagerAPI.watchData(report), createdAt: 1),
                                    SessionEvent(kernelID: "unknown-kernel", kind: "sandbox_watch", data: "{}", createdAt: 2)])
        let events = try store.sessionEvents(session: session.id)
        #expect(events.count == 1 && events[0].kind == "sandbox_watch")
        let data = try #require(try JSONSerialization.jsonObject(with: Data(events[0].data.utf8)) as? [String: Any])
        #expect(data["syscall"] as? String == "setns" && data["pid"] as? Int == 42 && data["kernelId"] as? String == kernel.id)
        let streamed = ManagerAPI.withSession(events[0].data, current: session)
        #expect(streamed.contains(#""sessionName":"watched""#) && streamed.contains(#""syscall":"setns""#))
    }
}
