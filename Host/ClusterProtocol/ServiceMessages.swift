import Foundation

/// The manager ↔ agent contract for a kernel's services (Backend.AI's service ports): what a
/// kernel offers, starting one, and the byte tunnel to its port.
extension AgentAPI {
    /// POST a `ServiceStartRequest`; answered with a `ServiceStartReply`.
    public static func serviceStartPath(_ id: String) -> String { "\(kernelsPath)/\(id)/services/start" }
    /// WebSocket (`?port=N`): binary frames carry the bytes of one TCP connection to that port
    /// inside the kernel. The agent closes with `TunnelClose` codes.
    public static func tunnelPath(_ id: String) -> String { "\(kernelsPath)/\(id)/tunnel" }
    /// WebSocket: the kernel's terminal in Backend.AI's JSON messages (`stdin`, `resize`,
    /// `ping`, `restart` in; `out` back).
    public static func ptyPath(_ id: String) -> String { "\(kernelsPath)/\(id)/pty" }
    /// POST a `KernelFilesRequest` for `KernelFileList`.
    public static func listFilesPath(_ id: String) -> String { "\(kernelsPath)/\(id)/files/list" }
    /// POST a `KernelFilesRequest` (`paths`) for a tar archive of each, one after another,
    /// as `application/x-tar` parts of a `multipart/mixed` reply.
    public static func downloadPath(_ id: String) -> String { "\(kernelsPath)/\(id)/files/download" }
}

/// The WebSocket close codes of app streams (Backend.AI's): the service could not be reached
/// (try again), an error on the way, or the service closed its side.
public enum TunnelClose {
    public static let refused: UInt16 = 1013
    public static let error: UInt16 = 1011
    public static let upstreamClosed: UInt16 = 1001
}

/// One service a kernel offers (an entry of Backend.AI's `service_ports`).
public struct ServicePort: Codable, Sendable, Equatable {
    /// `ttyd`, `sshd`, `jupyter`, or the port number of a preopened port.
    public var name: String
    /// `tcp`, `http`, `preopen`, `vnc` or `rdp`.
    public var `protocol`: String
    /// The ports the service listens on inside the kernel; the first is the one streams reach.
    public var containerPorts: [Int]
    /// From the image's service definition, passed on to clients (`backend.ai apps`).
    public var urlTemplate: String?
    public var allowedArguments: [String]?
    public var allowedEnvs: [String]?

    public init(name: String, protocol: String, containerPorts: [Int], urlTemplate: String? = nil,
                allowedArguments: [String]? = nil, allowedEnvs: [String]? = nil) {
        (self.name, self.protocol, self.containerPorts) = (name, `protocol`, containerPorts)
        (self.urlTemplate, self.allowedArguments, self.allowedEnvs) = (urlTemplate, allowedArguments, allowedEnvs)
    }
}

/// Start a kernel's service (if it does not run yet) and wait until its port accepts connections.
public struct ServiceStartRequest: Codable, Sendable, Equatable {
    public var name: String
    /// Extra command-line options, as Backend.AI's clients send them: an option with no value
    /// (nil), one value, or several. Only the service's `allowed_arguments` are accepted.
    public var arguments: [String: ServiceArgument]?
    /// Extra environment variables; only the service's `allowed_envs` are accepted.
    public var envs: [String: String]?
    /// Seconds to wait for the port; nil: the agent's default.
    public var timeout: Double?

    public init(name: String, arguments: [String: ServiceArgument]? = nil, envs: [String: String]? = nil, timeout: Double? = nil) {
        (self.name, self.arguments, self.envs, self.timeout) = (name, arguments, envs, timeout)
    }
}

/// The value of one service argument: none (a flag), one value, or several.
public enum ServiceArgument: Codable, Sendable, Equatable {
    case flag
    case value(String)
    case values([String])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .flag
        } else if let text = try? container.decode(String.self) {
            self = .value(text)
        } else if let number = try? container.decode(Double.self) {
            self = .value(number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number))
        } else if let list = try? container.decode([String].self) {
            self = .values(list)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "an argument's value must be null, a string or a list of strings")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .flag: try container.encodeNil()
        case .value(let text): try container.encode(text)
        case .values(let list): try container.encode(list)
        }
    }

    /// The words this argument adds after its option name.
    public var words: [String] {
        switch self {
        case .flag: []
        case .value(let text): [text]
        case .values(let list): list
        }
    }
}

/// The outcome of a start: the port streams connect to.
public struct ServiceStartReply: Codable, Sendable, Equatable {
    /// `started` (it was started now) or `running` (it already ran).
    public var status: String
    public var port: Int

    public init(status: String, port: Int) {
        (self.status, self.port) = (status, port)
    }
}

/// Files in a kernel: a path relative to its home directory (or absolute under it).
public struct KernelFilesRequest: Codable, Sendable, Equatable {
    public var path: String?
    public var paths: [String]?
    public init(path: String? = nil, paths: [String]? = nil) {
        (self.path, self.paths) = (path, paths)
    }
}

/// A directory listing inside a kernel, in the shape Backend.AI's `list_files` gives.
public struct KernelFileList: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var filename: String
        public var size: Int
        /// `ls -l` style (`drwxr-xr-x`).
        public var mode: String
        /// Seconds since the epoch.
        public var ctime: Double
        public var atime: Double
        public var mtime: Double
        public init(filename: String, size: Int, mode: String, ctime: Double, atime: Double, mtime: Double) {
            (self.filename, self.size, self.mode, self.ctime, self.atime, self.mtime) = (filename, size, mode, ctime, atime, mtime)
        }
    }
    public var files: [Entry]
    /// The directory listed, as the kernel sees it.
    public var abspath: String
    public var errors: String
    public init(files: [Entry], abspath: String, errors: String) {
        (self.files, self.abspath, self.errors) = (files, abspath, errors)
    }
}
