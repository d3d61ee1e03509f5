import ArgumentParser
import Foundation

extension AdminCommand {
    // MARK: keypair resource policies

    struct Policies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "policy", abstract: "Keypair resource policies (superadmins change them).",
                                                        subcommands: [List.self, Info.self, Add.self, Update.self, Delete.self])
        static let fields = ["name", "total_resource_slots", "max_concurrent_sessions", "max_containers_per_session", "max_session_lifetime",
                             "idle_timeout", "default_for_unspecified"]

        /// The policy fields the add and update commands set.
        struct Settings: ParsableArguments {
            @Option(help: "Total resource slots as JSON, e.g. {\"cpu\": \"8\", \"mem\": \"32g\"}.") var totalResourceSlots: String?
            @Option var maxConcurrentSessions: Int?
            @Option var maxContainersPerSession: Int?
            @Option(help: "Seconds; 0: no limit.") var maxSessionLifetime: Int?
            @Option(help: "Seconds; 0: none.") var idleTimeout: Int?
            @Option(help: "UNLIMITED or LIMITED.") var defaultForUnspecified: String?

            var input: [String: Any] {
                var input: [String: Any] = [:]
                if let totalResourceSlots { input["total_resource_slots"] = totalResourceSlots }
                if let maxConcurrentSessions { input["max_concurrent_sessions"] = maxConcurrentSessions }
                if let maxContainersPerSession { input["max_containers_per_session"] = maxContainersPerSession }
                if let maxSessionLifetime { input["max_session_lifetime"] = maxSessionLifetime }
                if let idleTimeout { input["idle_timeout"] = idleTimeout }
                if let defaultForUnspecified { input["default_for_unspecified"] = defaultForUnspecified }
                return input
            }
        }

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query { keypair_resource_policies { \(fields.joined(separator: " ")) } }")
                show(data["keypair_resource_policies"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($n: String) { keypair_resource_policy(name: $n) { \(fields.joined(separator: " ")) } }", ["n": name])
                try show(data["keypair_resource_policy"] as? [String: Any], fields, json: output.json, what: "policy '\(name)'")
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add")
            @Argument var name: String
            @OptionGroup var settings: Settings
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let result = try await ManagerClient.load().mutate("create_keypair_resource_policy", """
                    mutation($n: String!, $i: CreateKeyPairResourcePolicyInput!) { create_keypair_resource_policy(name: $n, props: $i) { ok msg } }
                    """, ["n": name, "i": settings.input])
                done(result, "policy \(name) created", json: output.json)
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument var name: String
            @OptionGroup var settings: Settings
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let result = try await ManagerClient.load().mutate("modify_keypair_resource_policy", """
                    mutation($n: String!, $i: ModifyKeyPairResourcePolicyInput!) { modify_keypair_resource_policy(name: $n, props: $i) { ok msg } }
                    """, ["n": name, "i": settings.input])
                done(result, "policy \(name) updated", json: output.json)
            }
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("delete_keypair_resource_policy", "mutation($n: String!) { delete_keypair_resource_policy(name: $n) { ok msg } }",
                                                           ["n": name]), "policy \(name) deleted", json: output.json)
            }
        }
    }

    // MARK: resource groups

    struct ResourceGroups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resource-group", abstract: "Resource groups (Backend.AI: scaling groups; superadmins change them).",
                                                        subcommands: [List.self, Info.self, Add.self, Update.self, Delete.self, Associate.self, Dissociate.self])
        static let fields = ["name", "description", "is_active", "is_public", "scheduler", "agent_selector", "scheduler_opts"]

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query { scaling_groups { \(fields.joined(separator: " ")) } }")
                show(data["scaling_groups"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($n: String) { scaling_group(name: $n) { \(fields.joined(separator: " ")) } }", ["n": name])
                try show(data["scaling_group"] as? [String: Any], fields, json: output.json, what: "resource group '\(name)'")
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add")
            @Argument var name: String
            @Option var description = ""
            @Option(help: "A scheduler plugin, e.g. fifo, lifo, drf.") var scheduler = "fifo"
            @Option(help: "An agent selector plugin, e.g. concentrated, dispersed.") var agentSelector = "concentrated"
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let result = try await ManagerClient.load().mutate("create_scaling_group", """
                    mutation($n: String!, $i: CreateScalingGroupInput!) { create_scaling_group(name: $n, props: $i) { ok msg } }
                    """, ["n": name, "i": ["description": description, "scheduler": scheduler, "agent_selector": agentSelector, "is_active": true]])
                done(result, "resource group \(name) created", json: output.json)
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument var name: String
            @Option var description: String?
            @Option(help: "true or false.") var active: String?
            @Option var scheduler: String?
            @Option var agentSelector: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = [:]
                if let description { input["description"] = description }
                if let active = try flag(active) { input["is_active"] = active }
                if let scheduler { input["scheduler"] = scheduler }
                if let agentSelector { input["agent_selector"] = agentSelector }
                let result = try await ManagerClient.load().mutate("modify_scaling_group", """
                    mutation($n: String!, $i: ModifyScalingGroupInput!) { modify_scaling_group(name: $n, props: $i) { ok msg } }
                    """, ["n": name, "i": input])
                done(result, "resource group \(name) updated", json: output.json)
            }
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("delete_scaling_group", "mutation($n: String!) { delete_scaling_group(name: $n) { ok msg } }", ["n": name]),
                     "resource group \(name) deleted", json: output.json)
            }
        }

        /// Where an association applies: a whole domain, or one project.
        struct Target: ParsableArguments {
            @Option var domain: String?
            @Option(help: "Project id or name.") var project: String?
        }

        static func link(_ group: String, _ target: Target, linked: Bool, json: Bool) async throws {
            let client = try ManagerClient.load()
            let verb = linked ? "associate" : "disassociate"
            if let domain = target.domain {
                let root = "\(verb)_scaling_group_with_domain"
                done(try await client.mutate(root, "mutation($s: String!, $d: String!) { \(root)(scaling_group: $s, domain: $d) { ok msg } }",
                                             ["s": group, "d": domain]), "\(group) \(linked ? "opened to" : "closed to") domain \(domain)", json: json)
            } else if let project = target.project {
                let id = try await Projects.id(project, client: client)
                let root = "\(verb)_scaling_group_with_user_group"
                let type = linked ? "UUID!" : "String!"
                done(try await client.mutate(root, "mutation($s: String!, $g: \(type)) { \(root)(scaling_group: $s, user_group: $g) { ok msg } }",
                                             ["s": group, "g": id]), "\(group) \(linked ? "opened to" : "closed to") project \(project)", json: json)
            } else {
                throw CLIError("give --domain or --project")
            }
        }

        struct Associate: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "associate", abstract: "Let a domain's users or a project's members use the group.")
            @Argument var name: String
            @OptionGroup var target: Target
            @OptionGroup var output: OutputOptions
            func perform() async throws { try await ResourceGroups.link(name, target, linked: true, json: output.json) }
        }

        struct Dissociate: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "dissociate")
            @Argument var name: String
            @OptionGroup var target: Target
            @OptionGroup var output: OutputOptions
            func perform() async throws { try await ResourceGroups.link(name, target, linked: false, json: output.json) }
        }
    }

    // MARK: agents, images, sessions

    struct Agents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "agent", abstract: "Agents.", subcommands: [List.self, Info.self])
        static let fields = ["id", "status", "scaling_group", "schedulable", "addr", "available_slots", "occupied_slots", "first_contact"]

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @Option(help: "ALIVE, LOST, ... (default: all).") var status: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("""
                    query($s: String) { agent_list(limit: 100, offset: 0, status: $s) { items { \(fields.joined(separator: " ")) } } }
                    """, status.map { ["s": $0] } ?? [:])
                show((data["agent_list"] as? [String: Any])?["items"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument var id: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($a: String!) { agent(agent_id: $a) { \(fields.joined(separator: " ")) compute_plugins } }", ["a": id])
                try show(data["agent"] as? [String: Any], fields + ["compute_plugins"], json: output.json, what: "agent '\(id)'")
            }
        }
    }

    struct Images: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "image", abstract: "Images the agents hold, and aliases.", subcommands: [List.self, Alias.self, Dealias.self])
        static let fields = ["name", "tag", "architecture", "size_bytes", "aliases"]

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query { images { \(fields.joined(separator: " ")) } }")
                show(data["images"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Alias: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "alias")
            @Argument var alias: String
            @Argument var target: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("alias_image", "mutation($a: String!, $t: String!) { alias_image(alias: $a, target: $t) { ok msg } }",
                                                           ["a": alias, "t": target]), "\(alias) → \(target)", json: output.json)
            }
        }

        struct Dealias: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "dealias")
            @Argument var alias: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("dealias_image", "mutation($a: String!) { dealias_image(alias: $a) { ok msg } }", ["a": alias]),
                     "alias \(alias) removed", json: output.json)
            }
        }
    }

    struct Sessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "session", abstract: "Every user's sessions (admins: their domain's).",
                                                        subcommands: [List.self, Info.self])
        static let fields = ["id", "name", "access_key", "image", "type", "status", "status_info", "scaling_group", "created_at"]

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @Option(help: "Comma-separated statuses (default: all).") var status: String?
            @Option(help: "A filter expression, e.g. 'image contains \"python\"'.") var filter: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var variables: [String: Any] = [:]
                if let status { variables["s"] = status }
                if let filter { variables["f"] = filter }
                let data = try await ManagerClient.load().graphQL("""
                    query($s: String, $f: String) { compute_session_list(limit: 100, offset: 0, status: $s, filter: $f, order: "-created_at") { items { \(fields.joined(separator: " ")) } } }
                    """, variables)
                show((data["compute_session_list"] as? [String: Any])?["items"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument(help: "Session id.") var id: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($id: UUID!) { compute_session(id: $id) { \(fields.joined(separator: " ")) occupied_slots } }", ["id": id])
                try show(data["compute_session"] as? [String: Any], fields + ["occupied_slots"], json: output.json, what: "session '\(id)'")
            }
        }
    }
}

extension AdminCommand {
    // MARK: container registries

    struct Registries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "registry", abstract: "Container registries images are pulled from (superadmins change them).",
                                                        subcommands: [List.self, Add.self, Update.self, Delete.self])
        static let selection = "hostname config { url type project username ssl_verify has_password }"

        /// The settings add and update take; the password is read from standard input so it
        /// stays out of the shell's history and the process list.
        struct Settings: ParsableArguments {
            @Option(help: "Registry type: docker (any Registry v2 / OCI registry).") var type: String?
            @Option(name: .customLong("project"), help: "A project (namespace) to scan; repeat for more. None: the whole catalog.") var projects: [String] = []
            @Option var username: String?
            @Flag(help: "Read the password from standard input (an empty line removes it).") var passwordStdin = false
            @Option(help: "Verify the registry's TLS certificate: true or false.") var sslVerify: String?

            func input(url: String?) throws -> [String: Any] {
                var input: [String: Any] = [:]
                if let url { input["url"] = url }
                if let type { input["type"] = type }
                if !projects.isEmpty { input["project"] = projects }
                if let username { input["username"] = username }
                if passwordStdin { input["password"] = (readLine(strippingNewline: true) ?? "") }
                if let verify = try flag(sslVerify) { input["ssl_verify"] = verify }
                return input
            }
        }

        static func rows(_ registries: [[String: Any]]) -> [[String: Any]] {
            registries.map { r in
                var row = r["config"] as? [String: Any] ?? [:]
                row["hostname"] = r["hostname"]
                return row
            }
        }

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query { container_registries { \(selection) } }")
                show(rows(data["container_registries"] as? [[String: Any]] ?? []), ["hostname", "url", "type", "project", "username", "has_password", "ssl_verify"],
                     json: output.json)
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add")
            @Argument(help: "The name images carry as their prefix (cr.example.com, localhost:5000).") var hostname: String
            @Argument(help: "The registry's address (https://cr.example.com).") var url: String
            @OptionGroup var settings: Settings
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input = try settings.input(url: url)
                if input["type"] == nil { input["type"] = "docker" }
                done(try await ManagerClient.load().mutate("create_container_registry", """
                    mutation($h: String!, $p: ContainerRegistryInput!) { create_container_registry(hostname: $h, props: $p) { ok msg } }
                    """, ["h": hostname, "p": input]), "registry \(hostname) added", json: output.json)
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument var hostname: String
            @Option(help: "A new address.") var url: String?
            @OptionGroup var settings: Settings
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("modify_container_registry", """
                    mutation($h: String!, $p: ContainerRegistryInput!) { modify_container_registry(hostname: $h, props: $p) { ok msg } }
                    """, ["h": hostname, "p": try settings.input(url: url)]), "registry \(hostname) updated", json: output.json)
            }
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete")
            @Argument var hostname: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("delete_container_registry", "mutation($h: String!) { delete_container_registry(hostname: $h) { ok msg } }",
                                                           ["h": hostname]), "registry \(hostname) deleted", json: output.json)
            }
        }
    }
}
