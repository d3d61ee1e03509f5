@preconcurrency import Crypto
import Foundation

/// What a transfer token allows: one operation on one path of one folder, until it expires.
public struct TransferClaims: Codable, Sendable, Equatable {
    /// "upload" or "download".
    public var op: String
    public var volume: String
    public var folder: String
    public var path: String
    /// Seconds since the epoch.
    public var exp: Int64
    /// Upload: the file's total size, and the staging session it writes to.
    public var size: Int64?
    public var session: String?
    /// Download of a directory as a tar archive.
    public var archive: Bool?

    public init(op: String, volume: String, folder: String, path: String, exp: Int64, size: Int64? = nil, session: String? = nil, archive: Bool? = nil) {
        self.op = op
        self.volume = volume
        self.folder = folder
        self.path = path
        self.exp = exp
        self.size = size
        self.session = session
        self.archive = archive
    }
}

/// Why a token was refused.
public enum TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed
    case badSignature
    case expired
    case wrongOperation(String)

    public var description: String {
        switch self {
        case .malformed: "the token is malformed; ask the manager for a new one (request-upload / request-download)"
        case .badSignature: "the token's signature does not verify; it was altered or issued for another storage proxy"
        case .expired: "the token has expired; ask the manager for a new one"
        case .wrongOperation(let op): "the token is for another operation (\(op))"
        }
    }
}

/// Short-lived signed tokens for the client API: base64url(JSON claims) "." base64url(HMAC-SHA256).
public struct TransferToken: @unchecked Sendable {
    let key: SymmetricKey

    public init(secret: String) {
        key = SymmetricKey(data: SHA256.hash(data: Data(("hangar-transfer-token:" + secret).utf8)))
    }

    public func issue(_ claims: TransferClaims) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let payload = Self.base64url(try encoder.encode(claims))
        let mac = HMAC<SHA256>.authenticationCode(for: Data(payload.utf8), using: key)
        return payload + "." + Self.base64url(Data(mac))
    }

    public func verify(_ token: String, op: String, now: Date = Date()) throws(TokenError) -> TransferClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let signature = Self.decode(String(parts[1])) else { throw .malformed }
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: Data(parts[0].utf8), using: key) else { throw .badSignature }
        guard let payload = Self.decode(String(parts[0])), let claims = try? JSONDecoder().decode(TransferClaims.self, from: payload) else {
            throw .malformed
        }
        guard claims.op == op else { throw .wrongOperation(claims.op) }
        guard Int64(now.timeIntervalSince1970) <= claims.exp else { throw .expired }
        return claims
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}
