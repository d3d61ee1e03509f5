import ClusterProtocol
import Foundation

/// Interactive access: what each kernel offers (its service ports), the ports a session asked
/// to preopen, and each keypair's SSH keypair.
extension StateStore {
    /// Records what a kernel offers, as its agent reported it when the kernel started.
    public func setServicePorts(kernel id: String, _ ports: [ServicePort]) throws {
        let json = String(decoding: try JSONEncoder().encode(ports), as: UTF8.self)
        try database.transaction { try $0.execute("UPDATE kernels SET service_ports = $1 WHERE id = $2", [.text(json), .text(id)]) }
    }

    /// The service ports of a session's main kernel; empty before it started (or from agents
    /// that predate services).
    public func servicePorts(session id: String) throws -> [ServicePort] {
        try database.withConnection { c in
            guard let text = try c.query("SELECT service_ports FROM kernels WHERE session_id = $1 ORDER BY cluster_idx LIMIT 1", [.text(id)])
                .first?.string("service_ports") else { return [] }
            return (try? JSONDecoder().decode([ServicePort].self, from: Data(text.utf8))) ?? []
        }
    }

    /// The ports a session asked to preopen.
    public func preopenPorts(session id: String) throws -> [Int] {
        try database.withConnection { c in
            let text = try c.query("SELECT preopen_ports FROM sessions WHERE id = $1", [.text(id)]).first?.string("preopen_ports") ?? "[]"
            return (try? JSONDecoder().decode([Int].self, from: Data(text.utf8))) ?? []
        }
    }

    /// A keypair's SSH keypair (OpenSSH public key, private key), or nil when it has none yet.
    public func sshKeypair(accessKey: String) throws -> KernelSSHKeypair? {
        try database.withConnection { c in
            guard let row = try c.query("SELECT ssh_public_key, ssh_private_key FROM keypairs WHERE access_key = $1", [.text(accessKey)]).first,
                  let pub = row.string("ssh_public_key"), let priv = row.string("ssh_private_key") else { return nil }
            return KernelSSHKeypair(publicKey: pub, privateKey: priv)
        }
    }

    /// Stores a keypair's SSH keypair, replacing the one it had.
    /// - Throws: `StoreError(.notFound)` when the access key does not exist.
    public func setSSHKeypair(accessKey: String, _ keys: KernelSSHKeypair) throws {
        try database.transaction { c in
            guard try !c.query("SELECT access_key FROM keypairs WHERE access_key = $1", [.text(accessKey)]).isEmpty else {
                throw StoreError(.notFound, "no keypair with the access key '\(accessKey)'")
            }
            try c.execute("UPDATE keypairs SET ssh_public_key = $1, ssh_private_key = $2 WHERE access_key = $3",
                          [.text(keys.publicKey), .text(keys.privateKey), .text(accessKey)])
        }
    }

    /// Stores an SSH keypair only when the keypair has none, and returns the one it has then:
    /// two managers generating one at the same moment agree on the first.
    public func sshKeypair(accessKey: String, orStore generated: KernelSSHKeypair) throws -> KernelSSHKeypair {
        try database.transaction { c in
            try c.execute("UPDATE keypairs SET ssh_public_key = $1, ssh_private_key = $2 WHERE access_key = $3 AND ssh_public_key IS NULL",
                          [.text(generated.publicKey), .text(generated.privateKey), .text(accessKey)])
        }
        guard let keys = try sshKeypair(accessKey: accessKey) else { throw StoreError(.notFound, "no keypair with the access key '\(accessKey)'") }
        return keys
    }
}
