import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import Manager
import StateStore
import Testing
import TestSupport

/// Dotfiles: paths stay in the home directory, limits hold, project and domain dotfiles are
/// admin work, and a session's kernels get domain, then project, then user files.
@Suite struct DotfileTests {
    @Test func pathsMustStayInTheHomeDirectory() {
        #expect(KernelDotfile.homeRelativePath(".bashrc") == ".bashrc")
        #expect(KernelDotfile.homeRelativePath("/home/work/.config/pip/pip.conf") == ".config/pip/pip.conf")
        for bad in ["", "/etc/passwd", "../x", ".config/../../x", "a//b", "./x", "/home/work/", "/home/workx/y"] {
            #expect(KernelDotfile.homeRelativePath(bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: Backend.allCases)
    func scopesLimitsAndWhatAKernelGets(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let project = try #require(try store.projects().first)
        let alice = try store.createUser(email: "alice@example.com", password: "alice-password", passwordRounds: 1000)
        let aliceKeys = try store.createKeypair(userID: alice.id)
        let a = (aliceKeys.accessKey, aliceKeys.secretKey), root = (admin.accessKey, admin.secretKey)
        try await app.test(.router) { client in
            let (created, _) = try await AdministrationTests.rest(client, .post, "/user-config/dotfiles",
                                                                 body: #"{"path": ".vimrc", "data": "set nu", "permission": "600"}"#, keys: a)
            #expect(created == .ok)
            let (twice, why) = try await AdministrationTests.rest(client, .post, "/user-config/dotfiles",
                                                                  body: #"{"path": ".vimrc", "data": "x", "permission": "600"}"#, keys: a)
            #expect(twice == .conflict && why.contains("update it instead"), "\(why)")
            let (outside, why2) = try await AdministrationTests.rest(client, .post, "/user-config/dotfiles",
                                                                     body: #"{"path": "/etc/profile", "data": "x", "permission": "644"}"#, keys: a)
            #expect(outside == .badRequest && why2.contains("home directory"), "\(why2)")
            let (badMode, _) = try await AdministrationTests.rest(client, .post, "/user-config/dotfiles",
                                                                  body: #"{"path": ".x", "data": "x", "permission": "999"}"#, keys: a)
            #expect(badMode == .badRequest)
            let big = String(repeating: "x", count: StateStore.maxDotfileBytes)
            let (tooBig, why3) = try await AdministrationTests.rest(client, .post, "/user-config/dotfiles",
                                                                    body: "{\"path\": \".big\", \"data\": \"\(big)\", \"permission\": \"644\"}", keys: a)
            #expect(tooBig == .badRequest && why3.contains("KiB"), "\(why3)")
            // Project and domain dotfiles: members and users read, only admins write.
            let projectBody = "{\"path\": \".vimrc\", \"data\": \"set ts=4\", \"permission\": \"644\", \"group\": \"\(project.id)\"}"
            let (userWrite, _) = try await AdministrationTests.rest(client, .post, "/group-config/dotfiles", body: projectBody, keys: a)
            #expect(userWrite == .forbidden)
            let (adminWrite, _) = try await AdministrationTests.rest(client, .post, "/group-config/dotfiles", body: projectBody, keys: root)
            #expect(adminWrite == .ok)
            let (_, read) = try await AdministrationTests.rest(client, .get, "/group-config/dotfiles?group=default", keys: a)
            #expect(read.contains("set ts=4"), "members read their project's dotfiles: \(read)")
            let (domainWrite, _) = try await AdministrationTests.rest(client, .post, "/domain-config/dotfiles",
                                                                      body: #"{"path": ".profile", "data": "umask 022", "permission": "644", "domain": "default"}"#, keys: root)
            #expect(domainWrite == .ok)
        }
        let session = try store.createSession(SessionSpec(name: "dots", accessKey: aliceKeys.accessKey, userID: alice.id, projectID: project.id,
                                                          image: "img:1", requested: ResourceSlots(["cpu": 1])))
        let files = try store.kernelDotfiles(session: session.id)
        #expect(files.map(\.path) == [".profile", ".vimrc"])
        #expect(files.first { $0.path == ".vimrc" }?.data == "set nu", "the user's file wins over the project's at the same path")
        #expect(files.first { $0.path == ".vimrc" }?.mode == 0o600)
        #expect(files.first { $0.path == ".profile" }?.data == "umask 022")
    }
}
