import Foundation
import NIOCore

/// Streams a directory of a folder as a POSIX ustar archive (GNU long names for paths over
/// 100 bytes), one file at a time, so memory stays flat whatever the tree's size. Links are
/// archived as links, never followed.
enum TarArchive {
    static let block = 512

    static func octal(_ value: Int64, width: Int) -> [UInt8] {
        let digits = String(value, radix: 8)
        let padded = String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
        return Array(padded.utf8.prefix(width - 1)) + [0]
    }

    static func header(name: String, mode: UInt32, size: Int64, mtime: Int64, type: UInt8, link: String = "") -> [UInt8] {
        var h = [UInt8](repeating: 0, count: block)
        func put(_ bytes: [UInt8], at offset: Int, max: Int) {
            for (i, b) in bytes.prefix(max).enumerated() { h[offset + i] = b }
        }
        put(Array(name.utf8), at: 0, max: 100)
        put(octal(Int64(mode & 0o7777), width: 8), at: 100, max: 8)
        put(octal(0, width: 8), at: 108, max: 8)
        put(octal(0, width: 8), at: 116, max: 8)
        put(octal(size, width: 12), at: 124, max: 12)
        put(octal(mtime, width: 12), at: 136, max: 12)
        h[156] = type
        put(Array(link.utf8), at: 157, max: 100)
        put(Array("ustar\u{0}00".utf8), at: 257, max: 8)
        put(Array("root".utf8), at: 265, max: 32)
        put(Array("root".utf8), at: 297, max: 32)
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int64($1) }
        put(octal(sum, width: 7) + [0x20], at: 148, max: 8)
        return h
    }

    /// The header blocks for one entry, with a GNU long-name entry first when needed.
    static func entry(name: String, mode: UInt32, size: Int64, mtime: Int64, type: UInt8, link: String = "") -> [UInt8] {
        var out: [UInt8] = []
        for (kind, text) in [(UInt8(ascii: "L"), name), (UInt8(ascii: "K"), link)] where text.utf8.count >= 100 {
            let bytes = Array(text.utf8) + [0]
            out += header(name: "././@LongLink", mode: 0o644, size: Int64(bytes.count), mtime: 0, type: kind)
            out += bytes + [UInt8](repeating: 0, count: (block - bytes.count % block) % block)
        }
        return out + header(name: name, mode: mode, size: size, mtime: mtime, type: type, link: link)
    }

    /// Writes the tree below the open directory `fd` (entries named `prefix/...`).
    static func write(directory fd: Int32, prefix: String, to writer: inout any ResponseBodyWriterLike) async throws {
        guard let dir = fdopendir(dup(fd)) else { return }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        defer { closedir(dir) }
        for name in names.sorted() {
            var info = stat()
            guard fstatat(dirfd(dir), name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let path = prefix.isEmpty ? name : prefix + "/" + name
            let mtime = Int64(info.st_mtim.tv_sec)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                try await writer.write(entry(name: path + "/", mode: info.st_mode, size: 0, mtime: mtime, type: UInt8(ascii: "5")))
                let child = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }
                defer { close(child) }
                try await write(directory: child, prefix: path, to: &writer)
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: 4097)
                let n = readlinkat(dirfd(dir), name, &buffer, 4096)
                guard n >= 0 else { continue }
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                try await writer.write(entry(name: path, mode: info.st_mode, size: 0, mtime: mtime, type: UInt8(ascii: "2"), link: target))
            case S_IFREG:
                let file = openat(dirfd(dir), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard file >= 0 else { continue }
                defer { close(file) }
                // The size announced is what is sent: a file growing meanwhile is cut, a
                // shrinking one padded with zeros, so the archive stays well-formed.
                let size = Int64(info.st_size)
                try await writer.write(entry(name: path, mode: info.st_mode, size: size, mtime: mtime, type: UInt8(ascii: "0")))
                var sent: Int64 = 0
                var chunk = [UInt8](repeating: 0, count: 256 << 10)
                while sent < size {
                    let want = Int(min(Int64(chunk.count), size - sent))
                    let n = chunk.withUnsafeMutableBytes { pread(file, $0.baseAddress, want, off_t(sent)) }
                    if n <= 0 {
                        try await writer.write([UInt8](repeating: 0, count: want))
                        sent += Int64(want)
                    } else {
                        try await writer.write(Array(chunk[0..<n]))
                        sent += Int64(n)
                    }
                }
                let pad = (block - Int(size % Int64(block))) % block
                if pad > 0 { try await writer.write([UInt8](repeating: 0, count: pad)) }
            default:
                continue
            }
        }
    }
}

/// The little a tar stream needs of a response writer (lets the archive be written to a
/// Hummingbird response or collected in a test).
protocol ResponseBodyWriterLike {
    mutating func write(_ bytes: [UInt8]) async throws
}
