/// The manager ↔ agent image contract: the manager asks an agent to make sure it holds a
/// session's image before creating its kernels, and reads the pull's progress as it comes.
extension AgentAPI {
    /// POST an `ImagePullRequest`; the answer is one `ImagePullProgress` JSON object per line
    /// (`present` at once when the image is already there; else `pulling` lines, then
    /// `pulled` or `failed` with the registry's reason). Concurrent requests for one image
    /// share one pull.
    public static let imagePullPath = "/rpc/images/pull"
}

/// A registry login the manager hands an agent for one pull (opened from the manager's sealed
/// copy; the agent keeps it only for the pull).
public struct RegistryLogin: Codable, Sendable, Equatable {
    public var serverAddress: String
    public var username: String
    public var password: String
    public init(serverAddress: String, username: String, password: String) {
        self.serverAddress = serverAddress
        self.username = username
        self.password = password
    }
}

/// The body of `imagePullPath`.
public struct ImagePullRequest: Codable, Sendable, Equatable {
    /// The full reference, registry included (`cr.example.com/ns/name:tag`).
    public var image: String
    public var login: RegistryLogin?
    public init(image: String, login: RegistryLogin?) {
        self.image = image
        self.login = login
    }
}

/// One line of a pull's answer.
public struct ImagePullProgress: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        /// The agent already held the image: nothing was pulled.
        case present
        /// Progress (or, for a request that joined another's pull, that it waits for it).
        case pulling
        /// The image is now present.
        case pulled
        /// The pull failed; `error` says why, in the registry's words.
        case failed
    }
    public var status: Status
    /// The engine's words for this step ("Downloading", "Pull complete", ...).
    public var detail: String?
    /// Bytes done and in all, summed over the layers the engine reported so far.
    public var current: Int64?
    public var total: Int64?
    public var error: String?
    public init(status: Status, detail: String? = nil, current: Int64? = nil, total: Int64? = nil, error: String? = nil) {
        self.status = status
        self.detail = detail
        self.current = current
        self.total = total
        self.error = error
    }
}

/// What an image reference says about where the image comes from.
public enum ImageName {
    /// The registry a reference names, as Docker reads it: the first path component when it
    /// has a '.' or a ':' or is "localhost" (`cr.example.com/ns/img:1` → `cr.example.com`);
    /// nil for names without one (`hangar/python:3.11`), which only images already on the
    /// agent satisfy.
    public static func registryHost(_ image: String) -> String? {
        guard let slash = image.firstIndex(of: "/") else { return nil }
        let first = String(image[..<slash])
        return first.contains(".") || first.contains(":") || first == "localhost" ? first : nil
    }
}
