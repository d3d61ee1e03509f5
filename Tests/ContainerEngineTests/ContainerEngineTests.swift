import ContainerEngine
import Foundation
import InMemoryEngine
import Testing
import TestSupport

/// One conformance scenario run against every `ContainerEngine`: the Docker Engine API client
/// on the real podman service and the in-memory test double. Whatever the agent relies on
/// (typed errors with the engine's status, exit codes, logs, label filters, forced removal,
/// events) must mean the same on both, or tests on the double would prove nothing.
@Suite(.serialized) struct ContainerEngineTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case podman, inMemory
        var testDescription: String { rawValue }
    }

    /// The commands the scenario runs, and what the in-memory engine makes of them.
    static let exiting = ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]
    static let sleeping = ["/bin/sh", "-c", "exec sleep 300"]

    static func engine(_ kind: Kind) throws -> any ContainerEngine {
        switch kind {
        case .podman: return DockerEngineClient(socketPath: try TestEngine.socket())
        case .inMemory:
            return InMemoryEngine(images: [TestEngine.image]) { spec in
                spec.command == exiting ? .exits(code: 3, stdout: "out\n", stderr: "err\n") : .runsUntilStopped
            }
        }
    }

    static func spec(_ name: String, _ command: [String], labels: [String: String]) -> ContainerSpec {
        var spec = ContainerSpec(name: name, image: TestEngine.image)
        spec.entrypoint = []
        spec.command = command
        spec.labels = labels
        spec.memoryBytes = 64 << 20
        return spec
    }

    static func status(_ body: () async throws -> Void) async -> Int? {
        do { try await body(); return nil } catch let error as EngineError { return error.status } catch { return -1 }
    }

    @Test(arguments: Kind.allCases)
    func theLifecycleMeansTheSameOnEveryEngine(kind: Kind) async throws {
        let engine = try Self.engine(kind)
        let run = "conf-\(UUID().uuidString.prefix(8).lowercased())"
        let labels = ["hangar.test": run]
        #expect(try await engine.version().name.isEmpty == false)
        #expect(try await engine.imageExists(TestEngine.image))
        #expect(try await engine.imageExists("hangar/no-such-image:1") == false)

        // A missing image is a 404, whatever the engine's own wording.
        let missing = await Self.status { _ = try await engine.create(ContainerSpec(name: run + "-x", image: "hangar/no-such-image:1")) }
        #expect(missing == 404)

        let exiting = try await engine.create(Self.spec(run + "-exit", Self.exiting, labels: labels.merging(["role": "exit"]) { $1 }))
        var sleeping: String?
        do {
            // A name in use is a conflict (podman answers some conflicts with 500; the client reads them as 409).
            let taken = await Self.status { _ = try await engine.create(Self.spec(run + "-exit", Self.exiting, labels: labels)) }
            #expect(taken == 409)

            try await engine.start(exiting)
            #expect(try await engine.wait(exiting) == 3)
            let ended = try #require(try await engine.inspect(exiting))
            #expect(ended.state == ContainerState(running: false, exitCode: 3, oomKilled: false))
            #expect(ended.name.hasSuffix(run + "-exit") && ended.labels["role"] == "exit")
            let logs = try await engine.logs(exiting)
            #expect(logs.stdout == "out\n" && logs.stderr == "err\n", "\(logs)")

            // Events for our label only: the sleeper's start, then its death.
            let events = engine.events(labels: ["hangar.test=\(run)"])
            let seen = Task { () -> [String] in
                var actions: [String] = []
                for try await event in events where event.type == "container" {
                    actions.append(event.isContainerExit ? "exit" : event.action)
                    if event.isContainerExit { break }
                }
                return actions
            }
            try await Task.sleep(for: .milliseconds(300))
            let sleeper = try await engine.create(Self.spec(run + "-sleep", Self.sleeping, labels: labels.merging(["role": "sleep"]) { $1 }))
            sleeping = sleeper
            try await engine.start(sleeper)
            #expect(try await engine.inspect(sleeper)?.state.running == true)
            #expect(await Self.status { try await engine.remove(sleeper, force: false) } == 409, "a running container is not removed without force")

            #expect(Set(try await engine.containers(labels: ["hangar.test=\(run)"]).map(\.id)) == [exiting, sleeper])
            #expect(try await engine.containers(labels: ["hangar.test=\(run)", "role=sleep"]).map(\.id) == [sleeper])
            #expect(try await engine.containers(labels: ["hangar.test=\(run)-other"]).isEmpty)

            try await engine.kill(sleeper, signal: "SIGKILL")
            #expect(try await engine.wait(sleeper) == 137)
            let actions = try await seen.value
            #expect(actions.contains("start") && actions.last == "exit", "\(actions)")
        } catch {
            Issue.record(error)
        }
        try await engine.remove(exiting, force: true)
        if let sleeping { try await engine.remove(sleeping, force: true) }
        #expect(try await engine.inspect(exiting) == nil)
        try await engine.remove(exiting, force: true)  // a missing container is fine to remove
        #expect(await Self.status { try await engine.start(exiting) } == 404)
        #expect(try await engine.containers(labels: ["hangar.test=\(run)"]).isEmpty)
    }

    @Test func imageReferencesSplitAtTheTagNotTheRegistryPort() {
        #expect(ImageReference.split("python:3.11") == ("python", "3.11"))
        #expect(ImageReference.split("registry.local:5000/hangar/python") == ("registry.local:5000/hangar/python", "latest"))
        #expect(ImageReference.split("registry.local:5000/hangar/python:3.11") == ("registry.local:5000/hangar/python", "3.11"))
    }

    @Test func labelFiltersMatchKeysAndValues() {
        #expect(LabelFilter.matches(["a": "1", "b": "2"], ["a=1", "b"]))
        #expect(!LabelFilter.matches(["a": "1"], ["a=2"]))
        #expect(!LabelFilter.matches(["a": "1"], ["c"]))
        #expect(LabelFilter.matches([:], []))
    }
}
