@testable import Agent
import ClusterProtocol
import Foundation
import Testing

/// Service ports and service definitions as Backend.AI's images write them: the label's
/// forms and its mistakes, templating, prestart actions, and what a start request may add.
struct KernelServicesTests {
    @Test func labelFormsAndIntrinsicServices() throws {
        let ports = try KernelServices.servicePorts(label: "jupyter:http:8081, vscode:http:8180,tb:preopen:[6006,6007],pty:pty:3000",
                                                    definitions: [:], preopen: [9000])
        #expect(ports.map(\.name) == ["sshd", "ttyd", "jupyter", "vscode", "tb", "9000"])
        #expect(ports.first { $0.name == "tb" }?.containerPorts == [6006, 6007])
        #expect(ports.first { $0.name == "sshd" }?.containerPorts == [2200] && ports.first { $0.name == "ttyd" }?.protocol == "http")
        #expect(ports.last?.protocol == "preopen")
    }

    @Test func labelMistakesNameTheEntry() {
        let cases: [(String, String)] = [
            ("jupyter:http", "is not name:protocol:port"),
            ("jupyter:ftp:8081", "protocol 'ftp'"),
            ("jupyter:http:80", "not a port in 1025-65535"),
            ("jupyter:http:8081,lab:http:8081", "port 8081 is used twice"),
            ("web:http:7681", "port 7681 is reserved"),
            ("jupyter:http:8081,jupyter:tcp:8082", "'jupyter' is used twice"),
            ("sshd:tcp:2222", "sshd and ttyd are every kernel's own"),
            ("a b:http:8081", "not a service name"),
        ]
        for (label, expected) in cases {
            #expect(throws: KernelServices.LabelError.self, "\(label)") { try KernelServices.parseLabel(label) }
            do {
                _ = try KernelServices.parseLabel(label)
            } catch {
                #expect(error.description.contains(expected), "\(label): \(error)")
            }
        }
        #expect(throws: KernelServices.LabelError.self) { try KernelServices.servicePorts(label: "jupyter:http:8081", definitions: [:], preopen: [8081]) }
    }

    @Test func definitionsTemplateArgumentsAndRefuseWhatIsNotAllowed() throws {
        let json = """
            {"command": ["{runtime_path}", "-m", "notebook", "--port", "{ports[0]}", "--config", "{cfg}"],
             "prestart": [{"action": "write_tempfile", "args": {"body": ["c.A = 1", "c.B = '{ports[0]}'"]}, "ref": "cfg"},
                          {"action": "mkdir", "args": {"path": "/home/work/.jupyter"}},
                          {"action": "log", "args": {"body": "starting"}}],
             "env": {"PORT": "{ports[0]}"},
             "allowed_arguments": ["--debug", "--level"], "allowed_envs": ["TOKEN"],
             "default_arguments": {"--level": "1"}, "url_template": "{protocol}://{host}:{port}/tree"}
            """
        let def = try JSONDecoder().decode(ServiceDefinition.self, from: Data(json.utf8))
        let launch = try def.launch(ports: [8081], runtimePath: "/usr/bin/python3",
                                    request: ServiceStartRequest(name: "jupyter", arguments: ["--debug": .flag, "--level": .value("2")], envs: ["TOKEN": "t"]))
        #expect(launch.argv.prefix(2) == ["/bin/sh", "-c"])
        let script = launch.argv[2]
        #expect(script.contains("__ref_cfg=$(mktemp)") && script.contains("c.B = '\\''8081'\\''"), "\(script)")
        #expect(script.hasSuffix("exec '/usr/bin/python3' '-m' 'notebook' '--port' '8081' '--config' \"$__ref_cfg\" '--debug' '--level' '2'"), "\(script)")
        #expect(launch.environment == ["PORT": "8081", "TOKEN": "t"])

        // The script runs: the tempfile holds the templated body, and the command sees its path.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", script.replacingOccurrences(of: "exec '/usr/bin/python3' '-m' 'notebook'", with: "exec cat").replacingOccurrences(of: "mkdir -p '/home/work/.jupyter'", with: "true")
            .replacingOccurrences(of: "'--port' '8081' '--config' ", with: "").replacingOccurrences(of: " '--debug' '--level' '2'", with: "")]
        let out = Pipe()
        shell.standardOutput = out
        shell.standardError = Pipe()
        try shell.run()
        shell.waitUntilExit()
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "c.A = 1\nc.B = '8081'\n")

        #expect(throws: ServiceError.self) { try def.launch(ports: [8081], runtimePath: "p", request: ServiceStartRequest(name: "j", arguments: ["--evil": .flag])) }
        do {
            _ = try def.launch(ports: [8081], runtimePath: "p", request: ServiceStartRequest(name: "j", envs: ["LD_PRELOAD": "/x"]))
            Issue.record("an env outside allowed_envs was accepted")
        } catch {
            #expect(error.description.contains("'LD_PRELOAD' is not allowed") && error.description.contains("TOKEN"), "\(error)")
        }
        // No prestart and no refs: the command runs directly, no shell needed in the image.
        let direct = try ServiceDefinition(command: ["/opt/x", "--port", "{ports[0]}"]).launch(ports: [7000], runtimePath: "", request: ServiceStartRequest(name: "x"))
        #expect(direct.argv == ["/opt/x", "--port", "7000"])
    }

    @Test func homePathsStayInTheHome() {
        #expect(AgentRPC.homePath("id_container") == "/home/work/id_container")
        #expect(AgentRPC.homePath("./a/./b") == "/home/work/a/b")
        #expect(AgentRPC.homePath("/home/work") == "/home/work")
        #expect(AgentRPC.homePath("/home/work/x/y") == "/home/work/x/y")
        #expect(AgentRPC.homePath("../../etc/shadow") == nil)
        #expect(AgentRPC.homePath("/etc/passwd") == nil)
        #expect(AgentRPC.homePath("/home/workers") == nil)
        #expect(AgentRPC.listing("a.txt\t5\t100644\t1.5\t2\t3\nsub\t0\t40755\t1\t1\t1\n").map(\.mode) == ["-rw-r--r--", "drwxr-xr-x"])
    }
}
