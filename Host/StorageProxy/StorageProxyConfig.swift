import ConfigFile
import Foundation

/// The storage proxy role's configuration:
///
/// ```toml
/// [storage-proxy]
/// listen = "127.0.0.1:6021"               # one listener: /manager/... (secret) and /upload, /download (tokens)
/// client_url = "http://10.0.0.7:6021"     # how clients reach it (default http://<listen>)
/// secret = "..."                          # shared with the manager; also keys the transfer tokens
/// token_ttl = 86400                       # seconds a transfer token stays valid
/// max_upload_size = "1T"
///
/// [volumes.local]                         # one table per volume
/// backend = "vfs"                         # a storage plugin on the [plugins] search path
/// [volumes.local.options]                 # the plugin's config
/// root = "/var/lib/hangar/vfolders"
/// ```
public struct StorageProxyConfig: Sendable {
    public struct Volume: Sendable, Equatable {
        public var name: String
        public var backend: String
        public var options: ConfigValue
        public init(name: String, backend: String, options: ConfigValue) {
            self.name = name
            self.backend = backend
            self.options = options
        }
    }

    public var host = "127.0.0.1"
    public var port = 6021
    public var clientURL: String?
    public var secret = ""
    public var tokenTTL: Double = 86_400
    public var maxUploadBytes: Int64 = 1 << 40
    public var volumes: [Volume] = []

    public init() {}

    /// Where clients send uploads and fetch downloads.
    public var advertisedURL: String { clientURL ?? "http://\(host):\(port)" }

    /// Reads `[storage-proxy]` and `[volumes.*]`.
    /// - Throws: `ConfigFileError` naming the file, key and expected type.
    public static func load(_ file: ConfigFile) throws -> StorageProxyConfig {
        var c = StorageProxyConfig()
        let s = try file.section("storage-proxy")
        try s.checkKeys(["listen": "string host:port", "client_url": "URL string", "secret": "string", "token_ttl": "number of seconds",
                         "max_upload_size": "size"])
        (c.host, c.port) = try s.hostPort("listen", default: c.host, c.port)
        c.clientURL = try s.optionalString("client_url")
        c.secret = try s.string("secret", default: "")
        c.tokenTTL = try s.double("token_ttl", default: c.tokenTTL, range: 1...(30 * 86_400))
        c.maxUploadBytes = try s.bytes("max_upload_size", default: c.maxUploadBytes)
        let volumes = try file.section("volumes")
        guard case .table(let entries) = volumes.table else { return c }
        for (name, value) in entries {
            guard name.range(of: #"^[A-Za-z0-9_-]{1,64}$"#, options: .regularExpression) != nil else {
                throw ConfigFileError(file: file.path, key: "volumes.\(name)", "a volume name is 1-64 letters, digits, '_' or '-'")
            }
            guard case .table = value else { throw ConfigFileError(file: file.path, key: "volumes.\(name)", "must be a table ([volumes.\(name)])") }
            let v = ConfigSection(file: file.path, name: "volumes.\(name)", table: value)
            try v.checkKeys(["backend": "string (storage plugin name)", "options": "table (the plugin's config)"])
            let backend = try v.string("backend", default: "")
            guard !backend.isEmpty else { throw ConfigFileError(file: file.path, key: "volumes.\(name).backend", "missing: name the storage plugin, e.g. \"vfs\"") }
            c.volumes.append(Volume(name: name, backend: backend, options: value["options"] ?? .emptyTable))
        }
        return c
    }
}
