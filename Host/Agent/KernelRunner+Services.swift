import ClusterProtocol
import ContainerEngine
import Foundation
import Logging

extension KernelRunner {
    /// The runner's service socket of a kernel, on this host.
    nonisolated func serviceSocket(_ kernelID: String) -> String { "\(scratchRoot)/\(kernelID)/ipc/services.sock" }

    /// Where a service's output goes: the kernel's IPC folder, which the agent reads on this
    /// host and the runner writes inside the kernel.
    nonisolated func serviceLog(_ kernelID: String, _ name: String) -> (host: String, container: String) {
        ("\(scratchRoot)/\(kernelID)/ipc/services/\(name).log", "\(Self.runnerIPCDirectory)/services/\(name).log")
    }

    /// The image's service definitions, read through the engine (the container's view of its
    /// image). A definition that does not parse is left out with a warning naming the file.
    func serviceDefinitions(containerID: String, kernelID: String) async -> [String: ServiceDefinition] {
        let tar: [UInt8]
        do {
            guard let bytes = try await engine.archive(containerID, path: KernelServices.definitionsDirectory, maxBytes: 4 << 20) else { return [:] }
            tar = bytes
        } catch {
            logger.warning("cannot read the image's service definitions", metadata: ["kernel": .string(kernelID), "error": .string("\(error)")])
            return [:]
        }
        var definitions: [String: ServiceDefinition] = [:]
        do {
            for entry in try TarArchive.entries(tar) where entry.kind == .file && entry.path.hasSuffix(".json") {
                let name = String((entry.path as NSString).lastPathComponent.dropLast(5))
                do {
                    definitions[name] = try JSONDecoder().decode(ServiceDefinition.self, from: Data(entry.data))
                } catch {
                    logger.warning("service definition skipped", metadata: ["kernel": .string(kernelID), "file": .string(entry.path), "error": .string("\(error)")])
                }
            }
        } catch {
            logger.warning("cannot read the image's service definitions", metadata: ["kernel": .string(kernelID), "error": .string("\(error)")])
        }
        return definitions
    }

    /// How the services every kernel has are started: the runner's own terminal server, and
    /// the image's SSH server (dropbear or OpenSSH), listening inside the kernel only.
    nonisolated func intrinsicDefinition(_ name: String) -> ServiceDefinition? {
        switch name {
        case "ttyd":
            return ServiceDefinition(command: [Self.runnerPath, "ttyd", "--port", "{ports[0]}", "--cwd", KernelPaths.workDirectory, "--tmux"])
        case "sshd":
            let script = """
                if command -v dropbear >/dev/null 2>&1; then mkdir -p /etc/dropbear; exec dropbear -F -E -s -R -p 127.0.0.1:{ports[0]}; fi
                if [ -x /usr/sbin/sshd ]; then ssh-keygen -A >/dev/null; mkdir -p /run/sshd; exec /usr/sbin/sshd -D -e -p {ports[0]} -o ListenAddress=127.0.0.1 -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password; fi
                echo "this image has no SSH server: add dropbear-bin or openssh-server to it" >&2; exit 1
                """
            return ServiceDefinition(command: ["/bin/sh", "-c", script])
        default:
            return nil
        }
    }

    /// Starts a kernel's service unless it already runs, and waits until its port accepts
    /// connections. Concurrent calls for one service share one start.
    public func startService(_ kernelID: String, _ request: ServiceStartRequest, defaultTimeout: Double) async throws(ServiceError) -> ServiceStartReply {
        guard let record = record(kernelID) else { throw ServiceError(.unknownService, "no kernel '\(kernelID)' on this agent") }
        let ports = record.servicePorts ?? []
        guard let port = ports.first(where: { $0.name == request.name }) else {
            throw ServiceError(.unknownService, "the session has no app '\(request.name)'; it has: \(ports.map(\.name).joined(separator: ", "))")
        }
        guard let first = port.containerPorts.first else { throw ServiceError(.failed, "the app '\(request.name)' has no port") }
        guard runnerBinary != nil else { throw ServiceError(.failed, "this agent runs kernels without its runner (agent.runner_path), so it cannot reach their services") }
        let definition = intrinsicDefinition(request.name) ?? record.serviceDefinitions?[request.name]
        // Checked first, so a refused argument is said even when the service already runs.
        let launch = try definition?.launch(ports: port.containerPorts, runtimePath: record.runtimePath ?? "/usr/bin/python3", request: request)
        let key = "\(kernelID)/\(request.name)"
        if let running = serviceStarts[key] {
            return try await Self.outcome(running)
        }
        let socket = serviceSocket(kernelID)
        let log = serviceLog(kernelID, request.name)
        let timeout = request.timeout ?? defaultTimeout
        let task = Task<ServiceStartReply, any Error> {
            if await ServiceLink.isListening(socket, port: first) { return ServiceStartReply(status: "running", port: first) }
            if port.protocol == "preopen" {
                throw ServiceError(.refused, "nothing listens on the preopened port \(first) yet: start your server on it inside the session")
            }
            guard let launch else {
                throw ServiceError(.failed, "the image defines no way to start '\(request.name)' (no \(KernelServices.definitionsDirectory)/\(request.name).json) and nothing listens on port \(first)")
            }
            try? FileManager.default.createDirectory(atPath: (log.host as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let pid: Int
            do {
                pid = try await ServiceLink.start(socket, argv: launch.argv, environment: launch.environment, logPath: log.container,
                                                  workingDirectory: KernelPaths.workDirectory)
            } catch {
                throw ServiceError(.failed, "cannot start \(request.name): \(error)")
            }
            let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
            var pause = Duration.milliseconds(20)
            while ContinuousClock.now < deadline {
                if await ServiceLink.isListening(socket, port: first) { return ServiceStartReply(status: "started", port: first) }
                if !(await ServiceLink.isRunning(socket, pid: pid)) {
                    throw ServiceError(.failed, "\(request.name) exited before it opened port \(first)\(Self.tail(log.host))")
                }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(250))
            }
            throw ServiceError(.failed, "\(request.name) did not open port \(first) within \(Int(timeout)) s\(Self.tail(log.host))")
        }
        serviceStarts[key] = task
        defer { serviceStarts[key] = nil }
        return try await Self.outcome(task)
    }

    static func outcome(_ task: Task<ServiceStartReply, any Error>) async throws(ServiceError) -> ServiceStartReply {
        do {
            return try await task.value
        } catch let error as ServiceError {
            throw error
        } catch {
            throw ServiceError(.failed, "\(error)")
        }
    }

    /// The last lines a service wrote, to end an error message with.
    static func tail(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 2000 ? size - 2000 : 0)
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? " (it wrote nothing)" : "; its output ends with:\n" + text
    }

    /// The service socket of a kernel, for a tunnel to a port that must be one of the kernel's
    /// service ports (nothing else is reachable), or for other requests (port nil).
    public func tunnelTarget(_ kernelID: String, port: Int?) throws(KernelError) -> String {
        guard let record = record(kernelID) else { throw .unknownKernel(kernelID) }
        guard runnerBinary != nil else { throw .invalid("this agent runs kernels without its runner (agent.runner_path)") }
        guard let port else { return serviceSocket(kernelID) }
        guard (record.servicePorts ?? []).contains(where: { $0.containerPorts.contains(port) }) else {
            throw .invalid("port \(port) is not one of the kernel's service ports")
        }
        return serviceSocket(kernelID)
    }
}
