import Crypto
import Foundation

/// What a Backend.AI keypair signature covers. The body is never part of it: the client
/// signs the hash of an empty body (API v4.20181215 and later).
public struct SignatureInput: Sendable, Equatable {
    public var method: String
    /// Raw path and query as on the wire.
    public var requestTarget: String
    /// The Date header string, exactly as sent.
    public var date: String
    /// The Host header as received (host[:port]).
    public var host: String
    /// The Content-Type header, or nil when absent (signed as application/octet-stream).
    public var contentType: String?
    /// The X-BackendAI-Version header.
    public var apiVersion: String

    public init(method: String, requestTarget: String, date: String, host: String, contentType: String?, apiVersion: String) {
        self.method = method
        self.requestTarget = requestTarget
        self.date = date
        self.host = host
        self.contentType = contentType
        self.apiVersion = apiVersion
    }

    /// The mime type the signature uses: lower-cased, parameters stripped.
    public var signedContentType: String {
        guard let contentType else { return "application/octet-stream" }
        let mime = contentType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        let trimmed = mime.trimmingCharacters(in: .whitespaces).lowercased()
        return trimmed.isEmpty ? "application/octet-stream" : trimmed
    }
}

/// Backend.AI's HMAC-SHA256 request signing, computed exactly as the official client does.
public enum RequestSigner {
    /// hex(SHA256("")).
    public static let emptyBodyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public static func stringToSign(_ input: SignatureInput) -> String {
        [input.method.uppercased(), input.requestTarget, input.date, "host:" + input.host,
         "content-type:" + input.signedContentType, "x-backendai-version:" + input.apiVersion, emptyBodyHash]
            .joined(separator: "\n")
    }

    /// The hex signature. `dateStamp` is YYYYMMDD of the Date header in its own offset.
    public static func signature(secretKey: String, input: SignatureInput, dateStamp: String) -> String {
        let k1 = HMAC<SHA256>.authenticationCode(for: Array(dateStamp.utf8), using: SymmetricKey(data: Array(secretKey.utf8)))
        let k2 = HMAC<SHA256>.authenticationCode(for: Array(input.host.utf8), using: SymmetricKey(data: Data(k1)))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(stringToSign(input).utf8), using: SymmetricKey(data: Data(k2)))
        return hex(Array(mac))
    }

    /// The Authorization header value a client sends.
    public static func authorization(accessKey: String, signature: String) -> String {
        "BackendAI signMethod=HMAC-SHA256, credential=\(accessKey):\(signature)"
    }

    /// Signs a request as a client: returns the Authorization header value.
    /// The headers that sign one request made now (`Date`, `X-BackendAI-Version`,
    /// `Authorization`), as the official client sends them; the body is not signed.
    public static func headers(accessKey: String, secretKey: String, method: String, requestTarget: String, host: String,
                               contentType: String?, apiVersion: String, now: Date = Date()) -> [(name: String, value: String)] {
        let date = CivilTime.iso8601(micros: Int64(now.timeIntervalSince1970 * 1_000_000)).replacingOccurrences(of: "Z", with: "+00:00")
        let input = SignatureInput(method: method, requestTarget: requestTarget, date: date, host: host, contentType: contentType, apiVersion: apiVersion)
        // The date was made here in the form RequestDate reads, so parsing cannot fail.
        let stamp = (try? RequestDate.parse(date))?.dateStamp ?? ""
        return [("Date", date), ("X-BackendAI-Version", apiVersion),
                ("Authorization", authorization(accessKey: accessKey, signature: signature(secretKey: secretKey, input: input, dateStamp: stamp)))]
    }

    public static func sign(accessKey: String, secretKey: String, input: SignatureInput) throws(SignatureError) -> String {
        let parsed = try RequestDate.parse(input.date)
        return authorization(accessKey: accessKey, signature: signature(secretKey: secretKey, input: input, dateStamp: parsed.dateStamp))
    }
}

/// Lower-case hex, without String(format:) (which goes through CoreFoundation and costs more
/// than the HMAC it prints).
public func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Why a request's authentication parameters were refused.
public struct SignatureError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A parsed `Authorization: BackendAI signMethod=HMAC-SHA256, credential=AK:SIG` header.
public struct AuthorizationHeader: Sendable, Equatable {
    public var hashName: String
    public var accessKey: String
    public var signature: String

    /// Parses leniently, as the reference manager does: scheme `BackendAI` (or legacy
    /// `Sorna`), comma-separated `key=value` pairs with spaces trimmed.
    public static func parse(_ header: String) throws(SignatureError) -> AuthorizationHeader {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0] == "BackendAI" || parts[0] == "Sorna" else {
            throw SignatureError("the Authorization header must look like 'BackendAI signMethod=HMAC-SHA256, credential=<access key>:<signature>'")
        }
        var fields: [String: String] = [:]
        for pair in parts[1].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            fields[kv[0].trimmingCharacters(in: .whitespaces)] = kv[1].trimmingCharacters(in: .whitespaces)
        }
        guard let method = fields["signMethod"], method.uppercased().hasPrefix("HMAC-") else {
            throw SignatureError("the Authorization header lacks signMethod=HMAC-SHA256")
        }
        guard let credential = fields["credential"], let colon = credential.firstIndex(of: ":") else {
            throw SignatureError("the Authorization header lacks credential=<access key>:<signature>")
        }
        let hash = method.dropFirst(5).lowercased()
        guard hash == "sha256" else { throw SignatureError("unsupported signMethod '\(method)': only HMAC-SHA256 is accepted") }
        return AuthorizationHeader(hashName: hash, accessKey: String(credential[..<colon]),
                                   signature: String(credential[credential.index(after: colon)...]))
    }
}

/// The request Date header: ISO 8601 (what the client sends, offset optional, fraction
/// optional) or RFC 1123.
public struct RequestDate: Sendable, Equatable {
    public var instant: Date
    /// YYYYMMDD in the header's own offset (what the signing key is derived from).
    public var dateStamp: String

    public static func parse(_ raw: String) throws(SignatureError) -> RequestDate {
        let text = raw.trimmingCharacters(in: .whitespaces)
        if let iso = parseISO(text) { return iso }
        if let rfc = parseRFC1123(text) { return rfc }
        throw SignatureError("cannot parse the Date header '\(raw.prefix(64))': send ISO 8601, e.g. 2024-03-01T12:34:56.789012+00:00")
    }

    private static func parseISO(_ s: String) -> RequestDate? {
        let b = Array(s.utf8)
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for c in b[from..<(from + len)] {
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard b.count >= 19, let year = num(0, 4), b[4] == UInt8(ascii: "-"), let month = num(5, 2), b[7] == UInt8(ascii: "-"),
              let day = num(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "),
              let hour = num(11, 2), b[13] == UInt8(ascii: ":"), let minute = num(14, 2), b[16] == UInt8(ascii: ":"),
              let second = num(17, 2), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            if i == start { return nil }
        }
        var offsetSeconds = 0
        if i < b.count {
            if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
                i += 1
            } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                guard let oh = num(i + 1, 2) else { return nil }
                var j = i + 3
                if j < b.count, b[j] == UInt8(ascii: ":") { j += 1 }
                let om = num(j, 2) ?? 0
                if num(j, 2) != nil { j += 2 }
                offsetSeconds = sign * (oh * 3600 + om * 60)
                i = j
            } else {
                return nil
            }
        }
        guard i == b.count else { return nil }
        let seconds = CivilTime.epochSeconds(year: year, month: month, day: day) + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return RequestDate(instant: Date(timeIntervalSince1970: Double(seconds) + fraction),
                           dateStamp: CivilTime.stamp(year: year, month: month, day: day))
    }

    /// RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`), parsed by hand: a DateFormatter would load
    /// ICU's locale data into every manager that ever sees such a header (megabytes of RSS).
    /// The weekday is optional and not checked against the date; the zone is GMT, UTC, Z or a
    /// numeric offset.
    private static func parseRFC1123(_ s: String) -> RequestDate? {
        var words = s.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if let first = words.first, first.hasSuffix(",") { words.removeFirst() }
        guard words.count == 5, let day = Int(words[0]), (1...31).contains(day), words[2].utf8.count == 4,
              let year = Int(words[2]), let month = monthNames.firstIndex(of: words[1].lowercased()) else { return nil }
        let clock = words[3].split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 3, clock.allSatisfy({ $0.utf8.count == 2 }), let hour = Int(clock[0]), let minute = Int(clock[1]),
              let second = Int(clock[2]), hour < 24, minute < 60, second < 61 else { return nil }
        var offsetSeconds = 0
        switch words[4].uppercased() {
        case "GMT", "UTC", "UT", "Z": break
        case let zone:
            let b = Array(zone.utf8).filter { $0 != UInt8(ascii: ":") }
            guard b.count == 5, b[0] == UInt8(ascii: "+") || b[0] == UInt8(ascii: "-"), b[1...].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            let digits = b[1...].map { Int($0 - 48) }
            offsetSeconds = (b[0] == UInt8(ascii: "-") ? -1 : 1) * ((digits[0] * 10 + digits[1]) * 3600 + (digits[2] * 10 + digits[3]) * 60)
        }
        let seconds = CivilTime.epochSeconds(year: year, month: month + 1, day: day) + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        let utc = CivilTime.civil(epochSeconds: seconds)
        return RequestDate(instant: Date(timeIntervalSince1970: Double(seconds)),
                           dateStamp: CivilTime.stamp(year: utc.year, month: utc.month, day: utc.day))
    }

    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
}

/// Calendar arithmetic without Foundation's Calendar: it sits on the hot path of every
/// signed request, and building a Calendar or DateFormatter costs more than the whole
/// signature check.
public enum CivilTime {
    /// Seconds from 1970-01-01T00:00:00Z to the start of a proleptic Gregorian day (UTC).
    public static func epochSeconds(year: Int, month: Int, day: Int) -> Int64 {
        // Howard Hinnant's days_from_civil.
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return (era * 146_097 + doe - 719_468) * 86_400
    }

    /// The UTC civil date of a Unix time.
    public static func civil(epochSeconds: Int64) -> (year: Int, month: Int, day: Int, secondOfDay: Int) {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secondOfDay = Int(epochSeconds - days * 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (Int(yoe + era * 400) + (month <= 2 ? 1 : 0), month, day, secondOfDay)
    }

    static func stamp(year: Int, month: Int, day: Int) -> String {
        pad(year, 4) + pad(month, 2) + pad(day, 2)
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// ISO 8601 in UTC with microseconds, e.g. 2026-11-29T12:34:56.789012Z.
    public static func iso8601(micros: Int64) -> String {
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = Int(micros - seconds * 1_000_000)
        let c = civil(epochSeconds: seconds)
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.secondOfDay / 3600, 2)):\(pad(c.secondOfDay / 60 % 60, 2)):\(pad(c.secondOfDay % 60, 2)).\(pad(fraction, 6))Z"
    }
}
