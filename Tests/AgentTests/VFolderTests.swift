import Foundation
import StateStore
import Testing
import TestSupport

/// Virtual folders through the manager, a storage proxy and the `hangar` CLI: who sees what,
/// what sharing allows, project folders, the trash, limits, and mounts into sessions.
@Suite(.serialized) struct VFolderTests {
    @Test func permissionsSharingProjectFoldersAndSessionMounts() async throws {
        let cluster = try await TestCluster(prefix: "vf", storage: true)
        defer { cluster.stop() }
        let store = cluster.store
        func user(_ name: String, projects: [String] = [StateStore.defaultProject]) throws -> (email: String, access: String, secret: String) {
            let email = "\(name)@hangar.local"
            let u = try store.createUser(email: email, password: "password-\(name)", projects: projects, passwordRounds: 1000)
            let k = try store.createKeypair(userID: u.id)
            return (email, k.accessKey, k.secretKey)
        }
        let alice = try user("alice"), bob = try user("bob"), carol = try user("carol", projects: [])
        func as_(_ who: (email: String, access: String, secret: String)?, _ arguments: [String], stdin: String? = nil,
                 cwd: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
            try cluster.hangar(arguments, stdin: stdin, accessKey: who?.access, secretKey: who?.secret, workingDirectory: cwd)
        }
        let work = cluster.dir + "/local"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try "alice's notes\n".write(toFile: work + "/notes.txt", atomically: true, encoding: .utf8)

        let hosts = try as_(alice, ["vfolder", "hosts"])
        #expect(hosts.stdout.contains("default: local:volume1"), "\(hosts)")
        #expect(try as_(alice, ["vfolder", "create", "af"]).status == 0)
        let uploaded = try as_(alice, ["vfolder", "upload", "af", work + "/notes.txt", "-q"])
        #expect(uploaded.status == 0, "\(uploaded)")

        // Another user's folder is invisible.
        let hidden = try as_(bob, ["vfolder", "info", "af"])
        #expect(hidden.status == 1 && hidden.stderr.contains("404"), "\(hidden)")
        #expect(!(try as_(bob, ["vfolder", "ls"]).stdout.contains("af")))

        // Shared read-only: bob reads but cannot write or delete.
        #expect(try as_(alice, ["vfolder", "share", "af", bob.email, "--permission", "ro"]).status == 0)
        let invitations = try as_(bob, ["vfolder", "invitations", "--json"])
        let invitation = try #require((try JSONSerialization.jsonObject(with: Data(invitations.stdout.utf8)) as? [[String: Any]])?.first?["id"] as? String)
        #expect(try as_(bob, ["vfolder", "accept", invitation]).status == 0)
        let fetched = cluster.dir + "/bob"
        try FileManager.default.createDirectory(atPath: fetched, withIntermediateDirectories: true)
        let download = try as_(bob, ["vfolder", "download", "af", "notes.txt", "-o", fetched, "-q"])
        #expect(download.status == 0 && (try? String(contentsOfFile: fetched + "/notes.txt", encoding: .utf8)) == "alice's notes\n", "\(download)")
        let writeAttempt = try as_(bob, ["vfolder", "upload", "af", work + "/notes.txt", "-q"])
        #expect(writeAttempt.status == 1 && writeAttempt.stderr.contains("403"), "ro refuses writes: \(writeAttempt)")
        #expect(try as_(bob, ["vfolder", "mkdir", "af", "bobdir"]).status == 1)
        #expect(try as_(bob, ["vfolder", "rm", "af", "notes.txt"]).status == 1)
        #expect(try as_(bob, ["vfolder", "delete", "af"]).status == 1)

        // A read-only share is mounted read-only into bob's session.
        let roRun = try as_(bob, ["run", TestEngine.image, "-q", "--rm", "-v", "af", "-c",
                                  "print(open('/home/work/af/notes.txt').read().strip())\nopen('/home/work/af/x.txt', 'w')"])
        #expect(roRun.stdout == "alice's notes\n" && roRun.status == 1 && roRun.stderr.contains("Read-only file system"), "\(roRun)")

        // A session writes into a mounted folder; after it ends the file is downloadable.
        #expect(try as_(alice, ["vfolder", "create", "results"]).status == 0)
        let run = try as_(alice, ["run", TestEngine.image, "-q", "--rm", "-v", "results", "-c",
                                  "open('/home/work/results/out.txt', 'w').write('computed in a session\\n')"])
        #expect(run.status == 0, "\(run)")
        let got = cluster.dir + "/got"
        try FileManager.default.createDirectory(atPath: got, withIntermediateDirectories: true)
        let result = try as_(alice, ["vfolder", "download", "results", "out.txt", "-o", got, "-q"])
        #expect(result.status == 0 && (try? String(contentsOfFile: got + "/out.txt", encoding: .utf8)) == "computed in a session\n", "\(result)")
        let mountOther = try as_(carol, ["run", TestEngine.image, "-q", "--rm", "-v", "results", "-c", "print(1)"])
        #expect(mountOther.status == 1 && mountOther.stderr.contains("results"), "no mounting a folder you cannot see: \(mountOther)")

        // Project folders: admins create them; members see them, others do not.
        #expect(try as_(alice, ["vfolder", "create", "pf-denied", "--group", "default"]).status == 1, "users cannot create project folders")
        #expect(try as_(nil, ["vfolder", "create", "pf", "--group", "default"]).status == 0)
        #expect(try as_(alice, ["vfolder", "info", "pf"]).status == 0, "project members see the project's folder")
        let outsider = try as_(carol, ["vfolder", "info", "pf"])
        #expect(outsider.status == 1 && outsider.stderr.contains("404"), "non-members do not: \(outsider)")

        // The trash: deleted folders disappear for everyone, can be restored, then purged.
        let id = try #require((try JSONSerialization.jsonObject(with: Data(try as_(alice, ["vfolder", "info", "af", "--json"]).stdout.utf8)) as? [String: Any])?["id"] as? String)
        #expect(try as_(alice, ["vfolder", "delete", "af"]).status == 0)
        #expect(try as_(bob, ["vfolder", "info", "af"]).status == 1)
        #expect(try as_(alice, ["vfolder", "info", "af"]).status == 1)
        #expect(try as_(bob, ["vfolder", "purge", id]).status == 1, "only the owner purges")
        #expect(try as_(alice, ["vfolder", "purge", id]).status == 0)
        #expect(try store.vfolder(id: id) == nil)
        #expect(!FileManager.default.fileExists(atPath: cluster.dir + "/vfolders/\(id.prefix(2))/\(id.dropFirst(2).prefix(2))/\(id)"), "purged from the volume")

        // The keypair policy's folder count limit.
        try store.database.withConnection { c in try c.execute("UPDATE resource_policies SET max_vfolder_count = 1 WHERE scope = 'keypair'") }
        let over = try as_(alice, ["vfolder", "create", "one-too-many"])
        #expect(over.status == 1 && over.stderr.contains("max_vfolder_count"), "\(over)")
    }
}
