import Crypto
import Foundation

/// SSH keypairs for sessions: Ed25519 in OpenSSH's own formats (an `authorized_keys` line and
/// an unencrypted `openssh-key-v1` private key), which OpenSSH and dropbear both read.
public enum SSHKeys {
    /// A new keypair: (public key line, private key file text).
    public static func generateEd25519(comment: String) -> (publicKey: String, privateKey: String) {
        let key = Curve25519.Signing.PrivateKey()
        let seed = [UInt8](key.rawRepresentation)
        let pub = [UInt8](key.publicKey.rawRepresentation)
        let publicBlob = string("ssh-ed25519") + string(pub)
        var secret: [UInt8] = []
        let check = UInt32.random(in: .min ... .max)
        secret += uint32(check) + uint32(check)
        secret += string("ssh-ed25519") + string(pub) + string(seed + pub) + string(comment)
        var pad: UInt8 = 1
        while secret.count % 8 != 0 {
            secret.append(pad)
            pad += 1
        }
        var body = Array("openssh-key-v1".utf8) + [0]
        body += string("none") + string("none") + string([UInt8]()) + uint32(1)
        body += string(publicBlob) + string(secret)
        let encoded = Data(body).base64EncodedString()
        var lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
        var rest = Substring(encoded)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(70)))
            rest = rest.dropFirst(70)
        }
        lines.append("-----END OPENSSH PRIVATE KEY-----")
        let publicLine = "ssh-ed25519 " + Data(publicBlob).base64EncodedString() + (comment.isEmpty ? "" : " " + comment)
        return (publicLine, lines.joined(separator: "\n") + "\n")
    }

    /// Whether a line looks like an OpenSSH public key (`TYPE BASE64 [comment]`) whose blob
    /// names the same type: what a user may upload as their own.
    public static func isPublicKey(_ line: String) -> Bool {
        let parts = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let blob = Data(base64Encoded: String(parts[1])), blob.count >= 4 else { return false }
        let bytes = [UInt8](blob)
        let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard length > 0, 4 + length <= bytes.count else { return false }
        return String(decoding: bytes[4..<(4 + length)], as: UTF8.self) == parts[0]
    }

    static func uint32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    static func string(_ bytes: [UInt8]) -> [UInt8] { uint32(UInt32(bytes.count)) + bytes }
    static func string(_ text: String) -> [UInt8] { string(Array(text.utf8)) }
}
