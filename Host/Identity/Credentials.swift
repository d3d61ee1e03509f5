import Crypto
import _CryptoExtras
import Foundation

/// Password hashing with PBKDF2-HMAC-SHA256 (OWASP's 600,000 rounds by default), stored as
/// `pbkdf2-sha256$<rounds>$<salt b64>$<hash b64>` so the rounds can be raised later
/// without breaking existing hashes.
public enum PasswordHasher {
    public static let defaultRounds = 600_000

    public static func hash(_ password: String, rounds: Int = defaultRounds) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = rng.next() }
        let key = try KDF.Insecure.PBKDF2.deriveKey(from: Array(password.utf8), salt: salt, using: .sha256,
                                                    outputByteCount: 32, unsafeUncheckedRounds: rounds)
        let hash = key.withUnsafeBytes { Data($0) }
        return "pbkdf2-sha256$\(rounds)$\(Data(salt).base64EncodedString())$\(hash.base64EncodedString())"
    }

    /// Checks a password in constant time with respect to the stored hash.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]), rounds > 0,
              let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])),
              let key = try? KDF.Insecure.PBKDF2.deriveKey(from: Array(password.utf8), salt: salt, using: .sha256,
                                                           outputByteCount: expected.count, unsafeUncheckedRounds: rounds) else {
            return false
        }
        return key.withUnsafeBytes { constantTimeEqual(Array($0), Array(expected)) }
    }
}

/// Compares two byte strings without an early exit.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in a.indices { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// New access and secret keys in Backend.AI's shapes: `AKIA` + 16 base32 characters, and a
/// 40-character secret.
public enum KeyGenerator {
    private static let base32 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    private static let secretAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

    public static func accessKey() -> String {
        var rng = SystemRandomNumberGenerator()
        return "AKIA" + String((0..<16).map { _ in base32[Int(rng.next(upperBound: UInt32(base32.count)))] })
    }

    public static func secretKey() -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<40).map { _ in secretAlphabet[Int(rng.next(upperBound: UInt32(secretAlphabet.count)))] })
    }

    /// A random password for bootstrap accounts.
    public static func password() -> String {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<20).map { _ in alphabet[Int(rng.next(upperBound: UInt32(alphabet.count)))] })
    }
}

/// Login session ids of the webserver: 32 random bytes, base64url. Only their SHA-256 is
/// stored, so a copy of the database opens no browser session.
public enum LoginSessionID {
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return base64URL(Data(bytes))
    }

    /// The stored form of an id: hex SHA-256.
    public static func hash(_ id: String) -> String {
        hex(Array(SHA256.hash(data: Data(id.utf8))))
    }
}

/// Base64url without padding (RFC 4648 §5): safe in cookies, paths and query strings.
public func base64URL(_ data: Data) -> String {
    data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}
