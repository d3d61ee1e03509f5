import ConfigFile
import Foundation

/// Where the manager is and which keypair signs: environment variables compatible with the
/// official client (`BACKEND_ENDPOINT`, `BACKEND_ACCESS_KEY`, `BACKEND_SECRET_KEY`) over a
/// config file (`$HANGAR_CLIENT_CONFIG`, else `~/.config/hangar/client.toml`):
///
/// ```toml
/// [client]
/// endpoint = "http://127.0.0.1:8091"
/// access_key = "AKIA..."
/// secret_key = "..."
/// ```
struct ClientConfig {
    var endpoint: String
    var accessKey: String
    var secretKey: String
    /// Where each value came from, for `hangar config`.
    var sources: [String: String]

    static var defaultPath: String {
        if let path = ProcessInfo.processInfo.environment["HANGAR_CLIENT_CONFIG"], !path.isEmpty { return path }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        return home + "/.config/hangar/client.toml"
    }

    static func load(environment: [String: String] = ProcessInfo.processInfo.environment, path: String = defaultPath) throws -> ClientConfig {
        var values: [String: String] = [:]
        var sources: [String: String] = [:]
        if FileManager.default.fileExists(atPath: path) {
            let file = try ConfigFile(path: path)
            try file.checkSections(["client"])
            let section = try file.section("client")
            try section.checkKeys(["endpoint": "URL string", "access_key": "string", "secret_key": "string"])
            for key in ["endpoint", "access_key", "secret_key"] {
                if let value = try section.optionalString(key) {
                    values[key] = value
                    sources[key] = path
                }
            }
        }
        for (key, variable) in [("endpoint", "BACKEND_ENDPOINT"), ("access_key", "BACKEND_ACCESS_KEY"), ("secret_key", "BACKEND_SECRET_KEY")] {
            if let value = environment[variable], !value.isEmpty {
                values[key] = value
                sources[key] = "$" + variable
            }
        }
        guard let accessKey = values["access_key"], let secretKey = values["secret_key"] else {
            throw CLIError("no credentials: set BACKEND_ACCESS_KEY and BACKEND_SECRET_KEY (the manager prints them on first start), or write them to \(path) under [client]")
        }
        var endpoint = values["endpoint"] ?? "http://127.0.0.1:8091"
        sources["endpoint"] = sources["endpoint"] ?? "default"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        guard let url = URL(string: endpoint), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw CLIError("the endpoint '\(endpoint)' is not an http(s) URL (from \(sources["endpoint"]!))")
        }
        return ClientConfig(endpoint: endpoint, accessKey: accessKey, secretKey: secretKey, sources: sources)
    }
}

/// A failure the user can act on; printed without a stack of wrappers.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
