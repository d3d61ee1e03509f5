import ClusterProtocol
import ContainerEngine
import Logging

/// Pulls the images kernels need, through the engine: one engine pull per image however
/// many sessions wait for it at once (the first request sees the engine's progress; the
/// others wait for the same pull and see how it ended).
actor ImagePuller {
    let engine: any ContainerEngine
    let logger: Logger
    /// Pulls in progress by reference; each answers whether it pulled (false: was present).
    private var inFlight: [String: Task<Bool, any Error>] = [:]

    init(engine: any ContainerEngine, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    /// Starts a pull of `reference` unless it is present, or joins the pull of it already in
    /// progress. Returns the progress to relay (the engine's, for the request that started
    /// the pull; one "waiting" step for one that joined) and how it ends: `.present` (nothing
    /// pulled) or `.pulled`, or `EngineError` with the registry's reason.
    func start(_ reference: String, login: RegistryLogin?) async -> (progress: AsyncStream<ImagePullProgress>, outcome: Task<ImagePullProgress.Status, any Error>) {
        // A present image is answered at once, before any in-flight pull is joined: a request
        // must not report "waiting for a pull" when another one only checked for the image.
        if inFlight[reference] == nil, (try? await engine.imageExists(reference)) == true, inFlight[reference] == nil {
            let (stream, continuation) = AsyncStream<ImagePullProgress>.makeStream()
            continuation.finish()
            return (stream, Task { .present })
        }
        if let running = inFlight[reference] {
            let (stream, continuation) = AsyncStream<ImagePullProgress>.makeStream()
            continuation.yield(ImagePullProgress(status: .pulling, detail: "waiting for a pull of the same image already in progress"))
            continuation.finish()
            return (stream, Task { try await running.value ? .pulled : .present })
        }
        let (stream, continuation) = AsyncStream<ImagePullProgress>.makeStream()
        let credentials = login.map { RegistryCredentials(serverAddress: $0.serverAddress, username: $0.username, password: $0.password) }
        let task = Task { [engine, logger] () async throws -> Bool in
            defer { continuation.finish() }
            do {
                let pulled = try await Self.pull(reference, credentials: credentials, engine: engine, logger: logger, continuation: continuation)
                self.forget(reference)
                return pulled
            } catch {
                self.forget(reference)
                throw error
            }
        }
        inFlight[reference] = task
        return (stream, Task { try await task.value ? .pulled : .present })
    }

    private func forget(_ reference: String) { inFlight[reference] = nil }

    /// The pull itself: false when the image was already there.
    private static func pull(_ reference: String, credentials: RegistryCredentials?, engine: any ContainerEngine, logger: Logger,
                             continuation: AsyncStream<ImagePullProgress>.Continuation) async throws -> Bool {
        if try await engine.imageExists(reference) { return false }
        logger.info("pulling image", metadata: ["image": .string(reference)])
        // Bytes per layer, from the engine's download reports (extraction is not counted twice).
        var layers: [String: (current: Int64, total: Int64)] = [:]
        for try await step in engine.pull(reference, credentials: credentials) {
            if let layer = step.layer, let total = step.total, total > 0, step.status.lowercased().hasPrefix("download") {
                layers[layer] = (step.current ?? 0, total)
            }
            let total = layers.values.reduce(Int64(0)) { $0 + $1.total }
            let current = layers.values.reduce(Int64(0)) { $0 + $1.current }
            continuation.yield(ImagePullProgress(status: .pulling, detail: step.status, current: total > 0 ? current : nil, total: total > 0 ? total : nil))
        }
        logger.info("image pulled", metadata: ["image": .string(reference)])
        return true
    }
}
