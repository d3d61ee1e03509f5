import Foundation

/// The tar archives the engine's archive endpoint speaks, and session downloads carry to
/// clients (ustar, with GNU long names and pax `path`/`linkpath` records, which Docker and
/// podman both write for long paths).
public enum TarArchive {
    /// One member of an archive.
    public struct Entry: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case file, directory, symlink, other }
        public var path: String
        public var kind: Kind
        public var mode: Int
        public var size: Int
        public var modified: Date
        public var linkTarget: String
        public var data: [UInt8]

        public init(path: String, kind: Kind, mode: Int, size: Int, modified: Date, linkTarget: String = "", data: [UInt8] = []) {
            (self.path, self.kind, self.mode, self.size, self.modified, self.linkTarget, self.data) = (path, kind, mode, size, modified, linkTarget, data)
        }
    }

    /// A malformed archive: what was wrong and where.
    public struct FormatError: Error, CustomStringConvertible {
        public let offset: Int
        public let reason: String
        public var description: String { "malformed tar archive at byte \(offset): \(reason)" }
    }

    /// The members of an archive, in order, up to its end-of-archive blocks.
    public static func entries(_ bytes: [UInt8]) throws -> [Entry] {
        var entries: [Entry] = []
        var offset = 0
        var longName: String?
        var longLink: String?
        while offset + 512 <= bytes.count {
            let header = bytes[offset..<offset + 512]
            if header.allSatisfy({ $0 == 0 }) { break }
            guard let size = octal(header, 124, 12) else { throw FormatError(offset: offset, reason: "the size field is not octal") }
            let type = header[header.startIndex + 156]
            let dataStart = offset + 512
            guard dataStart + size <= bytes.count else { throw FormatError(offset: offset, reason: "a member of \(size) bytes runs past the end") }
            let data = Array(bytes[dataStart..<dataStart + size])
            offset = dataStart + (size + 511) / 512 * 512
            switch type {
            case UInt8(ascii: "L"):
                longName = cString(data[...])
                continue
            case UInt8(ascii: "K"):
                longLink = cString(data[...])
                continue
            case UInt8(ascii: "x"):
                let records = paxRecords(data)
                if let path = records["path"] { longName = path }
                if let link = records["linkpath"] { longLink = link }
                continue
            case UInt8(ascii: "g"):
                continue
            default:
                break
            }
            var path = cString(header, 0, 100)
            let magic = cString(header, 257, 6)
            if magic.hasPrefix("ustar") {
                let prefix = cString(header, 345, 155)
                if !prefix.isEmpty { path = prefix + "/" + path }
            }
            if let longName { path = longName }
            let link = longLink ?? cString(header, 157, 100)
            longName = nil
            longLink = nil
            let kind: Entry.Kind = switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): .file
            case UInt8(ascii: "5"): .directory
            case UInt8(ascii: "2"): .symlink
            default: .other
            }
            let mode = octal(header, 100, 8) ?? 0
            let mtime = octal(header, 136, 12) ?? 0
            entries.append(Entry(path: path, kind: kind, mode: mode, size: kind == .file ? size : 0, modified: Date(timeIntervalSince1970: TimeInterval(mtime)),
                                 linkTarget: link, data: kind == .file ? data : []))
        }
        if offset < bytes.count, offset + 512 > bytes.count, bytes[offset...].contains(where: { $0 != 0 }) {
            throw FormatError(offset: offset, reason: "the archive ends inside a header")
        }
        return entries
    }

    /// One ustar header (and a GNU long-name record before it when the path needs one).
    public static func header(for entry: Entry) -> [UInt8] {
        var out: [UInt8] = []
        if entry.path.utf8.count > 99 {
            var name = Array(entry.path.utf8) + [0]
            var long = block(name: "././@LongLink", mode: 0, size: name.count, mtime: 0, type: UInt8(ascii: "L"), link: "")
            name += [UInt8](repeating: 0, count: (512 - name.count % 512) % 512)
            long += name
            out += long
        }
        let type: UInt8 = switch entry.kind {
        case .file, .other: UInt8(ascii: "0")
        case .directory: UInt8(ascii: "5")
        case .symlink: UInt8(ascii: "2")
        }
        out += block(name: String(decoding: entry.path.utf8.prefix(99), as: UTF8.self), mode: entry.mode, size: entry.kind == .file ? entry.size : 0,
                     mtime: Int(entry.modified.timeIntervalSince1970), type: type, link: entry.linkTarget)
        return out
    }

    /// Zero bytes that pad a member's data to whole blocks.
    public static func padding(afterDataOf size: Int) -> [UInt8] { [UInt8](repeating: 0, count: (512 - size % 512) % 512) }

    /// The two zero blocks that end an archive.
    public static let trailer = [UInt8](repeating: 0, count: 1024)

    /// A whole archive of in-memory entries.
    public static func archive(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            out += header(for: entry)
            if entry.kind == .file {
                out += entry.data
                out += padding(afterDataOf: entry.data.count)
            }
        }
        return out + trailer
    }

    static func block(name: String, mode: Int, size: Int, mtime: Int, type: UInt8, link: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, _ at: Int, _ width: Int) {
            for (i, byte) in text.utf8.prefix(width).enumerated() { h[at + i] = byte }
        }
        func putOctal(_ value: Int, _ at: Int, _ width: Int) {
            put(String(String(max(value, 0), radix: 8).suffix(width - 1)).leftPadded(to: width - 1), at, width - 1)
        }
        put(name, 0, 100)
        putOctal(mode & 0o7777, 100, 8)
        putOctal(0, 108, 8)
        putOctal(0, 116, 8)
        putOctal(size, 124, 12)
        putOctal(mtime, 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        for i in 148..<156 { h[i] = UInt8(ascii: " ") }
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(String(sum, radix: 8)).leftPadded(to: 6), 148, 6)
        h[154] = 0
        return h
    }

    static func octal(_ bytes: ArraySlice<UInt8>, _ at: Int, _ width: Int) -> Int? {
        let field = bytes[(bytes.startIndex + at)..<(bytes.startIndex + at + width)]
        let text = String(decoding: field.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return 0 }
        return Int(text, radix: 8)
    }

    static func cString(_ bytes: ArraySlice<UInt8>, _ at: Int = 0, _ width: Int? = nil) -> String {
        let start = bytes.startIndex + at
        let end = width.map { min(start + $0, bytes.endIndex) } ?? bytes.endIndex
        return String(decoding: bytes[start..<end].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// pax records: "LEN key=value\n" each.
    static func paxRecords(_ data: [UInt8]) -> [String: String] {
        var records: [String: String] = [:]
        var i = 0
        while i < data.count {
            guard let space = data[i...].firstIndex(of: UInt8(ascii: " ")), let length = Int(String(decoding: data[i..<space], as: UTF8.self)),
                  length > 0, i + length <= data.count else { break }
            let record = String(decoding: data[(space + 1)..<(i + length - 1)], as: UTF8.self)
            if let eq = record.firstIndex(of: "=") { records[String(record[..<eq])] = String(record[record.index(after: eq)...]) }
            i += length
        }
        return records
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
