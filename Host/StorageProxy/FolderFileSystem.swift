import ClusterProtocol
import Foundation

/// Why a file operation inside a virtual folder was refused. Nothing was touched when any of
/// these is thrown.
public enum FolderPathError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path itself is unacceptable (escapes, NUL, too long, not NFC, ...).
    case invalidPath(String, reason: String)
    case notFound(String)
    case exists(String)
    case notADirectory(String)
    case isADirectory(String)
    /// A component is a symbolic link; links are never followed.
    case symlink(String)
    case io(String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidPath(let p, let reason): "the path '\(Self.printable(p))' is refused: \(reason)"
        case .notFound(let p): "'\(Self.printable(p))' does not exist in the folder"
        case .exists(let p): "'\(Self.printable(p))' already exists"
        case .notADirectory(let p): "'\(Self.printable(p))' (or a part of it) is not a directory"
        case .isADirectory(let p): "'\(Self.printable(p))' is a directory (pass recursive to delete it with its contents)"
        case .symlink(let p): "'\(Self.printable(p))' (or a part of it) is a symbolic link; links are not followed"
        case .io(let p, let code): "'\(Self.printable(p))': \(String(cString: strerror(code)))"
        }
    }

    /// The HTTP status that fits.
    public var httpStatus: Int {
        switch self {
        case .invalidPath, .symlink, .notADirectory, .isADirectory: 400
        case .notFound: 404
        case .exists: 409
        case .io(_, let code): code == EDQUOT || code == ENOSPC ? 413 : 500
        }
    }

    static func printable(_ path: String) -> String {
        String(path.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) }.prefix(300))
    }
}

/// A path inside a folder, validated: relative, no `..`, no NUL or control characters, at
/// most 4096 bytes with components of at most 255, and in Unicode NFC (so two names that
/// differ only by normalisation can never both exist or alias each other).
public struct FolderPath: Sendable, Equatable {
    public let components: [String]
    public let raw: String

    public static let maxLength = 4096
    public static let maxComponent = 255

    public init(_ raw: String) throws(FolderPathError) {
        self.raw = raw
        guard raw.utf8.count <= Self.maxLength else { throw .invalidPath(raw, reason: "longer than \(Self.maxLength) bytes") }
        guard !raw.utf8.contains(0) else { throw .invalidPath(raw, reason: "it contains a NUL byte") }
        guard !raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw .invalidPath(raw, reason: "it contains control characters")
        }
        guard !raw.hasPrefix("/") else { throw .invalidPath(raw, reason: "absolute paths are not allowed; give a path relative to the folder") }
        guard Array(raw.utf8) == Array(raw.precomposedStringWithCanonicalMapping.utf8) else {
            throw .invalidPath(raw, reason: "it is not in Unicode NFC form; normalise names to NFC")
        }
        // Percent-encoded dots, slashes, backslashes and NULs are what path-traversal attempts
        // hide behind; a client sends decoded names, so these are refused rather than stored.
        let lowered = raw.lowercased()
        if let encoded = ["%2e", "%2f", "%5c", "%00"].first(where: { lowered.contains($0) }) {
            throw .invalidPath(raw, reason: "it contains the URL-encoded sequence '\(encoded)'; send names decoded")
        }
        var parts: [String] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            guard part != ".." else { throw .invalidPath(raw, reason: "'..' is not allowed") }
            guard part.utf8.count <= Self.maxComponent else { throw .invalidPath(raw, reason: "a name is longer than \(Self.maxComponent) bytes") }
            parts.append(String(part))
        }
        components = parts
    }

    public var isRoot: Bool { components.isEmpty }
    public var name: String { components.last ?? "" }
    public var parent: [String] { Array(components.dropLast()) }
}

/// File operations confined to one folder root. Every operation walks from an open
/// descriptor of the root with `openat(..., O_NOFOLLOW)`, one component at a time, so a
/// symbolic link anywhere on the way — even one swapped in concurrently from a session that
/// mounts the folder — makes the operation fail instead of escaping.
public struct FolderFileSystem: Sendable {
    public let root: String
    /// Where unfinished uploads are staged: inside the folder (so quotas count them and the
    /// final rename stays on one filesystem), under a name folder paths cannot reach by
    /// accident, opened with the same no-follow walk.
    public static let stagingDirectory = ".upload"

    public init(root: String) { self.root = root }

    // MARK: - Descriptors

    func openRoot() throws(FolderPathError) -> Int32 {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .io("/", errno: errno) }
        return fd
    }

    /// Opens the directory at `components` (creating missing ones when asked).
    /// - Parameter durably: with `create`, each directory made is made durable before going
    ///   on (its parent is fsynced), so a crash cannot lose the path to a file synced in it.
    func openDirectory(_ components: [String], create: Bool = false, durably: Bool = false, display: String) throws(FolderPathError) -> Int32 {
        var fd = try openRoot()
        for part in components {
            var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0, errno == ENOENT, create {
                if mkdirat(fd, part, 0o755) != 0 {
                    if errno != EEXIST {
                        let code = errno
                        close(fd)
                        throw .io(display, errno: code)
                    }
                } else if durably, fsync(fd) != 0 {
                    let code = errno
                    close(fd)
                    throw .io(display, errno: code)
                }
                next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let code = errno
            close(fd)
            guard next >= 0 else { throw Self.classify(code, display) }
            fd = next
        }
        return fd
    }

    static func classify(_ code: Int32, _ display: String) -> FolderPathError {
        switch code {
        case ENOENT: .notFound(display)
        case ELOOP: .symlink(display)
        case ENOTDIR: .notADirectory(display)
        case EEXIST: .exists(display)
        case EISDIR: .isADirectory(display)
        default: .io(display, errno: code)
        }
    }

    /// lstat of a name in an open directory; nil when absent.
    static func lstatAt(_ dir: Int32, _ name: String) -> stat? {
        var info = stat()
        return fstatat(dir, name, &info, AT_SYMLINK_NOFOLLOW) == 0 ? info : nil
    }

    // MARK: - Operations

    public func mkdir(_ path: FolderPath, parents: Bool, existOK: Bool) throws(FolderPathError) {
        guard !path.isRoot else {
            if existOK { return }
            throw .exists(path.raw)
        }
        let parent = try openDirectory(path.parent, create: parents, display: path.raw)
        defer { close(parent) }
        if mkdirat(parent, path.name, 0o755) != 0 {
            let code = errno
            if code == EEXIST, existOK, let info = Self.lstatAt(parent, path.name), (info.st_mode & S_IFMT) == S_IFDIR { return }
            throw Self.classify(code, path.raw)
        }
    }

    public func list(_ path: FolderPath) throws(FolderPathError) -> [FolderEntry] {
        let fd = try openDirectory(path.components, display: path.raw)
        guard let dir = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw .io(path.raw, errno: code)
        }
        defer { closedir(dir) }
        var entries: [FolderEntry] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." || (path.isRoot && name == Self.stagingDirectory) { continue }
            guard let info = Self.lstatAt(dirfd(dir), name) else { continue }
            entries.append(Self.entry(name, info))
        }
        return entries.sorted { $0.name < $1.name }
    }

    static func entry(_ name: String, _ info: stat) -> FolderEntry {
        let kind = info.st_mode & S_IFMT
        let type = kind == S_IFREG ? "file" : kind == S_IFDIR ? "directory" : kind == S_IFLNK ? "symlink" : "other"
        let letter = kind == S_IFDIR ? "d" : kind == S_IFLNK ? "l" : kind == S_IFREG ? "-" : "?"
        let bits = "rwxrwxrwx"
        var mode = letter
        for (i, char) in bits.enumerated() { mode.append(info.st_mode & (0o400 >> UInt32(i)) != 0 ? char : "-") }
        func seconds(_ t: timespec) -> Double { Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
        return FolderEntry(name: name, type: type, size: Int64(info.st_size), mode: mode,
                           mtime: seconds(info.st_mtim), atime: seconds(info.st_atim), ctime: seconds(info.st_ctim))
    }

    /// Renames the last component of `path` to `newName` (a single name) in place.
    public func rename(_ path: FolderPath, to newName: String) throws(FolderPathError) {
        let target = try FolderPath(newName)
        guard target.components.count == 1 else { throw .invalidPath(newName, reason: "the new name must be a single name, without '/'") }
        try move(path, to: FolderPath((path.parent + [target.name]).joined(separator: "/")))
    }

    /// Moves a file or directory within the folder; the destination must not exist.
    public func move(_ source: FolderPath, to destination: FolderPath) throws(FolderPathError) {
        guard !source.isRoot else { throw .invalidPath(source.raw, reason: "the folder root cannot be moved") }
        guard !destination.isRoot else { throw .exists(destination.raw) }
        let from = try openDirectory(source.parent, display: source.raw)
        defer { close(from) }
        let to = try openDirectory(destination.parent, display: destination.raw)
        defer { close(to) }
        guard let info = Self.lstatAt(from, source.name) else { throw .notFound(source.raw) }
        // Links are neither followed nor handled: only a session can have made one.
        guard (info.st_mode & S_IFMT) != S_IFLNK else { throw .symlink(source.raw) }
        guard Self.lstatAt(to, destination.name) == nil else { throw .exists(destination.raw) }
        guard renameat(from, source.name, to, destination.name) == 0 else { throw Self.classify(errno, source.raw) }
    }

    /// Deletes files (and directories with `recursive`), all or nothing as far as checking
    /// goes: every path is resolved before anything is removed.
    public func delete(_ paths: [FolderPath], recursive: Bool) throws(FolderPathError) {
        var targets: [(Int32, FolderPath, stat)] = []
        defer { for (fd, _, _) in targets { close(fd) } }
        for path in paths {
            guard !path.isRoot else { throw .invalidPath(path.raw, reason: "the folder root cannot be deleted this way; delete the folder") }
            let parent = try openDirectory(path.parent, display: path.raw)
            guard let info = Self.lstatAt(parent, path.name) else {
                close(parent)
                throw .notFound(path.raw)
            }
            if (info.st_mode & S_IFMT) == S_IFLNK {
                close(parent)
                throw .symlink(path.raw)
            }
            if (info.st_mode & S_IFMT) == S_IFDIR && !recursive {
                close(parent)
                throw .isADirectory(path.raw)
            }
            targets.append((parent, path, info))
        }
        for (parent, path, info) in targets {
            if (info.st_mode & S_IFMT) == S_IFDIR {
                try Self.removeTree(parent, path.name, display: path.raw)
            } else if unlinkat(parent, path.name, 0) != 0 {
                throw Self.classify(errno, path.raw)
            }
        }
    }

    /// Removes a directory tree below an open parent without following links.
    static func removeTree(_ parent: Int32, _ name: String, display: String) throws(FolderPathError) {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw classify(errno, display) }
        guard let dir = fdopendir(fd) else {
            close(fd)
            throw .io(display, errno: errno)
        }
        var children: [(String, Bool)] = []
        while let entry = readdir(dir) {
            let child = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if child == "." || child == ".." { continue }
            let isDir = lstatAt(dirfd(dir), child).map { ($0.st_mode & S_IFMT) == S_IFDIR } ?? false
            children.append((child, isDir))
        }
        defer { closedir(dir) }
        for (child, isDir) in children {
            if isDir {
                try removeTree(dirfd(dir), child, display: display + "/" + child)
            } else if unlinkat(dirfd(dir), child, 0) != 0 && errno != ENOENT {
                throw .io(display + "/" + child, errno: errno)
            }
        }
        guard unlinkat(parent, name, AT_REMOVEDIR) == 0 else { throw classify(errno, display) }
    }

    /// Opens a regular file for reading (never through a link).
    public func openForReading(_ path: FolderPath) throws(FolderPathError) -> (fd: Int32, info: stat) {
        guard !path.isRoot else { throw .isADirectory(path.raw) }
        let parent = try openDirectory(path.parent, display: path.raw)
        defer { close(parent) }
        let fd = openat(parent, path.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Self.classify(errno, path.raw) }
        var info = stat()
        fstat(fd, &info)
        return (fd, info)
    }

    /// The kind of what is at `path` (lstat), nil if absent.
    public func kind(_ path: FolderPath) throws(FolderPathError) -> mode_t? {
        if path.isRoot { return S_IFDIR }
        let parent: Int32
        do throws(FolderPathError) {
            parent = try openDirectory(path.parent, display: path.raw)
        } catch .notFound {
            return nil
        }
        defer { close(parent) }
        return Self.lstatAt(parent, path.name).map { $0.st_mode & S_IFMT }
    }

    // MARK: - Uploads

    /// The staging file of an upload session, created empty if needed; returns its descriptor
    /// (write-only, positioned by the caller) and current size.
    public func openStaging(_ session: String) throws(FolderPathError) -> (fd: Int32, size: Int64) {
        guard session.count == 32, session.allSatisfy(\.isHexDigit) else { throw .invalidPath(session, reason: "not an upload session id") }
        let staging = try openDirectory([Self.stagingDirectory], create: true, display: Self.stagingDirectory)
        defer { close(staging) }
        let fd = openat(staging, session, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.classify(errno, Self.stagingDirectory + "/" + session) }
        var info = stat()
        fstat(fd, &info)
        return (fd, Int64(info.st_size))
    }

    /// The size staged so far (0 if nothing yet).
    public func stagedSize(_ session: String) throws(FolderPathError) -> Int64 {
        guard let staging = try? openDirectory([Self.stagingDirectory], display: Self.stagingDirectory) else { return 0 }
        defer { close(staging) }
        return Self.lstatAt(staging, session).map { Int64($0.st_size) } ?? 0
    }

    /// Moves a complete upload to its final path in one rename (creating parent directories,
    /// each synced into its own parent), so the file appears whole or not at all, and fsyncs
    /// the directory that holds it, so the name survives a host crash once this returns (the
    /// caller has synced the data). An existing file is replaced.
    public func commitStaging(_ session: String, to path: FolderPath) throws(FolderPathError) {
        guard !path.isRoot else { throw .isADirectory(path.raw) }
        let staging = try openDirectory([Self.stagingDirectory], display: Self.stagingDirectory)
        defer { close(staging) }
        let parent = try openDirectory(path.parent, create: true, durably: true, display: path.raw)
        defer { close(parent) }
        if let existing = Self.lstatAt(parent, path.name), (existing.st_mode & S_IFMT) != S_IFREG {
            throw (existing.st_mode & S_IFMT) == S_IFDIR ? .isADirectory(path.raw) : .symlink(path.raw)
        }
        guard renameat(staging, session, parent, path.name) == 0 else { throw Self.classify(errno, path.raw) }
        guard fsync(parent) == 0 else { throw Self.classify(errno, path.raw) }
        // Leave no empty staging directory behind in the user's folder (fails harmlessly
        // while other uploads are in progress).
        if let root = try? openRoot() {
            unlinkat(root, Self.stagingDirectory, AT_REMOVEDIR)
            close(root)
        }
    }

    /// Drops an unfinished upload (and the staging directory when it is left empty).
    public func discardStaging(_ session: String) {
        guard let staging = try? openDirectory([Self.stagingDirectory], display: Self.stagingDirectory) else { return }
        unlinkat(staging, session, 0)
        close(staging)
        if let root = try? openRoot() {
            unlinkat(root, Self.stagingDirectory, AT_REMOVEDIR)
            close(root)
        }
    }
}
