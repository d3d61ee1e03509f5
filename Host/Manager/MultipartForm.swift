import Foundation

/// A multipart/form-data parser for session uploads (small bodies, already collected):
/// parts with their field name, filename and bytes.
enum MultipartForm {
    struct Part: Sendable {
        var name: String
        var filename: String
        var content: Data
    }

    struct ParseError: Error {
        let message: String
    }

    /// The boundary parameter of a `multipart/form-data` content type.
    static func boundary(_ contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() where piece.lowercased().hasPrefix("boundary=") {
            var value = String(piece.dropFirst("boundary=".count))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return (1...70).contains(value.utf8.count) ? value : nil
        }
        return nil
    }

    static func parse(_ body: [UInt8], boundary: String) throws(ParseError) -> [Part] {
        let delimiter = Array("--\(boundary)".utf8)
        guard var position = find(delimiter, in: body, from: 0) else { throw ParseError(message: "the boundary '\(boundary)' never occurs") }
        var parts: [Part] = []
        while true {
            position += delimiter.count
            // "--" after a delimiter closes the body.
            if body.count >= position + 2, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-") { return parts }
            guard body.count >= position + 2, body[position] == 13, body[position + 1] == 10 else {
                throw ParseError(message: "a boundary line is not followed by CRLF")
            }
            position += 2
            guard let headerEnd = find(Array("\r\n\r\n".utf8), in: body, from: position) else { throw ParseError(message: "a part has no end of headers") }
            let headers = String(decoding: body[position..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let next = find(Array("\r\n".utf8) + delimiter, in: body, from: contentStart) else {
                throw ParseError(message: "a part is not closed by the boundary (truncated body?)")
            }
            var part = Part(name: "", filename: "", content: Data(body[contentStart..<next]))
            for line in headers.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                part.name = parameter("name", in: line) ?? ""
                // Backend.AI's client (aiohttp) percent-encodes the name, "/" included:
                // "langs%2Fmain.cpp" is langs/main.cpp, as Backend.AI's manager reads it.
                let filename = parameter("filename", in: line) ?? ""
                part.filename = filename.contains("%") ? (filename.removingPercentEncoding ?? filename) : filename
            }
            parts.append(part)
            position = next + 2
        }
    }

    /// A `key="value"` parameter of a header line.
    static func parameter(_ key: String, in line: String) -> String? {
        for piece in line.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard piece.hasPrefix(key + "=") else { continue }
            var value = String(piece.dropFirst(key.count + 1))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        let first = needle[0]
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == first, haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
