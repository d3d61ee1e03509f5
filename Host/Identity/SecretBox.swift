import Crypto
import Foundation

/// Credentials Hangar must keep and use later (a container registry's password) are kept
/// sealed: AES-GCM under a key derived from the cluster secret, which every manager of the
/// cluster has and the database does not. A copy of the database alone reveals nothing; a
/// sealed value is never sent to clients.
public struct SecretBox: Sendable {
    /// What a sealed value starts with (the format's version).
    static let prefix = "sealed-v1:"
    /// The key's bytes (SymmetricKey itself is not Sendable).
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public init(clusterSecret: String) {
        keyBytes = Array(SHA256.hash(data: Data(("hangar-secret-box:" + clusterSecret).utf8)))
    }

    /// The value sealed: `sealed-v1:` and base64 of nonce, ciphertext and tag.
    public func seal(_ plaintext: String) throws -> String {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: key)
        guard let combined = box.combined else { throw SecretBoxError(message: "AES-GCM gave no combined form") }
        return Self.prefix + combined.base64EncodedString()
    }

    /// The plaintext of a value `seal` made with the same cluster secret.
    /// - Throws: `SecretBoxError` when the value is not sealed, or was sealed under another
    ///   cluster secret (the key no longer opens it: set the credential again).
    public func open(_ sealed: String) throws -> String {
        guard sealed.hasPrefix(Self.prefix), let data = Data(base64Encoded: String(sealed.dropFirst(Self.prefix.count))) else {
            throw SecretBoxError(message: "the stored credential is not in the sealed format; set it again")
        }
        do {
            let opened = try AES.GCM.open(try AES.GCM.SealedBox(combined: data), using: key)
            return String(decoding: opened, as: UTF8.self)
        } catch {
            throw SecretBoxError(message: "the stored credential does not open with this cluster secret (was cluster_secret changed?); set it again")
        }
    }
}

/// A sealed value that could not be made or opened.
public struct SecretBoxError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
