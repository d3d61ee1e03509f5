import Foundation

/// A container registry images are pulled from, as an admin configured it.
public struct ContainerRegistry: Sendable, Equatable {
    /// The name images are prefixed with (`cr.example.com`, `localhost:5000`).
    public var hostname: String
    /// Where its Registry v2 API answers (`https://cr.example.com`).
    public var url: String
    /// "docker" (any Registry v2 / OCI registry) or "harbor2" (projects listed through Harbor).
    public var type: String
    /// The projects (namespaces) whose images are scanned; empty: the whole catalog.
    public var projects: [String]
    public var username: String?
    /// The password sealed by the manager (`Identity.SecretBox`); never sent to clients.
    public var sealedPassword: String?
    public var sslVerify: Bool

    public init(hostname: String, url: String, type: String = "docker", projects: [String] = [], username: String? = nil,
                sealedPassword: String? = nil, sslVerify: Bool = true) {
        self.hostname = hostname
        self.url = url
        self.type = type
        self.projects = projects
        self.username = username
        self.sealedPassword = sealedPassword
        self.sslVerify = sslVerify
    }
}

extension StateStore {
    public func containerRegistries() throws -> [ContainerRegistry] {
        try database.withConnection { c in
            try c.query("SELECT * FROM container_registries ORDER BY hostname").map { r in
                ContainerRegistry(hostname: r.string("hostname") ?? "", url: r.string("url") ?? "", type: r.string("registry_type") ?? "docker",
                                  projects: (try? JSONDecoder().decode([String].self, from: Data((r.string("projects") ?? "[]").utf8))) ?? [],
                                  username: r.string("username"), sealedPassword: r.string("sealed_password"), sslVerify: r.bool("ssl_verify"))
            }
        }
    }

    /// Adds a registry, or replaces the one with its hostname when `replace` is true.
    /// - Throws: `StoreError(.constraint)` when it exists and `replace` is false;
    ///   `StoreError(.notFound)` when it does not and `replace` is true.
    public func saveContainerRegistry(_ r: ContainerRegistry, replace: Bool) throws {
        try database.transaction { c in
            let exists = try !c.query("SELECT hostname FROM container_registries WHERE hostname = $1", [.text(r.hostname)]).isEmpty
            if exists && !replace { throw StoreError(.constraint, "a registry '\(r.hostname)' already exists; modify it instead") }
            if !exists && replace { throw StoreError(.notFound, "no registry '\(r.hostname)'") }
            let projects = String(decoding: try JSONEncoder().encode(r.projects), as: UTF8.self)
            if exists {
                try c.execute("UPDATE container_registries SET url = $1, registry_type = $2, projects = $3, username = $4, sealed_password = $5, ssl_verify = $6 WHERE hostname = $7",
                              [.text(r.url), .text(r.type), .text(projects), SQLValue(r.username), SQLValue(r.sealedPassword), SQLValue(r.sslVerify), .text(r.hostname)])
            } else {
                try c.execute("""
                    INSERT INTO container_registries (hostname, url, registry_type, projects, username, sealed_password, ssl_verify, created_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    """, [.text(r.hostname), .text(r.url), .text(r.type), .text(projects), SQLValue(r.username), SQLValue(r.sealedPassword),
                          SQLValue(r.sslVerify), .int(Clock.nowMicros())])
            }
        }
    }

    public func deleteContainerRegistry(_ hostname: String) throws {
        let removed = try database.transaction { c in try c.execute("DELETE FROM container_registries WHERE hostname = $1", [.text(hostname)]) }
        if removed == 0 { throw StoreError(.notFound, "no registry '\(hostname)'") }
    }
}

/// An image a registry held at its last scan.
public struct RegistryImage: Sendable, Equatable {
    public var registry: String
    public var repository: String
    public var tag: String
    public var digest: String
    public var architecture: String
    public var sizeBytes: Int64
    public var labels: [String: String]
    public var scannedAt: Int64
    public init(registry: String, repository: String, tag: String, digest: String, architecture: String, sizeBytes: Int64,
                labels: [String: String], scannedAt: Int64 = Clock.nowMicros()) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.architecture = architecture
        self.sizeBytes = sizeBytes
        self.labels = labels
        self.scannedAt = scannedAt
    }
    /// The reference sessions use: `registry/repository:tag`.
    public var reference: String { "\(registry)/\(repository):\(tag)" }
}

/// A long operation's state, as `/events/background-task` reports it.
public struct BackgroundTask: Sendable, Equatable {
    public enum Status: String, Sendable { case running, done, failed }
    public var id: String
    public var kind: String
    /// The access key that started it (only it and admins follow it).
    public var owner: String
    public var status: Status
    public var current: Int64
    public var total: Int64
    public var message: String
    public var updatedAt: Int64
}

extension StateStore {
    /// Replaces what `registry` held with a new scan's findings, in one transaction.
    public func replaceRegistryImages(registry: String, _ images: [RegistryImage]) throws {
        try database.transaction { c in
            try c.execute("DELETE FROM registry_images WHERE registry = $1", [.text(registry)])
            for i in images {
                let labels = String(decoding: try JSONEncoder().encode(i.labels), as: UTF8.self)
                try c.execute("""
                    INSERT INTO registry_images (registry, repository, tag, digest, architecture, size_bytes, labels, scanned_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    """, [.text(registry), .text(i.repository), .text(i.tag), .text(i.digest), .text(i.architecture), .int(i.sizeBytes),
                          .text(labels), .int(i.scannedAt)])
            }
        }
    }

    public func registryImages() throws -> [RegistryImage] {
        try database.withConnection { c in
            try c.query("SELECT * FROM registry_images ORDER BY registry, repository, tag").map { r in
                RegistryImage(registry: r.string("registry") ?? "", repository: r.string("repository") ?? "", tag: r.string("tag") ?? "",
                              digest: r.string("digest") ?? "", architecture: r.string("architecture") ?? "", sizeBytes: r.int("size_bytes") ?? 0,
                              labels: (try? JSONDecoder().decode([String: String].self, from: Data((r.string("labels") ?? "{}").utf8))) ?? [:],
                              scannedAt: r.int("scanned_at") ?? 0)
            }
        }
    }

    public func createBackgroundTask(kind: String, owner: String, now: Int64 = Clock.nowMicros()) throws -> String {
        let id = UUID().uuidString.lowercased()
        try database.transaction { c in
            try c.execute("INSERT INTO background_tasks (id, kind, owner, status, created_at, updated_at) VALUES ($1, $2, $3, 'running', $4, $4)",
                          [.text(id), .text(kind), .text(owner), .int(now)])
        }
        return id
    }

    public func updateBackgroundTask(_ id: String, status: BackgroundTask.Status, current: Int64, total: Int64, message: String,
                                     now: Int64 = Clock.nowMicros()) throws {
        try database.transaction { c in
            try c.execute("UPDATE background_tasks SET status = $1, current = $2, total = $3, message = $4, updated_at = $5 WHERE id = $6",
                          [.text(status.rawValue), .int(current), .int(total), .text(message), .int(now), .text(id)])
        }
    }

    public func backgroundTask(_ id: String) throws -> BackgroundTask? {
        try database.withConnection { c in
            try c.query("SELECT * FROM background_tasks WHERE id = $1", [.text(id)]).first.map { r in
                BackgroundTask(id: r.string("id") ?? "", kind: r.string("kind") ?? "", owner: r.string("owner") ?? "",
                               status: BackgroundTask.Status(rawValue: r.string("status") ?? "") ?? .failed, current: r.int("current") ?? 0,
                               total: r.int("total") ?? 0, message: r.string("message") ?? "", updatedAt: r.int("updated_at") ?? 0)
            }
        }
    }
}
