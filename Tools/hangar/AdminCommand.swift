import ArgumentParser
import Foundation

/// `hangar admin …`: the administration Backend.AI operators do with `backend.ai admin`,
/// over the same GraphQL API (so the manager checks every role exactly as for the official
/// client). Every command takes `--json` for scripts.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Administer domains, projects, users, keypairs, policies, resource groups, agents, images and sessions.",
        subcommands: [Domains.self, Projects.self, Users.self, Keypairs.self, Policies.self, ResourceGroups.self, Agents.self, Images.self, Registries.self, Sessions.self])
}

/// `--json` on every admin command.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false
}

extension ManagerClient {
    /// Runs a GraphQL document; a GraphQL error becomes the CLI's error.
    func graphQL(_ query: String, _ variables: [String: Any] = [:]) async throws -> [String: Any] {
        let reply = try await call(.POST, "/admin/gql", json: ["query": query, "variables": variables]) as? [String: Any] ?? [:]
        if let errors = reply["errors"] as? [[String: Any]], !errors.isEmpty {
            throw CLIError(errors.compactMap { $0["message"] as? String }.joined(separator: "; "))
        }
        return reply["data"] as? [String: Any] ?? [:]
    }

    /// Runs a mutation answering `{ok msg …}`; `ok: false` becomes the CLI's error.
    @discardableResult
    func mutate(_ root: String, _ query: String, _ variables: [String: Any]) async throws -> [String: Any] {
        let result = try await graphQL(query, variables)[root] as? [String: Any] ?? [:]
        guard result["ok"] as? Bool == true else { throw CLIError("\(root): \(result["msg"] as? String ?? "refused")") }
        return result
    }

    static func load() throws -> ManagerClient { ManagerClient(config: try ClientConfig.load()) }

    /// Every item of a paginated root, 100 per request. `declarations` and `arguments` add the
    /// root's own variables (`$s: String` / `status: $s`), given in `variables`.
    func allItems(_ root: String, selection: String, declarations: String, arguments: String, variables: [String: Any]) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var variables = variables
        while true {
            variables["o"] = items.count
            let data = try await graphQL("""
                query($o: Int!, \(declarations)) { \(root)(limit: 100, offset: $o, \(arguments)) { items { \(selection) } total_count } }
                """, variables)
            let page = data[root] as? [String: Any] ?? [:]
            let batch = page["items"] as? [[String: Any]] ?? []
            items += batch
            if batch.isEmpty || items.count >= (page["total_count"] as? Int ?? 0) { return items }
        }
    }
}

/// Prints objects as a table of `fields` (or JSON).
func show(_ items: [[String: Any]], _ fields: [String], json: Bool) {
    if json { return printJSON(items) }
    printTable(fields.map { $0.uppercased() }, items.map { item in fields.map { cell(item[$0]) } })
}

/// Prints one object field by field (or JSON); a missing one is an error.
func show(_ item: [String: Any]?, _ fields: [String], json: Bool, what: String) throws {
    guard let item else { throw CLIError("no such \(what)") }
    if json { return printJSON(item) }
    let width = fields.map(\.count).max() ?? 0
    for field in fields { print(field.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + cell(item[field])) }
}

func cell(_ value: Any?) -> String {
    switch value {
    case nil, is NSNull: "-"
    case let list as [Any]: list.map { cell($0) }.joined(separator: ", ")
    case let map as [String: Any]: map["name"].map { cell($0) } ?? String(describing: map)
    // JSONSerialization gives booleans as NSNumber; their Objective-C type is "c".
    case let number as NSNumber where String(cString: number.objCType) == "c": number.boolValue ? "true" : "false"
    case let value?: "\(value)"
    }
}

/// Prints what a mutation did (`done` unless `--json`, then the result).
func done(_ result: [String: Any], _ message: String, json: Bool) {
    if json { printJSON(result) } else { print("✓ \(message)") }
}

/// A Bool option given as true/false (so `--active false` is expressible).
func flag(_ text: String?) throws -> Bool? {
    guard let text else { return nil }
    switch text.lowercased() {
    case "true", "yes", "1": return true
    case "false", "no", "0": return false
    default: throw CLIError("'\(text)' is not true or false")
    }
}

extension AdminCommand {
    // MARK: domains

    struct Domains: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "domain", abstract: "Domains (superadmins).",
                                                        subcommands: [List.self, Info.self, Add.self, Update.self, Delete.self, Purge.self])
        static let fields = ["name", "description", "is_active", "created_at", "total_resource_slots", "allowed_docker_registries", "scaling_groups"]

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query { domains { \(fields.joined(separator: " ")) } }")
                show(data["domains"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($n: String) { domain(name: $n) { \(fields.joined(separator: " ")) } }", ["n": name])
                try show(data["domain"] as? [String: Any], fields, json: output.json, what: "domain '\(name)'")
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add")
            @Argument var name: String
            @Option var description = ""
            @Flag var inactive = false
            @Option(help: "Total resource slots as JSON, e.g. {\"cpu\": \"16\"}.") var totalResourceSlots: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = ["description": description, "is_active": !inactive]
                if let totalResourceSlots { input["total_resource_slots"] = totalResourceSlots }
                let result = try await ManagerClient.load().mutate("create_domain", "mutation($n: String!, $i: DomainInput!) { create_domain(name: $n, props: $i) { ok msg domain { name } } }",
                                                                   ["n": name, "i": input])
                done(result, "domain \(name) created", json: output.json)
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument var name: String
            @Option var description: String?
            @Option(help: "true or false.") var active: String?
            @Option(help: "A new name.") var rename: String?
            @Option var totalResourceSlots: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = [:]
                if let description { input["description"] = description }
                if let active = try flag(active) { input["is_active"] = active }
                if let rename { input["name"] = rename }
                if let totalResourceSlots { input["total_resource_slots"] = totalResourceSlots }
                let result = try await ManagerClient.load().mutate("modify_domain", "mutation($n: String!, $i: ModifyDomainInput!) { modify_domain(name: $n, props: $i) { ok msg } }",
                                                                   ["n": name, "i": input])
                done(result, "domain \(name) updated", json: output.json)
            }
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete", abstract: "Deactivate a domain (nothing is removed).")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("delete_domain", "mutation($n: String!) { delete_domain(name: $n) { ok msg } }", ["n": name]),
                     "domain \(name) deactivated", json: output.json)
            }
        }

        struct Purge: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "purge", abstract: "Remove a domain without users, live sessions or folders.")
            @Argument var name: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("purge_domain", "mutation($n: String!) { purge_domain(name: $n) { ok msg } }", ["n": name]),
                     "domain \(name) purged", json: output.json)
            }
        }
    }

    // MARK: projects

    struct Projects: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "project", abstract: "Projects (Backend.AI: groups).",
                                                        subcommands: [List.self, Info.self, Add.self, Update.self, Delete.self, Purge.self, AddUsers.self, RemoveUsers.self])
        static let fields = ["id", "name", "domain_name", "description", "is_active", "created_at", "scaling_groups"]

        /// A project by id, or by name in the caller's (or the given) domain.
        static func id(_ idOrName: String, client: ManagerClient) async throws -> String {
            if UUID(uuidString: idOrName) != nil { return idOrName }
            let data = try await client.graphQL("query($n: String!) { groups_by_name(name: $n) { id } }", ["n": idOrName])
            let found = data["groups_by_name"] as? [[String: Any]] ?? []
            guard found.count == 1, let id = found[0]["id"] as? String else {
                throw CLIError(found.isEmpty ? "no project '\(idOrName)'" : "several projects are named '\(idOrName)'; give the id")
            }
            return id
        }

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @Option var domain: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($d: String) { groups(domain_name: $d) { \(fields.joined(separator: " ")) } }",
                                                                  domain.map { ["d": $0] } ?? [:])
                show(data["groups"] as? [[String: Any]] ?? [], fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument(help: "Id or name.") var project: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let client = try ManagerClient.load()
                let id = try await Projects.id(project, client: client)
                let data = try await client.graphQL("query($id: UUID!) { group(id: $id) { \(fields.joined(separator: " ")) } }", ["id": id])
                try show(data["group"] as? [String: Any], fields, json: output.json, what: "project '\(project)'")
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add")
            @Argument var name: String
            @Option var domain: String?
            @Option var description = ""
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = ["description": description, "is_active": true]
                if let domain { input["domain_name"] = domain }
                let result = try await ManagerClient.load().mutate("create_group", "mutation($n: String!, $i: GroupInput!) { create_group(name: $n, props: $i) { ok msg group { id name domain_name } } }",
                                                                   ["n": name, "i": input])
                if output.json { return printJSON(result) }
                print("✓ project \(name) created: \((result["group"] as? [String: Any])?["id"] as? String ?? "")")
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument(help: "Id or name.") var project: String
            @Option var name: String?
            @Option var description: String?
            @Option(help: "true or false.") var active: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = [:]
                if let name { input["name"] = name }
                if let description { input["description"] = description }
                if let active = try flag(active) { input["is_active"] = active }
                try await Projects.modify(project, input, json: output.json, message: "project \(project) updated")
            }
        }

        static func modify(_ project: String, _ input: [String: Any], json: Bool, message: String) async throws {
            let client = try ManagerClient.load()
            let id = try await id(project, client: client)
            let result = try await client.mutate("modify_group", "mutation($g: UUID!, $i: ModifyGroupInput!) { modify_group(gid: $g, props: $i) { ok msg } }",
                                                 ["g": id, "i": input])
            done(result, message, json: json)
        }

        static func remove(_ project: String, root: String, json: Bool, message: String) async throws {
            let client = try ManagerClient.load()
            let id = try await id(project, client: client)
            done(try await client.mutate(root, "mutation($g: UUID!) { \(root)(gid: $g) { ok msg } }", ["g": id]), message, json: json)
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete", abstract: "Deactivate a project (no new sessions; nothing is removed).")
            @Argument var project: String
            @OptionGroup var output: OutputOptions
            func perform() async throws { try await Projects.remove(project, root: "delete_group", json: output.json, message: "project \(project) deactivated") }
        }

        struct Purge: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "purge", abstract: "Remove a project without live sessions or folders.")
            @Argument var project: String
            @OptionGroup var output: OutputOptions
            func perform() async throws { try await Projects.remove(project, root: "purge_group", json: output.json, message: "project \(project) purged") }
        }

        struct AddUsers: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add-users")
            @Argument var project: String
            @Argument(help: "User emails or uuids.") var users: [String]
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                try await Projects.modify(project, ["user_update_mode": "add", "user_uuids": try await Users.ids(users)], json: output.json,
                                          message: "added to \(project)")
            }
        }

        struct RemoveUsers: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "remove-users")
            @Argument var project: String
            @Argument(help: "User emails or uuids.") var users: [String]
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                try await Projects.modify(project, ["user_update_mode": "remove", "user_uuids": try await Users.ids(users)], json: output.json,
                                          message: "removed from \(project)")
            }
        }
    }
}
