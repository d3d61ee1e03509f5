import Foundation

/// One code-execution call, as Backend.AI's execute API carries it (HTTP `POST /session/{name}`
/// and the first WebSocket frame of `/stream/session/{id}/execute`) and as the manager passes it
/// on to the agent that runs the session's main kernel.
public struct ExecutionRequest: Codable, Sendable, Equatable {
    /// `query`, `batch`, `continue`, `input` (or `complete`, which is answered with no matches).
    public var mode: String
    /// The code (query), the line of input (input); empty otherwise.
    public var code: String
    /// The run this call belongs to: nil or new starts one; `continue`/`input` echo it.
    public var runId: String?
    /// Batch steps (`clean`, `build`, `exec`: a shell command, `"*"` for the kernel's default,
    /// empty to skip).
    public var options: BatchOptions?

    public init(mode: String, code: String = "", runId: String? = nil, options: BatchOptions? = nil) {
        self.mode = mode
        self.code = code
        self.runId = runId
        self.options = options
    }
}

/// The batch-mode options the official client sends; other keys are ignored.
public struct BatchOptions: Codable, Sendable, Equatable {
    public var clean: String?
    public var build: String?
    public var exec: String?

    public init(clean: String? = nil, build: String? = nil, exec: String? = nil) {
        self.clean = clean
        self.build = build
        self.exec = exec
    }

    enum CodingKeys: String, CodingKey { case clean, build, exec }

    /// Lenient: a non-string value (the client's `buildLog: false`) is not an error.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clean = try? c.decodeIfPresent(String.self, forKey: .clean)
        build = try? c.decodeIfPresent(String.self, forKey: .build)
        exec = try? c.decodeIfPresent(String.self, forKey: .exec)
    }
}

/// What one execute call returns: Backend.AI's `result` object.
public struct ExecutionResult: Codable, Sendable, Equatable {
    /// `continued` (call again with `continue`), `waiting-input` (answer with `input`),
    /// `clean-finished`, `build-finished` (batch steps), `finished`.
    public var status: String
    public var runId: String
    /// The exit status once a step or the run finished: a query gives 0 or 1, a shell
    /// command its status.
    public var exitCode: Int?
    /// Output since the previous call, in order, as `[stream, text]` pairs (`stdout`/`stderr`).
    public var console: [[String]]
    /// For `waiting-input`: what the program asked with.
    public var options: InputOptions?
    public var files: [String]

    public init(status: String, runId: String, exitCode: Int? = nil, console: [[String]] = [], options: InputOptions? = nil, files: [String] = []) {
        self.status = status
        self.runId = runId
        self.exitCode = exitCode
        self.console = console
        self.options = options
        self.files = files
    }
}

/// The prompt of a program waiting for input (the client reads `is_password` as a boolean).
public struct InputOptions: Codable, Sendable, Equatable {
    public var isPassword: Bool
    public var prompt: String
    public init(isPassword: Bool = false, prompt: String = "") {
        self.isPassword = isPassword
        self.prompt = prompt
    }
    enum CodingKeys: String, CodingKey {
        case isPassword = "is_password"
        case prompt
    }
}

/// Files written into a kernel's working directory (`/home/work`).
public struct KernelUpload: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        /// Relative to the working directory; no `..`, no absolute paths.
        public var path: String
        /// The content, base64.
        public var data: String
        public init(path: String, data: String) {
            self.path = path
            self.data = data
        }
    }
    public var files: [File]
    public init(files: [File]) { self.files = files }
}

/// Paths every kernel container has, which the manager and the agent must agree on.
public enum KernelPaths {
    /// The working directory (the kernel's scratch `work` folder); vfolders mount below it.
    public static let workDirectory = "/home/work"
}
