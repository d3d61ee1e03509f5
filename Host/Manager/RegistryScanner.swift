import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import StateStore

/// Reads what a Registry v2 / OCI registry holds — repositories (its catalog, or the
/// configured projects' part of it), their tags, and each image's digest, size, architecture
/// and labels — speaking the Distribution API itself (no engine involved), with the
/// registry's login: HTTP Basic, or the Bearer token flow when the registry answers with a
/// token realm (Docker Hub, Harbor, GitLab).
final class RegistryScanner: @unchecked Sendable {
    let registry: ContainerRegistry
    private let username: String?
    private let password: String?
    private let client: HTTPClient
    /// Bearer tokens by scope, fetched as the registry asks for them.
    private var tokens: [String: String] = [:]

    /// Catalog pages and tag lists are bounded: a registry with more is scanned in part.
    static let maxRepositories = 2000
    static let maxTagsPerRepository = 500

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(registry: ContainerRegistry, password: String?) {
        self.registry = registry
        username = registry.username
        self.password = password
        var tls = TLSConfiguration.makeClientConfiguration()
        if !registry.sslVerify { tls.certificateVerification = .none }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .follow(max: 5, allowCycles: false))
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit { try? client.syncShutdown() }

    func shutdown() async { try? await client.shutdown() }

    /// One image found by a scan.
    struct Found: Sendable {
        var repository: String
        var tag: String
        var digest: String
        var architecture: String
        var sizeBytes: Int64
        var labels: [String: String]
    }

    /// Every image of the registry (of its projects, when some are configured), reporting
    /// progress (done, total, what) as it goes. Images that cannot be read are skipped, each
    /// with its reason in `problems`.
    func scan(progress: @Sendable (Int, Int, String) async -> Void) async throws -> (images: [Found], problems: [String]) {
        var repositories = try await catalog()
        if !registry.projects.isEmpty {
            repositories = repositories.filter { repo in registry.projects.contains { repo == $0 || repo.hasPrefix($0 + "/") } }
        }
        var work: [(String, String)] = []
        for repo in repositories {
            for tag in try await tags(repo) { work.append((repo, tag)) }
        }
        var found: [Found] = []
        var problems: [String] = []
        for (index, (repo, tag)) in work.enumerated() {
            do {
                found.append(try await image(repo, tag: tag))
            } catch {
                problems.append("\(repo):\(tag): \(error)")
            }
            await progress(index + 1, work.count, "\(registry.hostname)/\(repo):\(tag)")
        }
        return (found, problems)
    }

    /// Repository names from `/v2/_catalog`, following its `Link` pages.
    func catalog() async throws -> [String] {
        var names: [String] = []
        var path: String? = "/v2/_catalog?n=200"
        while let next = path, names.count < Self.maxRepositories {
            let (_, headers, body) = try await get(next, scope: "registry:catalog:*")
            let page = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["repositories"] as? [String] ?? []
            names += page
            path = Self.nextLink(headers["Link"].first)
            if page.isEmpty { break }
        }
        return Array(names.prefix(Self.maxRepositories))
    }

    func tags(_ repository: String) async throws -> [String] {
        let (status, _, body) = try await get("/v2/\(repository)/tags/list", scope: "repository:\(repository):pull", accept: [200, 404])
        guard status == 200 else { return [] }
        let tags = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["tags"] as? [String] ?? []
        return Array(tags.sorted().prefix(Self.maxTagsPerRepository))
    }

    static let manifestTypes = ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
                                "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json"]

    /// One image: its manifest (for a multi-platform index, the linux/amd64 one, else the
    /// first), then its config blob for the labels and architecture.
    func image(_ repository: String, tag: String) async throws -> Found {
        let scope = "repository:\(repository):pull"
        var (_, headers, body) = try await get("/v2/\(repository)/manifests/\(tag)", scope: scope, headers: ["Accept": Self.manifestTypes.joined(separator: ", ")])
        var digest = headers["Docker-Content-Digest"].first ?? ""
        guard var manifest = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw Failure(description: "the manifest is not JSON") }
        if let platforms = manifest["manifests"] as? [[String: Any]] {
            let chosen = platforms.first { ($0["platform"] as? [String: Any])?["architecture"] as? String == "amd64" && ($0["platform"] as? [String: Any])?["os"] as? String == "linux" }
                ?? platforms.first
            guard let inner = chosen?["digest"] as? String else { throw Failure(description: "the image index lists no manifest") }
            digest = digest.isEmpty ? inner : digest
            (_, headers, body) = try await get("/v2/\(repository)/manifests/\(inner)", scope: scope, headers: ["Accept": Self.manifestTypes.joined(separator: ", ")])
            guard let resolved = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw Failure(description: "the manifest is not JSON") }
            manifest = resolved
        }
        guard let config = (manifest["config"] as? [String: Any])?["digest"] as? String else {
            throw Failure(description: "the manifest has no config (schema 1 manifests are not read)")
        }
        let layers = manifest["layers"] as? [[String: Any]] ?? []
        let size = layers.reduce(Int64(0)) { $0 + ((($1["size"] as? NSNumber)?.int64Value) ?? 0) }
        let (_, _, blob) = try await get("/v2/\(repository)/blobs/\(config)", scope: scope)
        let configuration = (try? JSONSerialization.jsonObject(with: blob) as? [String: Any]) ?? [:]
        let labels = ((configuration["config"] as? [String: Any])?["Labels"] as? [String: String]) ?? [:]
        return Found(repository: repository, tag: tag, digest: digest.isEmpty ? config : digest,
                     architecture: Self.architecture(configuration["architecture"] as? String), sizeBytes: size, labels: labels)
    }

    /// Docker's architecture names as Backend.AI and the agents report them.
    static func architecture(_ name: String?) -> String {
        switch name {
        case "amd64"?: "x86_64"
        case "arm64"?: "aarch64"
        case let other?: other
        case nil: "x86_64"
        }
    }

    /// The path of a `Link: </v2/_catalog?last=x&n=200>; rel="next"` header.
    static func nextLink(_ header: String?) -> String? {
        guard let header, header.contains("rel=\"next\""), let open = header.firstIndex(of: "<"), let close = header.firstIndex(of: ">") else { return nil }
        return String(header[header.index(after: open)..<close])
    }

    /// A GET with the registry's login; a 401 asking for a Bearer token gets one (once per
    /// scope) and the request is repeated. Other answers than `accept` throw with the
    /// registry's own error text.
    func get(_ path: String, scope: String, headers extra: [String: String] = [:], accept: Set<Int> = [200]) async throws -> (Int, HTTPHeaders, Data) {
        let base = registry.url.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        for attempt in 0..<2 {
            var request = HTTPClientRequest(url: base + path)
            for (name, value) in extra { request.headers.add(name: name, value: value) }
            if let token = tokens[scope] {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            } else if let username {
                request.headers.add(name: "Authorization", value: "Basic " + Data("\(username):\(password ?? "")".utf8).base64EncodedString())
            }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .seconds(60))
            } catch {
                throw Failure(description: "cannot reach the registry at \(registry.url): \(error)")
            }
            let body = Data(buffer: try await response.body.collect(upTo: 16 << 20))
            let status = Int(response.status.code)
            if status == 401, attempt == 0, let challenge = response.headers["WWW-Authenticate"].first, challenge.lowercased().hasPrefix("bearer") {
                tokens[scope] = try await token(challenge, scope: scope)
                continue
            }
            if accept.contains(status) { return (status, response.headers, body) }
            throw Failure(description: "\(registry.hostname) answered \(status) to GET \(path): \(Self.errorText(body))")
        }
        throw Failure(description: "\(registry.hostname) refused the token it issued for \(scope)")
    }

    /// The Bearer token flow: the realm named in the challenge, asked with the login.
    func token(_ challenge: String, scope: String) async throws -> String {
        var fields: [String: String] = [:]
        let pattern = try NSRegularExpression(pattern: #"(\w+)="([^"]*)""#)
        let text = challenge as NSString
        for match in pattern.matches(in: challenge, range: NSRange(location: 0, length: text.length)) {
            fields[text.substring(with: match.range(at: 1))] = text.substring(with: match.range(at: 2))
        }
        guard let realm = fields["realm"], var components = URLComponents(string: realm) else { throw Failure(description: "the registry asked for a token without a realm") }
        components.queryItems = [URLQueryItem(name: "service", value: fields["service"] ?? ""), URLQueryItem(name: "scope", value: fields["scope"] ?? scope)]
        guard let url = components.string else { throw Failure(description: "the token realm '\(realm)' is not a URL") }
        var request = HTTPClientRequest(url: url)
        if let username { request.headers.add(name: "Authorization", value: "Basic " + Data("\(username):\(password ?? "")".utf8).base64EncodedString()) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = Data(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status == .ok, let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let token = object["token"] as? String ?? object["access_token"] as? String else {
            throw Failure(description: "the token service refused the login (\(response.status.code)): \(Self.errorText(body))")
        }
        return token
    }

    /// A registry's error body (`{"errors": [{"code", "message"}]}`) as one line.
    static func errorText(_ body: Data) -> String {
        if let errors = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["errors"] as? [[String: Any]], !errors.isEmpty {
            return errors.map { "\($0["code"] as? String ?? "") \($0["message"] as? String ?? "")".trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
        }
        return String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
