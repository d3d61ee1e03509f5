import Foundation
import StateStore
import Testing
import TestSupport

/// Images pulled from a real registry: Debian's docker-registry on loopback with TLS (a
/// self-signed certificate) and htpasswd logins, started by Tools/scripts/test.sh
/// (Tools/scripts/registry.sh). A small image made for this run is pushed there and removed
/// from the engine, so sessions on it must pull it through Hangar.
@Suite(.serialized) struct RegistryPullTests {
    struct Registry {
        let address: String
        let user: String
        let password: String
        let log: String

        static func fromEnvironment() throws -> Registry {
            let env = ProcessInfo.processInfo.environment
            guard let address = env["HANGAR_TEST_REGISTRY"], let user = env["HANGAR_TEST_REGISTRY_USER"],
                  let password = env["HANGAR_TEST_REGISTRY_PASSWORD"], let log = env["HANGAR_TEST_REGISTRY_LOG"] else {
                throw TestSupportError("HANGAR_TEST_REGISTRY (and _USER, _PASSWORD, _LOG) are not set: run the tests through Tools/scripts/test.sh, which starts a registry with Tools/scripts/registry.sh before podman's service")
            }
            return Registry(address: address, user: user, password: password, log: log)
        }

        /// The registry's access-log lines for successful manifest reads of `repository:tag`.
        func manifestReads(_ repository: String, tag: String) throws -> Int {
            let text = try String(contentsOfFile: log, encoding: .utf8)
            return text.split(separator: "\n").filter { $0.contains("\"GET /v2/\(repository)/manifests/\(tag) HTTP/1.1\" 200") }.count
        }
    }

    /// Runs podman's CLI (the tests' engine shares its storage); returns its status and output.
    @discardableResult
    static func podman(_ arguments: [String], stdin: Data? = nil) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/podman")
        process.arguments = arguments
        let output = Pipe(), input = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// A busybox image unique to this run (a marker file makes its layer new), pushed to the
    /// registry as REPOSITORY:1 and :3, and gone from the engine afterwards.
    static func pushTinyImage(_ registry: Registry, repository: String) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
        for tool in ["sh", "echo", "cat", "sleep"] { try FileManager.default.createSymbolicLink(atPath: root + "/bin/" + tool, withDestinationPath: "busybox") }
        try Data(UUID().uuidString.utf8).write(to: URL(fileURLWithPath: root + "/marker"))
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-C", root, "-c", "."]
        let pipe = Pipe()
        tar.standardOutput = pipe
        try tar.run()
        let archive = pipe.fileHandleForReading.readDataToEndOfFile()
        tar.waitUntilExit()
        let local = "localhost/\(repository):build"
        let imported = try podman(["import", "--change", "CMD [\"/bin/sh\"]", "--change", "LABEL ai.backend.resource.min.mem=64m",
                                   "--change", "LABEL ai.backend.runtime-type=shell", "-", local], stdin: archive)
        try #require(imported.0 == 0, "podman import: \(imported.1)")
        for tag in ["1", "3"] {
            let pushed = try podman(["push", "--tls-verify=false", "--creds", "\(registry.user):\(registry.password)", local, "\(registry.address)/\(repository):\(tag)"])
            try #require(pushed.0 == 0, "podman push: \(pushed.1)")
        }
        try podman(["rmi", "-f", local])
    }

    static func createSession(_ cluster: TestCluster, name: String, image: String, memory: String = "128m") async throws -> (Int, [String: Any]?) {
        let body: [String: Any] = ["name": name, "image": image, "type": "batch", "startupCommand": "echo pulled-and-ran",
                                   "enqueueOnly": true, "config": ["resources": ["cpu": "1", "mem": memory]]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        return try await SignedAPI.json(.POST, base: cluster.base, path: "/session", json: json, accessKey: cluster.accessKey, secretKey: cluster.secretKey)
    }

    static func waitUntilEnded(_ cluster: TestCluster, _ names: [String], seconds: Int = 120) async throws -> [String: SessionRecord] {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var ended: [String: SessionRecord] = [:]
        while ContinuousClock.now < deadline, ended.count < names.count {
            for name in names where ended[name] == nil {
                if let s = try cluster.store.findSession(name, accessKey: nil, domain: nil), s.status.isTerminal { ended[name] = s }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return ended
    }

    @Test func sessionsPullFromALoggedInRegistryOnceAndFailClearly() async throws {
        let registry = try Registry.fromEnvironment()
        let repository = "hangar-test/tiny-\(UUID().uuidString.prefix(8).lowercased())"
        try Self.pushTinyImage(registry, repository: repository)
        let cluster = try await TestCluster(prefix: "pull")
        defer { cluster.stop() }
        // The registry's login, sealed by the manager.
        let create = """
            {"query": "mutation($h: String!, $p: ContainerRegistryInput!) { create_container_registry(hostname: $h, props: $p) { ok msg } }",
             "variables": {"h": "\(registry.address)", "p": {"url": "https://\(registry.address)", "type": "docker", "username": "\(registry.user)", "password": "\(registry.password)", "ssl_verify": false}}}
            """
        let (status, made) = try await SignedAPI.json(.POST, base: cluster.base, path: "/admin/gql", json: create, accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        #expect(status == 200 && "\(made ?? [:])".contains("success"), "\(made ?? [:])")

        // Ten sessions of the absent image: each runs, and the registry served its manifest once.
        let image = "\(registry.address)/\(repository):1"
        let names = (0..<10).map { "pull-\($0)" }
        // Enqueued at once: the scheduler places them as cores free up, several at a time.
        for name in names {
            let (code, reply) = try await Self.createSession(cluster, name: name, image: image)
            #expect(code == 201, "\(reply ?? [:])")
        }
        let ended = try await Self.waitUntilEnded(cluster, names)
        #expect(ended.count == 10, "all ten ended")
        for name in names {
            let s = try #require(ended[name], "\(name) did not end")
            #expect(s.status == .terminated, "\(name): \(s.status) \(s.statusInfo)")
            let logs = try cluster.hangar(["session", "logs", name])
            #expect(logs.stdout.contains("pulled-and-ran"), "\(name): \(logs)")
        }
        #expect(try registry.manifestReads(repository, tag: "1") == 1, "one pull for ten sessions")
        // The session that pulled went PENDING → SCHEDULED → PULLING → CREATING → RUNNING, with progress.
        var pulled: SessionRecord?
        for name in names {
            let s = try #require(ended[name])
            if try cluster.store.statusHistory(session: s.id).contains(where: { $0.0 == .pulling }) { pulled = s }
        }
        let puller = try #require(pulled, "some session was PULLING")
        let order = try cluster.store.statusHistory(session: puller.id).map(\.0)
        #expect(Array(order.prefix(5)) == [.pending, .scheduled, .pulling, .creating, .running], "\(order)")
        let progress = try cluster.store.sessionEvents(session: puller.id).filter { $0.kind == "kernel_pull_progress" }
        #expect(!progress.isEmpty && progress.last?.data.contains("\"status\":\"pulled\"") == true, "\(progress.map(\.data))")

        // A rescan reads the registry's catalog, tags and labels as a background task the
        // client follows; the images root then lists both tags with their labels.
        let rescan = #"{"query": "mutation($r: String) { rescan_images(registry: $r) { ok msg task_id } }", "variables": {"r": "\#(registry.address)"}}"#
        let (_, started) = try await SignedAPI.json(.POST, base: cluster.base, path: "/admin/gql", json: rescan, accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let task = try #require(((started?["data"] as? [String: Any])?["rescan_images"] as? [String: Any])?["task_id"] as? String, "\(started ?? [:])")
        let (eventsStatus, events) = try await SignedAPI.request(.GET, base: cluster.base, path: "/events/background-task?task_id=\(task)", contentType: nil,
                                                                 accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let eventText = String(buffer: events)
        #expect(eventsStatus == 200 && eventText.contains("event: bgtask_done") && eventText.contains("\(registry.address): "), "\(eventText)")
        let listed = #"{"query": "{ images { name tag registry labels resource_limits installed } }"}"#
        let (_, images) = try await SignedAPI.json(.POST, base: cluster.base, path: "/admin/gql", json: listed, accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let rows = ((images?["data"] as? [String: Any])?["images"] as? [[String: Any]] ?? []).filter { $0["name"] as? String == "\(registry.address)/\(repository)" }
        #expect(rows.compactMap { $0["tag"] as? String }.sorted() == ["1", "3"], "\(rows)")
        #expect(rows.allSatisfy { ($0["labels"] as? String)?.contains("ai.backend.runtime-type") == true && ($0["resource_limits"] as? String)?.contains("\"mem\"") == true }, "\(rows)")
        #expect(rows.first { $0["tag"] as? String == "1" }?["installed"] as? Bool == true, "the pulled tag is on the agent: \(rows)")
        let (_, unknownScan) = try await SignedAPI.json(.POST, base: cluster.base, path: "/admin/gql",
                                                        json: #"{"query": "mutation { rescan_images(registry: \"nosuch.example.com\") { ok msg task_id } }"}"#,
                                                        accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let refusal = ((unknownScan?["data"] as? [String: Any])?["rescan_images"] as? [String: Any])?["msg"] as? String ?? ""
        #expect(refusal.contains("no registry 'nosuch.example.com'"), "\(unknownScan ?? [:])")

        // Our CLI: the scanned image with its labels, a pull of an image the agent holds.
        let info = try cluster.hangar(["image", "info", "\(registry.address)/\(repository):3"])
        #expect(info.status == 0 && info.stdout.contains("ai.backend.resource.min.mem") && info.stdout.contains("false"), "\(info)")
        let again = try cluster.hangar(["image", "pull", image])
        #expect(again.status == 0 && again.stdout.contains("\(cluster.agentID): already there"), "\(again)")
        let local = try cluster.hangar(["image", "pull", "hangar/python:3.11-bookworm"])
        #expect(local.status != 0 && local.stderr.contains("names no registry"), "\(local)")

        // The image's label asks for at least 64 MiB: less is refused, naming the minimum.
        let (small, refusedSmall) = try await Self.createSession(cluster, name: "pull-small", image: "\(registry.address)/\(repository):3", memory: "32m")
        #expect(small == 400 && "\(refusedSmall ?? [:])".contains("needs at least 64 MiB of mem"), "\(refusedSmall ?? [:])")

        // An unknown tag, and refused credentials: ERROR with the registry's reason.
        let (_, unknown) = try await Self.createSession(cluster, name: "pull-unknown", image: "\(registry.address)/\(repository):9")
        #expect(unknown?["sessionName"] as? String == "pull-unknown")
        let wrong = """
            {"query": "mutation($h: String!, $p: ContainerRegistryInput!) { modify_container_registry(hostname: $h, props: $p) { ok msg } }",
             "variables": {"h": "\(registry.address)", "p": {"password": "not-the-password"}}}
            """
        _ = try await SignedAPI.json(.POST, base: cluster.base, path: "/admin/gql", json: wrong, accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        _ = try await Self.createSession(cluster, name: "pull-refused", image: "\(registry.address)/\(repository):3")
        let failed = try await Self.waitUntilEnded(cluster, ["pull-unknown", "pull-refused"])
        let unknownEnd = try #require(failed["pull-unknown"])
        #expect(unknownEnd.status == .error && unknownEnd.statusInfo.contains("manifest unknown"), "\(unknownEnd.statusInfo)")
        let refusedEnd = try #require(failed["pull-refused"])
        #expect(refusedEnd.status == .error && refusedEnd.statusInfo.contains("unauthorized"), "\(refusedEnd.statusInfo)")
        _ = try? Self.podman(["rmi", "-f", image])
    }
}
