import ClusterProtocol
import Foundation
import StateStore
import Testing
import TestSupport

/// The sandbox through the whole cluster: on by default in the agent, switched per resource
/// group by a superadmin (never by a user), and watch reports reaching the session's events.
@Suite(.serialized) struct SandboxClusterTests {
    static let probe = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.unshare(0x10000000)\nprint('unshare', 0 if r == 0 else ctypes.get_errno())\n"

    @Test func groupsSwitchTheSandboxAndWatchReportsBecomeEvents() async throws {
        let cluster = try await TestCluster(prefix: "sbx")
        defer { cluster.stop() }
        func setGroup(_ json: String, accessKey: String? = nil, secretKey: String? = nil) async throws -> Int {
            try await SignedAPI.json(.PATCH, base: cluster.base, path: "/admin/resource-groups/default", json: json,
                                     accessKey: accessKey ?? cluster.accessKey, secretKey: secretKey ?? cluster.secretKey).0
        }
        // The agent's default (enforce): no new user namespace.
        let jailed = try cluster.hangar(["run", TestEngine.image, "-q", "--rm", "-c", Self.probe])
        #expect(jailed.stdout == "unshare \(EPERM)\n", "\(jailed)")

        // A user cannot switch it off, neither through the admin API nor in a session request.
        let user = try cluster.store.createUser(email: "sbx-user@example.com", password: "user-password", passwordRounds: 1000)
        let userKey = try cluster.store.createKeypair(userID: user.id)
        #expect(try await setGroup(#"{"sandbox": "none"}"#, accessKey: userKey.accessKey, secretKey: userKey.secretKey) == 403)
        let (status, _) = try await SignedAPI.json(.POST, base: cluster.base, path: "/session",
                                                   json: #"{"image": "\#(TestEngine.image)", "sessionName": "sbx-sneaky", "sandbox": "none"}"#,
                                                   accessKey: userKey.accessKey, secretKey: userKey.secretKey)
        #expect(status == 400, "a session request cannot carry a sandbox")

        // A superadmin switches the group's sandbox off: the same call now succeeds.
        #expect(try await setGroup(#"{"sandbox": "none"}"#) == 200)
        let open = try cluster.hangar(["run", TestEngine.image, "-q", "--rm", "-c", Self.probe])
        #expect(open.stdout == "unshare 0\n", "\(open)")

        // Watch mode: allowed, and reported to the session's events.
        #expect(try await setGroup(#"{"sandbox": "watch"}"#) == 200)
        let watched = try cluster.hangar(["run", TestEngine.image, "-q", "-t", "sbx-watch", "-c", Self.probe])
        #expect(watched.stdout == "unshare 0\n", "\(watched)")
        let listed = try cluster.hangar(["session", "ls", "--json"])
        let items = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
        let session = try #require(items.first { $0["sessionName"] as? String == "sbx-watch" }?["sessionId"] as? String, "\(listed)")
        let reported = await Readiness.wait(upTo: .seconds(15)) { ((try? cluster.store.sessionEvents(session: session)) ?? []).contains { $0.data.contains(#""syscall":"unshare""#) } }
        #expect(reported, "the watch report reached the session's events")
        _ = try cluster.hangar(["session", "rm", "sbx-watch"])
        let (_, stream) = try await SignedAPI.text(.GET, base: cluster.base, path: "/events/session?sessionName=sbx-watch", accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        #expect(stream.contains("event: sandbox_watch") && stream.contains(#""syscall":"unshare""#), "\(stream)")
        let agentLog = (try? String(contentsOfFile: cluster.dir + "/agent.out", encoding: .utf8)) ?? ""
        let agentErr = (try? String(contentsOfFile: cluster.dir + "/agent.out.err", encoding: .utf8)) ?? ""
        #expect((agentLog + agentErr).contains("sandbox watch"), "the agent logs watch reports")
        #expect(try await setGroup(#"{"sandbox": null, "sandboxPolicy": null}"#) == 200)
    }

    /// A policy naming an unknown syscall, or with a wrong type, stops the agent at start with
    /// the file, the key and the name; `hangard sandbox` shows what a good one gives.
    @Test func aBadPolicyStopsTheAgentAtStart() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        for (toml, expected) in [("[sandbox]\ndeny = [\"mountt\"]\n", "'sandbox.deny': 'mountt' is not a syscall"),
                                 ("[sandbox]\nallow = \"bpf\"\n", "'sandbox.allow': expected an array of strings"),
                                 ("[sandbox]\nmode = \"off\"\n", "'sandbox.mode': expected \"enforce\", \"watch\" or \"none\"")] {
            let config = try dir.write("agent-\(UUID().uuidString.prefix(6)).toml", "[agent]\ncluster_secret = \"x\"\nlisten = \"127.0.0.1:\(try freeLoopbackPort())\"\n" + toml)
            let agent = try Hangard.launch(["agent", "--config", config], log: config + ".out")
            let ended = await Readiness.wait(upTo: .seconds(20)) { !agent.isRunning }
            if !ended { agent.terminate() }
            #expect(ended && agent.terminationStatus != 0, "the agent must not start")
            let err = (try? String(contentsOfFile: config + ".out.err", encoding: .utf8)) ?? ""
            #expect(err.contains(config) && err.contains(expected), "\(err)")
        }
        let good = try dir.write("good.toml", "[sandbox]\nallow = [\"perf_event_open\"]\ndeny = [\"personality\"]\n")
        let (status, out) = try run([TestEngine.binDir + "/hangard", "sandbox", "--config", good])
        #expect(status == 0 && out.contains("mode: enforce") && out.contains("personality") && !out.contains("perf_event_open"), "\(out)")
    }
}
