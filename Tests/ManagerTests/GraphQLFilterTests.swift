import Foundation
import GraphQL
import HummingbirdTesting
@testable import Manager
import StateStore
import Testing
import TestSupport

/// Backend.AI's filter and order mini-language on paginated roots.
@Suite struct GraphQLFilterTests {
    struct Row {
        let name: String
        let cpu: Int
        let status: String
        let tag: String?
    }

    static let rows = [Row(name: "py-a", cpu: 1, status: "RUNNING", tag: nil), Row(name: "py-b", cpu: 4, status: "PENDING", tag: "x"),
                       Row(name: "job-c", cpu: 2, status: "RUNNING", tag: "y")]

    static func names(_ filter: String) throws -> [String] {
        let parsed = try GQLFilter(filter, fields: ["name", "cpu", "status", "tag"])
        return rows.filter { parsed.matches(GQLFilter.row($0)) }.map(\.name)
    }

    @Test func expressionsCombineAndCompareAsBackendAIDoes() throws {
        #expect(try Self.names(#"status == "RUNNING""#) == ["py-a", "job-c"])
        #expect(try Self.names(#"status == "running""#) == ["py-a", "job-c"], "enum fields compare ignoring case")
        #expect(try Self.names(#"name like "py-%" & cpu >= 2"#) == ["py-b"])
        #expect(try Self.names(#"name ilike "PY-_" | (status != "RUNNING" & cpu < 3)"#) == ["py-a", "py-b"])
        #expect(try Self.names(#"!(name contains "py")"#) == ["job-c"])
        #expect(try Self.names(#"cpu in [1, 2]"#) == ["py-a", "job-c"])
        #expect(try GQLFilter(#"permission in ["READ_ONLY", "RW_DELETE"]"#, fields: ["permission"]).matches(["permission": .string("wd")]),
                "Backend.AI's enum member names match Hangar's values")
        #expect(try Self.names(#"tag is null"#) == ["py-a"])
        #expect(try Self.names(#"tag isnot null & tag != "x""#) == ["job-c"])
    }

    @Test func mistakesAreRefusedNamingWhatIsWrong() {
        let fields: Set<String> = ["name", "cpu"]
        for (text, expected) in [("nmae == \"x\"", "unknown field 'nmae'"), ("name == ", "expected a value"), ("name ~ 1", "unexpected '~'"),
                                 ("(name == \"x\"", "not closed"), ("name == \"x", "not closed"), ("name like 3", "takes a \"string\""),
                                 ("name == \"x\" name", "after a complete expression"), ("cpu in 3", "takes a [list]")] {
            #expect(throws: GraphQLError.self) { try GQLFilter(text, fields: fields) }
            do {
                _ = try GQLFilter(text, fields: fields)
            } catch let error as GraphQLError {
                #expect(error.message.contains(expected), "\(text): \(error.message)")
            } catch {
                Issue.record("\(error)")
            }
        }
        let deep = String(repeating: "(", count: 40) + "name == \"x\"" + String(repeating: ")", count: 40)
        #expect(throws: GraphQLError.self) { try GQLFilter(deep, fields: fields) }
    }

    @Test(arguments: Backend.allCases)
    func paginatedRootsFilterAndOrderBeforePaging(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        for name in ["carol", "alice", "bob"] {
            _ = try store.createUser(email: "\(name)@example.com", password: "\(name)-password", passwordRounds: 1000)
        }
        let app = try managerApp(store)
        let query = "query($f: String, $o: String) { user_list(limit: 2, offset: 0, filter: $f, order: $o) { items { email } total_count } }"
        try await app.test(.router) { client in
            let (_, page) = try await GraphQLTests.query(client, query, variables: #"{"f": "email ilike \"%@EXAMPLE.com\"", "o": "-email"}"#,
                                                         keys: (admin.accessKey, admin.secretKey))
            let emails = ["carol@example.com", "bob@example.com"].map { page.range(of: $0)?.lowerBound }
            #expect(emails.allSatisfy { $0 != nil } && emails[0]! < emails[1]! && !page.contains("alice@") && page.contains("\"total_count\": 3"),
                    "filtered, ordered descending, then paged: \(page)")
            let (_, unknown) = try await GraphQLTests.query(client, query, variables: #"{"f": "mail == \"x\""}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(unknown.contains("unknown field 'mail'") && unknown.contains("email"), "\(unknown)")
            let (_, badOrder) = try await GraphQLTests.query(client, query, variables: #"{"o": "-nope"}"#, keys: (admin.accessKey, admin.secretKey))
            #expect(badOrder.contains("order: unknown field 'nope'"), "\(badOrder)")
        }
    }
}
