import Foundation
import NIOCore

/// A tar stream unpacked into a directory of a folder while it arrives: the archive upload
/// (`archive: true` on request-upload), which moves many small files in one request instead
/// of one tus upload (and one fsync) each.
///
/// Members are ustar, GNU long names (`L`) and pax `path` records, as GNU tar, bsdtar and
/// Python's tarfile write them. Only files and directories are accepted; links, devices and
/// FIFOs are refused with the member's name, as are absolute names and `..` (through
/// `FolderPath`). Each file is written under a temporary name in its directory and renamed
/// when its last byte is in, so a file appears whole or not at all; `finish()` syncs the
/// whole filesystem once (syncfs) before the upload is answered.
struct ArchiveExtractor {
    private let fs: FolderFileSystem
    private let base: FolderPath
    private let tag: String

    /// A file being written: its directory, temporary and final names.
    private struct Member {
        var fd: Int32
        var directory: Int32
        var temporary: String
        var name: String
        var display: String
    }

    private enum State {
        case header
        case data(Member, remaining: Int64, padding: Int)
        /// A GNU long name or pax record being collected.
        case meta(type: UInt8, remaining: Int, collected: [UInt8], padding: Int)
        case skip(Int64)
        case end
    }

    private var state = State.header
    private var header: [UInt8] = []
    /// Where in the stream the current header began (for error messages).
    private var offset: Int64 = 0
    private var headerOffset: Int64 = 0
    private var longName: String?
    private var paxPath: String?
    /// Open directories by path, so the files of one directory do not reopen it each.
    private var directories: [String: Int32] = [:]
    private var counter = 0
    /// Files and directories written so far.
    private(set) var files = 0
    private(set) var directoriesMade = 0

    /// - Parameters:
    ///   - base: the directory the archive's names are relative to (created if missing).
    ///   - tag: names this upload's temporary files (its upload session).
    init(fs: FolderFileSystem, base: FolderPath, tag: String) {
        self.fs = fs
        self.base = base
        self.tag = String(tag.prefix(12))
        header.reserveCapacity(512)
    }

    /// Takes the next bytes of the archive.
    mutating func feed(_ chunk: ByteBuffer) throws {
        var view = chunk.readableBytesView[...]
        while !view.isEmpty {
            switch state {
            case .header:
                let take = min(512 - header.count, view.count)
                header.append(contentsOf: view.prefix(take))
                view = view.dropFirst(take)
                offset += Int64(take)
                if header.count == 512 {
                    try begin()
                    header.removeAll(keepingCapacity: true)
                    headerOffset = offset
                }
            case .data(let member, let remaining, let padding):
                let take = Int(min(Int64(view.count), remaining))
                try write(member, view.prefix(take))
                view = view.dropFirst(take)
                offset += Int64(take)
                if remaining == Int64(take) {
                    try complete(member)
                    state = padding > 0 ? .skip(Int64(padding)) : .header
                } else {
                    state = .data(member, remaining: remaining - Int64(take), padding: padding)
                }
            case .meta(let type, let remaining, var collected, let padding):
                let take = min(remaining, view.count)
                collected.append(contentsOf: view.prefix(take))
                view = view.dropFirst(take)
                offset += Int64(take)
                if remaining == take {
                    try record(type, collected)
                    state = padding > 0 ? .skip(Int64(padding)) : .header
                } else {
                    state = .meta(type: type, remaining: remaining - take, collected: collected, padding: padding)
                }
            case .skip(let remaining):
                let take = Int(min(Int64(view.count), remaining))
                view = view.dropFirst(take)
                offset += Int64(take)
                state = remaining == Int64(take) ? .header : .skip(remaining - Int64(take))
            case .end:
                // Writers pad the end of an archive to whole records with zeros.
                offset += Int64(view.count)
                view = view.dropFirst(view.count)
            }
        }
    }

    /// The archive is complete: checks it did not stop inside a member and makes everything
    /// written durable. Call once, after the last `feed`.
    mutating func finish() throws {
        // A refusal here leaves the member's directory open for `abandon()` to clean up.
        switch state {
        case .end: break
        case .header where header.isEmpty: break
        case .data(let member, _, _):
            throw StorageProxyError(.badRequest, "the archive ends inside '\(member.display)'; send the whole archive again")
        default:
            throw StorageProxyError(.badRequest, "the archive ends inside a member's header or padding (at byte \(offset)); send the whole archive again")
        }
        closeDirectories()
        let root = try StorageProxyRoutes.run { () throws(FolderPathError) in try fs.openRoot() }
        defer { close(root) }
        guard Self.syncFileSystem(root) == 0 else {
            throw StorageProxyError.from(.io(base.raw, errno: errno))
        }
    }

    /// Drops the file being written (the upload failed); what was complete stays.
    mutating func abandon() {
        if case .data(let member, _, _) = state {
            close(member.fd)
            unlinkat(member.directory, member.temporary, 0)
        }
        state = .end
        closeDirectories()
    }

    // MARK: - Members

    private mutating func begin() throws {
        guard header.contains(where: { $0 != 0 }) else {
            state = .end
            return
        }
        let stored = Self.number(header[148..<156])
        let sum = header.indices.reduce(0) { $0 + Int64((148..<156).contains($1) ? 0x20 : header[$1]) }
        guard let stored, stored == sum else {
            throw StorageProxyError(.badRequest, "not a tar archive: the header at byte \(headerOffset) has a wrong checksum; send an uncompressed tar (ustar, GNU or pax)")
        }
        guard let size = Self.number(header[124..<136]), size >= 0 else {
            throw StorageProxyError(.badRequest, "the tar header at byte \(headerOffset) has an unreadable size")
        }
        let padding = Int((512 - size % 512) % 512)
        let type = header[156]
        switch type {
        case UInt8(ascii: "L"), UInt8(ascii: "x"):
            guard size <= 1 << 20 else { throw StorageProxyError(.badRequest, "a tar name record at byte \(headerOffset) is over 1 MiB") }
            state = size == 0 ? .header : .meta(type: type, remaining: Int(size), collected: [], padding: padding)
            return
        case UInt8(ascii: "g"), UInt8(ascii: "K"):
            // Global pax records and GNU long link names carry nothing a file or folder needs.
            state = size + Int64(padding) == 0 ? .header : .skip(size + Int64(padding))
            return
        default: break
        }
        let name = paxPath ?? longName ?? memberName()
        paxPath = nil
        longName = nil
        let isDirectory: Bool
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): isDirectory = false
        case UInt8(ascii: "5"): isDirectory = true
        case UInt8(ascii: "1"): throw StorageProxyError(.badRequest, "'\(name)' in the archive is a hard link; an archive uploaded to a folder may hold only files and directories")
        case UInt8(ascii: "2"): throw StorageProxyError(.badRequest, "'\(name)' in the archive is a symbolic link; an archive uploaded to a folder may hold only files and directories")
        default: throw StorageProxyError(.badRequest, "'\(name)' in the archive is a device, FIFO or unknown member (type '\(Character(Unicode.Scalar(type)))'); only files and directories are accepted")
        }
        guard !name.hasPrefix("/") else {
            throw StorageProxyError(.badRequest, "'\(name)' in the archive is an absolute name; archive members must be relative (tar strips the leading '/' unless told -P)")
        }
        let prefix = base.components.joined(separator: "/")
        let path = try StorageProxyRoutes.path(prefix.isEmpty ? name : prefix + "/" + name)
        guard path.components.count > base.components.count else {
            // The archive's own root ("./").
            state = !isDirectory && size > 0 ? .skip(size + Int64(padding)) : .header
            return
        }
        if isDirectory {
            _ = try directory(path.components)
            directoriesMade += 1
            state = size + Int64(padding) == 0 ? .header : .skip(size + Int64(padding))
            return
        }
        let parent = try directory(Array(path.components.dropLast()))
        if let existing = FolderFileSystem.lstatAt(parent, path.name), (existing.st_mode & S_IFMT) != S_IFREG {
            throw StorageProxyError.from((existing.st_mode & S_IFMT) == S_IFDIR ? .isADirectory(path.raw) : .symlink(path.raw))
        }
        counter += 1
        let temporary = ".hangar-\(tag)-\(counter).part"
        let mode = mode_t(Self.number(header[100..<108]) ?? 0o644) & 0o777 | 0o600
        let fd = openat(parent, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StorageProxyError.from(FolderFileSystem.classify(errno, path.raw)) }
        let member = Member(fd: fd, directory: parent, temporary: temporary, name: path.name, display: path.raw)
        if size == 0 {
            try complete(member)
            state = .header
        } else {
            state = .data(member, remaining: size, padding: padding)
        }
    }

    /// The ustar name, with its prefix field when the magic says ustar.
    private func memberName() -> String {
        let name = Self.text(header[0..<100])
        let magic = Self.text(header[257..<262])
        let prefix = magic == "ustar" ? Self.text(header[345..<500]) : ""
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    private mutating func record(_ type: UInt8, _ bytes: [UInt8]) throws {
        if type == UInt8(ascii: "L") {
            longName = Self.text(bytes[...])
            return
        }
        // pax: "LENGTH key=value\n" records.
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard let space = bytes[index...].firstIndex(of: 0x20), let length = Int(String(decoding: bytes[index..<space], as: UTF8.self)),
                  length > 0, index + length <= bytes.endIndex else {
                throw StorageProxyError(.badRequest, "a pax record near byte \(headerOffset) is malformed")
            }
            let field = bytes[(space + 1)..<(index + length - 1)]
            if let equals = field.firstIndex(of: UInt8(ascii: "=")), String(decoding: field[field.startIndex..<equals], as: UTF8.self) == "path" {
                paxPath = String(decoding: field[(equals + 1)...], as: UTF8.self)
            }
            index += length
        }
    }

    private func write(_ member: Member, _ bytes: ByteBufferView.SubSequence) throws {
        var remaining = bytes
        while !remaining.isEmpty {
            let n = remaining.withUnsafeBytes { Glibc.write(member.fd, $0.baseAddress, $0.count) }
            guard n > 0 else {
                let code = errno
                if code == EINTR { continue }
                throw code == EDQUOT || code == ENOSPC
                    ? StorageProxyError(.contentTooLarge, "the folder's quota (or the volume) is full while writing '\(member.display)': \(String(cString: strerror(code)))")
                    : StorageProxyError.from(.io(member.display, errno: code))
            }
            remaining = remaining.dropFirst(n)
        }
    }

    private mutating func complete(_ member: Member) throws {
        close(member.fd)
        guard renameat(member.directory, member.temporary, member.directory, member.name) == 0 else {
            let code = errno
            unlinkat(member.directory, member.temporary, 0)
            throw StorageProxyError.from(FolderFileSystem.classify(code, member.display))
        }
        files += 1
    }

    /// The open directory at `components`, made if missing (kept open for the next member).
    private mutating func directory(_ components: [String]) throws -> Int32 {
        let key = components.joined(separator: "/")
        if let fd = directories[key] { return fd }
        if directories.count >= 64 { closeDirectories() }
        let fd = try StorageProxyRoutes.run { () throws(FolderPathError) in try fs.openDirectory(components, create: true, display: key.isEmpty ? "/" : key) }
        directories[key] = fd
        return fd
    }

    private mutating func closeDirectories() {
        for fd in directories.values { close(fd) }
        directories.removeAll()
    }

    // MARK: - Fields

    /// A NUL-terminated text field.
    static func text(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// An octal field (spaces and NULs around it), or GNU's base-256 for large values.
    static func number(_ field: ArraySlice<UInt8>) -> Int64? {
        guard let first = field.first else { return nil }
        if first & 0x80 != 0 {
            var value: Int64 = Int64(first & 0x7F)
            for byte in field.dropFirst() {
                guard value < Int64.max >> 8 else { return nil }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        let digits = field.drop { $0 == 0x20 || $0 == 0 }.prefix { $0 >= 0x30 && $0 <= 0x37 }
        guard !digits.isEmpty else { return field.allSatisfy { $0 == 0x20 || $0 == 0 } ? 0 : nil }
        return Int64(String(decoding: digits, as: UTF8.self), radix: 8)
    }

    /// syncfs(2), which the Glibc module does not import: one call makes every file and
    /// directory written on the folder's filesystem durable (a fsync per file would cost a
    /// journal commit each). Falls back to sync(2), which does the same for every filesystem.
    static func syncFileSystem(_ fd: Int32) -> Int32 {
        if let syncfs = syncfsFunction { return syncfs(fd) }
        sync()
        return 0
    }

    private static let syncfsFunction: (@convention(c) (Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "syncfs") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Int32).self)
    }()
}
