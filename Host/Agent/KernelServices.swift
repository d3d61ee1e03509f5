import ClusterProtocol
import Foundation

/// A kernel's services, Backend.AI's way: the image label `ai.backend.service-ports`, the
/// image's service definitions (`/etc/backend.ai/service-defs/<name>.json`), the two services
/// every kernel has (`sshd`, `ttyd`) and the ports a session asked to preopen.
public enum KernelServices {
    /// The image label that lists an image's services.
    public static let label = "ai.backend.service-ports"
    /// Where images keep their service definitions.
    public static let definitionsDirectory = "/etc/backend.ai/service-defs"
    /// The services every kernel has, on Backend.AI's ports.
    public static let sshdPort = 2200
    public static let ttydPort = 7681
    /// Ports an image may not claim: the intrinsic services' and Backend.AI's own (2000-2003,
    /// which its clients and images treat as reserved).
    public static let reservedPorts: Set<Int> = [2000, 2001, 2002, 2003, sshdPort, ttydPort]
    static let protocols: Set<String> = ["tcp", "http", "preopen", "vnc", "rdp"]

    /// A label that cannot be used, with the entry at fault.
    public struct LabelError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { "image label \(KernelServices.label): \(message)" }
    }

    /// Parses `name:proto:port` and `name:proto:[p1,p2]` entries, comma-separated (commas
    /// inside brackets belong to the port list). `pty` entries are ignored as Backend.AI does.
    public static func parseLabel(_ label: String) throws(LabelError) -> [ServicePort] {
        var entries: [String] = []
        var current = ""
        var depth = 0
        for ch in label {
            if ch == "[" { depth += 1 } else if ch == "]" { depth -= 1 }
            if ch == ",", depth == 0 {
                entries.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        entries.append(current)
        var ports: [ServicePort] = []
        var seenPorts = Set<Int>()
        var seenNames = Set<String>()
        for raw in entries {
            let entry = raw.trimmingCharacters(in: .whitespaces)
            if entry.isEmpty { continue }
            let parts = entry.split(separator: ":", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { throw LabelError(message: "'\(entry)' is not name:protocol:port") }
            let (name, proto, portText) = (parts[0], parts[1].lowercased(), parts[2])
            if proto == "pty" { continue }
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw LabelError(message: "'\(name)' is not a service name (letters, digits, '-', '_', '.')")
            }
            guard protocols.contains(proto) else {
                throw LabelError(message: "'\(entry)': protocol '\(proto)' is not one of \(protocols.sorted().joined(separator: ", "))")
            }
            let numbers: [String]
            if portText.hasPrefix("[") && portText.hasSuffix("]") {
                numbers = portText.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            } else {
                numbers = [portText]
            }
            var list: [Int] = []
            for text in numbers {
                guard let port = Int(text), (1025...65535).contains(port) else {
                    throw LabelError(message: "'\(entry)': '\(text)' is not a port in 1025-65535")
                }
                guard !reservedPorts.contains(port) else {
                    throw LabelError(message: "'\(entry)': port \(port) is reserved (\(reservedPorts.sorted().map(String.init).joined(separator: ", ")))")
                }
                guard seenPorts.insert(port).inserted else { throw LabelError(message: "'\(entry)': port \(port) is used twice") }
                list.append(port)
            }
            guard !list.isEmpty else { throw LabelError(message: "'\(entry)' names no port") }
            guard seenNames.insert(name).inserted, name != "sshd", name != "ttyd" else {
                throw LabelError(message: "the service name '\(name)' is used twice (sshd and ttyd are every kernel's own)")
            }
            ports.append(ServicePort(name: name, protocol: proto, containerPorts: list))
        }
        return ports
    }

    /// Everything a kernel offers: the intrinsic services, the image's (with what their
    /// definitions add) and the preopened ports.
    public static func servicePorts(label: String?, definitions: [String: ServiceDefinition], preopen: [Int]) throws(LabelError) -> [ServicePort] {
        var ports = [ServicePort(name: "sshd", protocol: "tcp", containerPorts: [sshdPort]),
                     ServicePort(name: "ttyd", protocol: "http", containerPorts: [ttydPort])]
        var image = try label.map(parseLabel) ?? []
        for i in image.indices {
            guard let def = definitions[image[i].name] else { continue }
            image[i].urlTemplate = def.urlTemplate
            image[i].allowedArguments = def.allowedArguments
            image[i].allowedEnvs = def.allowedEnvs
        }
        ports += image
        let used = Set(ports.flatMap(\.containerPorts))
        for port in preopen {
            guard (1025...65535).contains(port), !used.contains(port) else {
                throw LabelError(message: "preopen port \(port) must be in 1025-65535 and not one of the image's or \(reservedPorts.sorted())")
            }
            ports.append(ServicePort(name: String(port), protocol: "preopen", containerPorts: [port]))
        }
        return ports
    }
}

/// A service definition as Backend.AI's images carry it (`/etc/backend.ai/service-defs/NAME.json`).
public struct ServiceDefinition: Codable, Sendable, Equatable {
    /// One prestart action: `write_file`, `write_tempfile`, `run_command`, `mkdir` or `log`.
    public struct Action: Codable, Sendable, Equatable {
        public var action: String
        public var args: [String: JSONArgument]
        /// For `write_tempfile` (the file's path) and `run_command` (its output): the variable
        /// later templates refer to as `{ref}`.
        public var ref: String?
    }

    public var command: [String]
    public var prestart: [Action]
    public var env: [String: String]
    public var urlTemplate: String?
    public var allowedArguments: [String]?
    public var allowedEnvs: [String]?
    public var defaultArguments: [String: ServiceArgument]?

    enum CodingKeys: String, CodingKey {
        case command, prestart, env
        case prestartActions = "prestart_actions"
        case urlTemplate = "url_template"
        case allowedArguments = "allowed_arguments"
        case allowedEnvs = "allowed_envs"
        case defaultArguments = "default_arguments"
    }

    public init(command: [String], prestart: [Action] = [], env: [String: String] = [:], urlTemplate: String? = nil,
                allowedArguments: [String]? = nil, allowedEnvs: [String]? = nil, defaultArguments: [String: ServiceArgument]? = nil) {
        (self.command, self.prestart, self.env, self.urlTemplate) = (command, prestart, env, urlTemplate)
        (self.allowedArguments, self.allowedEnvs, self.defaultArguments) = (allowedArguments, allowedEnvs, defaultArguments)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decode([String].self, forKey: .command)
        guard !command.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .command, in: c, debugDescription: "the command is empty")
        }
        // Backend.AI's images spell it `prestart`; some documents say `prestart_actions`.
        prestart = try c.decodeIfPresent([Action].self, forKey: .prestart) ?? c.decodeIfPresent([Action].self, forKey: .prestartActions) ?? []
        env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        urlTemplate = try c.decodeIfPresent(String.self, forKey: .urlTemplate)
        allowedArguments = try c.decodeIfPresent([String].self, forKey: .allowedArguments)
        allowedEnvs = try c.decodeIfPresent([String].self, forKey: .allowedEnvs)
        defaultArguments = try c.decodeIfPresent([String: ServiceArgument].self, forKey: .defaultArguments)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(command, forKey: .command)
        try c.encode(prestart, forKey: .prestart)
        try c.encode(env, forKey: .env)
        try c.encodeIfPresent(urlTemplate, forKey: .urlTemplate)
        try c.encodeIfPresent(allowedArguments, forKey: .allowedArguments)
        try c.encodeIfPresent(allowedEnvs, forKey: .allowedEnvs)
        try c.encodeIfPresent(defaultArguments, forKey: .defaultArguments)
    }
}

/// A prestart action's argument: a string, a list of strings (file bodies), a number or a flag.
public enum JSONArgument: Codable, Sendable, Equatable {
    case text(String)
    case lines([String])
    case number(Double)
    case flag(Bool)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .flag(b) } else if let s = try? c.decode(String.self) { self = .text(s) }
        else if let n = try? c.decode(Double.self) { self = .number(n) } else if let l = try? c.decode([String].self) { self = .lines(l) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a string, a list of strings, a number or a boolean") }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .text(let s): try c.encode(s)
        case .lines(let l): try c.encode(l)
        case .number(let n): try c.encode(n)
        case .flag(let b): try c.encode(b)
        }
    }

    var text: String? {
        switch self {
        case .text(let s): s
        case .lines(let l): l.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined()
        case .number(let n): n == n.rounded() ? String(Int64(n)) : String(n)
        case .flag(let b): b ? "true" : "false"
        }
    }
}

/// What the runner is asked to run for a service: an argv (direct, or `/bin/sh -c SCRIPT` when
/// prestart actions or refs need a shell) and the environment it adds.
public struct ServiceLaunch: Sendable, Equatable {
    public var argv: [String]
    public var environment: [String: String]
}

/// Why a service cannot be started; each names what to change.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case unknownService, refused, failed, unreachable }
    public let kind: Kind
    public let message: String
    public var description: String { message }
    public init(_ kind: Kind, _ message: String) {
        (self.kind, self.message) = (kind, message)
    }
}

extension ServiceDefinition {
    /// The command line for a start request: `{ports[N]}`, `{runtime_path}` and refs filled
    /// in, the request's arguments and envs checked against what the definition allows.
    public func launch(ports: [Int], runtimePath: String, request: ServiceStartRequest) throws(ServiceError) -> ServiceLaunch {
        var variables: [String: String] = ["runtime_path": runtimePath]
        for (i, port) in ports.enumerated() { variables["ports[\(i)]"] = String(port) }
        if let first = ports.first { variables["port"] = String(first) }
        let refs = Set(prestart.compactMap(\.ref))
        var arguments = defaultArguments ?? [:]
        for (name, value) in request.arguments ?? [:] {
            guard allowedArguments?.contains(name) == true else {
                throw ServiceError(.refused, "the argument '\(name)' is not allowed for \(request.name) (allowed: \((allowedArguments ?? []).joined(separator: ", ").nonEmpty ?? "none"))")
            }
            arguments[name] = value
        }
        var env: [String: String] = [:]
        for (name, value) in self.env { env[name] = Template(value, variables: variables, refs: []).literalText }
        for (name, value) in request.envs ?? [:] {
            guard allowedEnvs?.contains(name) == true else {
                throw ServiceError(.refused, "the environment variable '\(name)' is not allowed for \(request.name) (allowed: \((allowedEnvs ?? []).joined(separator: ", ").nonEmpty ?? "none"))")
            }
            env[name] = value
        }
        var words = command.map { Template($0, variables: variables, refs: refs) }
        for name in arguments.keys.sorted() {
            words.append(Template(literal: name))
            words += arguments[name]!.words.map { Template(literal: $0) }
        }
        if prestart.isEmpty && words.allSatisfy(\.isLiteral) {
            return ServiceLaunch(argv: words.map(\.literalText), environment: env)
        }
        var script = ["set -e"]
        for action in prestart {
            script.append(try shellLine(for: action, variables: variables, refs: refs))
        }
        script.append("exec " + words.map(\.shellWord).joined(separator: " "))
        return ServiceLaunch(argv: ["/bin/sh", "-c", script.joined(separator: "\n")], environment: env)
    }

    func shellLine(for action: Action, variables: [String: String], refs: Set<String>) throws(ServiceError) -> String {
        func arg(_ key: String) throws(ServiceError) -> Template {
            guard let text = action.args[key]?.text else { throw ServiceError(.failed, "the prestart action \(action.action) needs '\(key)'") }
            return Template(text, variables: variables, refs: refs)
        }
        let mode = action.args["mode"]?.text.flatMap { Int($0, radix: 8) }.map { String($0, radix: 8) }
        let refVariable = action.ref.map(Template.variableName)
        switch action.action {
        case "write_file":
            let file = try arg("filename").shellWord
            let redirect = action.args["append"] == .flag(true) ? ">>" : ">"
            return "mkdir -p \"$(dirname \(file))\"; printf '%s' \(try arg("body").shellWord) \(redirect) \(file)"
                + (mode.map { "; chmod \($0) \(file)" } ?? "")
        case "write_tempfile":
            guard let refVariable else { throw ServiceError(.failed, "write_tempfile needs a ref to name the file") }
            return "\(refVariable)=$(mktemp); printf '%s' \(try arg("body").shellWord) > \"$\(refVariable)\"" + (mode.map { "; chmod \($0) \"$\(refVariable)\"" } ?? "")
        case "run_command":
            guard case .lines(let command)? = action.args["command"] else { throw ServiceError(.failed, "run_command needs a command list") }
            let line = command.map { Template($0, variables: variables, refs: refs).shellWord }.joined(separator: " ")
            return refVariable.map { "\($0)=$(\(line))" } ?? line
        case "mkdir":
            return "mkdir -p \(try arg("path").shellWord)"
        case "log":
            return "echo \(try arg("body").shellWord) >&2"
        default:
            throw ServiceError(.failed, "unknown prestart action '\(action.action)' (write_file, write_tempfile, run_command, mkdir, log)")
        }
    }

    /// A template string: literal text with `{variable}` filled in now and `{ref}` left to the
    /// shell (its value exists only once the prestart actions ran).
    struct Template {
        enum Part { case literal(String), ref(String) }
        var parts: [Part]

        init(literal: String) { parts = [.literal(literal)] }

        init(_ text: String, variables: [String: String], refs: Set<String>) {
            parts = []
            var literal = ""
            var rest = Substring(text)
            while let open = rest.firstIndex(of: "{") {
                literal += rest[..<open]
                guard let close = rest[open...].firstIndex(of: "}") else { break }
                let name = String(rest[rest.index(after: open)..<close])
                if let value = variables[name] {
                    literal += value
                } else if refs.contains(name) {
                    if !literal.isEmpty { parts.append(.literal(literal)) }
                    literal = ""
                    parts.append(.ref(name))
                } else {
                    literal += rest[open...close]
                }
                rest = rest[rest.index(after: close)...]
            }
            literal += rest
            if !literal.isEmpty || parts.isEmpty { parts.append(.literal(literal)) }
        }

        static func variableName(_ ref: String) -> String {
            "__ref_" + String(ref.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) ? Character($0) : "_" })
        }

        var isLiteral: Bool { parts.allSatisfy { if case .literal = $0 { true } else { false } } }
        var literalText: String { parts.map { if case .literal(let t) = $0 { t } else { "" } }.joined() }
        var shellWord: String {
            parts.map { part in
                switch part {
                case .literal(let text): "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
                case .ref(let name): "\"$" + Self.variableName(name) + "\""
                }
            }.joined()
        }
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
