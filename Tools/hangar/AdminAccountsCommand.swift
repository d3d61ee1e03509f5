import ArgumentParser
import Foundation

extension AdminCommand {
    // MARK: users

    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "user", abstract: "Users.",
                                                        subcommands: [List.self, Info.self, Add.self, Update.self, Delete.self, Purge.self])
        static let fields = ["uuid", "email", "username", "role", "status", "domain_name", "description", "groups", "main_access_key"]
        /// The GraphQL selection of `fields` (projects are objects: their names are shown).
        static let selection = fields.map { $0 == "groups" ? "groups { id name }" : $0 }.joined(separator: " ")

        /// User uuids for emails (uuids pass through).
        static func ids(_ users: [String]) async throws -> [String] {
            let client = try ManagerClient.load()
            var ids: [String] = []
            for user in users {
                if UUID(uuidString: user) != nil { ids.append(user); continue }
                let data = try await client.graphQL("query($e: String) { user(email: $e) { uuid } }", ["e": user])
                guard let id = (data["user"] as? [String: Any])?["uuid"] as? String else { throw CLIError("no user '\(user)'") }
                ids.append(id)
            }
            return ids
        }

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @Option(help: "active, inactive or deleted.") var status: String?
            @Option(help: "A filter expression, e.g. 'email ilike \"%@example.com\"'.") var filter: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var variables: [String: Any] = [:]
                if let status { variables["s"] = status }
                if let filter { variables["f"] = filter }
                let items = try await ManagerClient.load().allItems("user_list", selection: selection, declarations: "$s: String, $f: String",
                                                                    arguments: "status: $s, filter: $f", variables: variables)
                show(items, fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument var email: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($e: String) { user(email: $e) { \(selection) } }", ["e": email])
                try show(data["user"] as? [String: Any], fields, json: output.json, what: "user '\(email)'")
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add", abstract: "Create a user (and their first keypair).")
            @Argument var email: String
            @Argument var password: String
            @Option var username: String?
            @Option(help: "user, admin or superadmin.") var role = "user"
            @Option var domain: String?
            @Option var description = ""
            @Option(help: "Projects (names or ids) to join; default: the domain's default project.") var project: [String] = []
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = ["password": password, "role": role, "description": description, "status": "active"]
                if let username { input["username"] = username }
                if let domain { input["domain_name"] = domain }
                if !project.isEmpty { input["group_ids"] = project }
                let result = try await ManagerClient.load().mutate("create_user", "mutation($e: String!, $i: UserInput!) { create_user(email: $e, props: $i) { ok msg user { uuid email main_access_key } } }",
                                                                   ["e": email, "i": input])
                if output.json { return printJSON(result) }
                let user = result["user"] as? [String: Any] ?? [:]
                print("✓ user \(email) created: \(cell(user["uuid"])), access key \(cell(user["main_access_key"]))")
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument var email: String
            @Option var role: String?
            @Option(help: "active or inactive.") var status: String?
            @Option var description: String?
            @Option var password: String?
            @Option var fullName: String?
            @Option(help: "true: the user must change the password at the next login.") var needPasswordChange: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = [:]
                for (key, value) in [("role", role), ("status", status), ("description", description), ("password", password), ("full_name", fullName)] {
                    if let value { input[key] = value }
                }
                if let change = try flag(needPasswordChange) { input["need_password_change"] = change }
                let result = try await ManagerClient.load().mutate("modify_user", "mutation($e: String!, $i: ModifyUserInput!) { modify_user(email: $e, props: $i) { ok msg } }",
                                                                   ["e": email, "i": input])
                done(result, "user \(email) updated", json: output.json)
            }
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete", abstract: "Mark a user deleted and deactivate their keypairs.")
            @Argument var email: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("delete_user", "mutation($e: String!) { delete_user(email: $e) { ok msg } }", ["e": email]),
                     "user \(email) deleted", json: output.json)
            }
        }

        struct Purge: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "purge", abstract: "Remove a user without live sessions or folders.")
            @Argument var email: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("purge_user", "mutation($e: String!) { purge_user(email: $e, props: {}) { ok msg } }", ["e": email]),
                     "user \(email) purged", json: output.json)
            }
        }
    }

    // MARK: keypairs

    struct Keypairs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "keypair", abstract: "Keypairs.",
                                                        subcommands: [List.self, Info.self, Add.self, Update.self, Delete.self])
        static let fields = ["access_key", "user_id", "is_active", "is_admin", "resource_policy", "rate_limit", "concurrency_used", "created_at"]

        struct List: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "list")
            @Option(help: "true: active keypairs only; false: inactive only.") var active: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var variables: [String: Any] = [:]
                if let active = try flag(active) { variables["a"] = active }
                let items = try await ManagerClient.load().allItems("keypair_list", selection: fields.joined(separator: " "), declarations: "$a: Boolean",
                                                                    arguments: "is_active: $a", variables: variables)
                show(items, fields, json: output.json)
            }
        }

        struct Info: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "info")
            @Argument(help: "Access key (default: the one signing).") var accessKey: String?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let data = try await ManagerClient.load().graphQL("query($k: String) { keypair(access_key: $k) { \(fields.joined(separator: " ")) } }",
                                                                  accessKey.map { ["k": $0] } ?? [:])
                try show(data["keypair"] as? [String: Any], fields, json: output.json, what: "keypair")
            }
        }

        struct Add: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "add", abstract: "Create a keypair for a user; its secret is shown once.")
            @Argument var email: String
            @Flag var admin = false
            @Option var policy = "default"
            @Option var rateLimit = 0
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                let result = try await ManagerClient.load().mutate("create_keypair", """
                    mutation($u: String!, $i: KeyPairInput!) { create_keypair(user_id: $u, props: $i) { ok msg keypair { access_key secret_key } } }
                    """, ["u": email, "i": ["is_active": true, "is_admin": admin, "resource_policy": policy, "rate_limit": rateLimit]])
                if output.json { return printJSON(result) }
                let keypair = result["keypair"] as? [String: Any] ?? [:]
                print("access key  \(cell(keypair["access_key"]))\nsecret key  \(cell(keypair["secret_key"]))  (shown once)")
            }
        }

        struct Update: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "update")
            @Argument var accessKey: String
            @Option(help: "true or false.") var active: String?
            @Option(help: "true or false.") var admin: String?
            @Option var policy: String?
            @Option var rateLimit: Int?
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                var input: [String: Any] = [:]
                if let active = try flag(active) { input["is_active"] = active }
                if let admin = try flag(admin) { input["is_admin"] = admin }
                if let policy { input["resource_policy"] = policy }
                if let rateLimit { input["rate_limit"] = rateLimit }
                let result = try await ManagerClient.load().mutate("modify_keypair", """
                    mutation($k: String!, $i: ModifyKeyPairInput!) { modify_keypair(access_key: $k, props: $i) { ok msg } }
                    """, ["k": accessKey, "i": input])
                done(result, "keypair \(accessKey) updated", json: output.json)
            }
        }

        struct Delete: ClientCommand {
            static let configuration = CommandConfiguration(commandName: "delete")
            @Argument var accessKey: String
            @OptionGroup var output: OutputOptions
            func perform() async throws {
                done(try await ManagerClient.load().mutate("delete_keypair", "mutation($k: String!) { delete_keypair(access_key: $k) { ok msg } }", ["k": accessKey]),
                     "keypair \(accessKey) deleted", json: output.json)
            }
        }
    }
}
