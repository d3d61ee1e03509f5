import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An address block from the `trusted_proxies` setting: one IPv4 or IPv6 address, or a CIDR
/// block such as `10.0.0.0/8` or `fd00::/8`.
public struct AddressBlock: Sendable, Equatable, CustomStringConvertible {
    /// The network's bytes (4 for IPv4, 16 for IPv6).
    let network: [UInt8]
    let prefixLength: Int

    /// Parses `text`; nil when it is not an address or a block.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let bytes = Self.bytes(parts[0]) else { return nil }
        let bits = bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...bits).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = bits
        }
        network = bytes
    }

    public var description: String {
        let text = Self.text(network)
        return prefixLength == network.count * 8 ? text : "\(text)/\(prefixLength)"
    }

    /// Whether `address` (text) lies in this block. IPv4-mapped IPv6 addresses
    /// (`::ffff:127.0.0.1`) count as their IPv4 address.
    public func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address).map(Self.unmapped), bytes.count == network.count else { return false }
        var remaining = prefixLength
        for index in 0..<bytes.count where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if bytes[index] & mask != network[index] & mask { return false }
            remaining -= take
        }
        return true
    }

    /// The bytes of an IPv4 or IPv6 address in text, or nil.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return unmapped(withUnsafeBytes(of: &v6) { Array($0) }) }
        return nil
    }

    static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return bytes }
        return Array(bytes[12...])
    }

    static func text(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) } != nil
        return ok ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }
}

/// Who a request really comes from when the webserver sits behind reverse proxies: the TCP
/// peer, unless that peer is a trusted proxy, in which case `X-Forwarded-For` is read from the
/// right (the entry the nearest proxy added) past every trusted proxy to the first address that
/// is not one. Entries left of that are whatever the client claimed and are never believed, so
/// a client cannot choose the address its failed logins are counted against.
public enum ClientAddress {
    /// - Parameters:
    ///   - peer: the TCP peer's address ("unknown" when there is none).
    ///   - forwardedFor: every `X-Forwarded-For` field of the request, in order.
    ///   - trusted: the `trusted_proxies` blocks.
    public static func resolve(peer: String, forwardedFor: [String], trusted: [AddressBlock]) -> String {
        func isTrusted(_ address: String) -> Bool { trusted.contains { $0.contains(address) } }
        guard isTrusted(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { Self.strip(String($0)) }.filter { !$0.isEmpty }
        var client = peer
        for hop in hops.reversed() {
            // Garbage is where the chain stops being trustworthy: the last good hop stands.
            guard AddressBlock.bytes(hop) != nil else { break }
            client = hop
            if !isTrusted(hop) { break }
        }
        return client
    }

    /// An entry without spaces, brackets or a port (`[2001:db8::1]:443`, `192.0.2.1:8080`).
    static func strip(_ entry: String) -> String {
        var text = entry.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { return String(text[text.index(after: text.startIndex)..<close]) }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") { text = String(text[..<colon]) }
        return text
    }
}
