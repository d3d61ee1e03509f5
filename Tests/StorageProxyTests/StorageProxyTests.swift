import AsyncHTTPClient
import ClusterProtocol
import ConfigFile
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import PluginHost
import StorageProxy
import Testing
import TestSupport

/// Deterministic test data of any size without holding it: byte p is block[p % B] ^ (p / B).
struct TestData {
    static let blockSize = 16 << 20
    let block: [UInt8]
    let size: Int64

    init(size: Int64, seed: UInt64 = 42) {
        var state = seed
        var bytes = [UInt8](repeating: 0, count: Self.blockSize)
        bytes.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in words.indices {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                words[i] = state
            }
        }
        block = bytes
        self.size = size
    }

    func bytes(from offset: Int64, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var p = offset
        var i = 0
        while i < count {
            let inBlock = Int(p % Int64(Self.blockSize))
            let run = min(count - i, Self.blockSize - inBlock)
            let key = UInt8(truncatingIfNeeded: p / Int64(Self.blockSize))
            block.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for j in 0..<run { dst[i + j] = src[inBlock + j] ^ key }
                }
            }
            i += run
            p += Int64(run)
        }
        return out
    }

    func sha256() -> String {
        var hasher = SHA256()
        var offset: Int64 = 0
        while offset < size {
            let n = Int(min(Int64(Self.blockSize), size - offset))
            hasher.update(data: bytes(from: offset, count: n))
            offset += Int64(n)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

func fileSHA256(_ path: String) throws -> String {
    let handle = try #require(FileHandle(forReadingAtPath: path))
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
        let data = handle.readData(ofLength: 8 << 20)
        if data.isEmpty { break }
        hasher.update(data: data)
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

@Suite(.serialized) struct StorageProxyTests {
    /// More than fifty hostile paths against every file operation: each is refused with a
    /// 4xx and a message, and nothing outside the folder is touched.
    @Test func hostilePathsNeverEscape() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        try FileManager.default.createDirectory(atPath: root + "/inner", withIntermediateDirectories: true)
        try "ok".write(toFile: root + "/inner/ok.txt", atomically: true, encoding: .utf8)
        try "top".write(toFile: root + "/ok.txt", atomically: true, encoding: .utf8)
        // Links a session could create inside its folder.
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: root + "/uplink", withDestinationPath: "..")
        try FileManager.default.createSymbolicLink(atPath: root + "/inner/deep", withDestinationPath: "../../..")
        try FileManager.default.createSymbolicLink(atPath: root + "/filelink", withDestinationPath: "/etc/passwd")
        let outside = try FileManager.default.contentsOfDirectory(atPath: proxy.dir).sorted()
        let passwd = try FileManager.default.attributesOfItem(atPath: "/etc/passwd")

        let hostile: [String] = [
            // relative escapes
            "..", "../", "../x", "../../x", "../../../../etc/passwd", "a/../..", "a/../../x", "inner/../../x", "inner/../../../etc",
            "./../x", "./../../x", "a/b/c/../../../../x", "inner/./../../x", "x/../../y", ".././x", "a/./../../b",
            // absolute
            "/", "/x", "/etc/passwd", "/tmp/hangar-escape", "//x", "///etc",
            // encoded forms
            "%2e%2e/x", "%2E%2E/x", "..%2fx", "%2e%2e%2fx", "inner/%2e%2e/%2e%2e/x", "%2fetc%2fpasswd", "..%5cx", "x%00y",
            // NUL and control characters
            "x\u{0}y", "inner/\u{0}", "\u{0}", "../\u{0}x", "x\ny", "bad\rname", "tab\tname", "bell\u{7}",
            // over-long
            String(repeating: "a", count: 256), "inner/" + String(repeating: "b", count: 300), String(repeating: "abc/", count: 1100),
            // not NFC (differs from an NFC name only by normalisation)
            "e\u{301}te.txt", "inner/cafe\u{301}", "A\u{30A}ngstrom",
            // symbolic links made inside the folder
            "link", "link/passwd", "link/x", "link/hosts", "uplink", "uplink/x", "uplink/uplink/x", "inner/deep", "inner/deep/x",
            "inner/deep/etc/passwd", "filelink",
        ]
        #expect(hostile.count >= 50)
        let target: [String: Any] = ["volume": "v1", "folder": folder]
        func with(_ extra: [String: Any]) -> [String: Any] { target.merging(extra) { a, _ in a } }
        var cases = 0
        for path in hostile {
            let operations: [(String, [String: Any])] = [
                ("folder/file/mkdir", with(["path": path, "parents": true])),
                ("folder/file/list", with(["path": path])),
                ("folder/file/rename", with(["path": path, "new_name": "renamed"])),
                ("folder/file/rename", with(["path": "ok.txt", "new_name": path])),
                ("folder/file/move", with(["source": "ok.txt", "destination": path])),
                ("folder/file/move", with(["source": path, "destination": "moved"])),
                ("folder/file/delete", with(["paths": [path], "recursive": true])),
                ("folder/file/upload", with(["path": path, "size": 1])),
                ("folder/file/download", with(["path": path])),
            ]
            for (operation, body) in operations {
                let (status, reply) = try await proxy.manager(operation, body)
                cases += 1
                #expect((400..<500).contains(status), "\(operation) \(path.debugDescription) answered \(status): \(reply)")
                #expect(!(reply["error"] as? String ?? "").isEmpty, "\(operation) \(path.debugDescription) gives a reason")
            }
        }
        #expect(cases >= 450)
        #expect(try FileManager.default.contentsOfDirectory(atPath: proxy.dir).sorted() == outside, "nothing appeared next to the volume")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/hangar-escape") && !FileManager.default.fileExists(atPath: "/x"))
        #expect(try FileManager.default.attributesOfItem(atPath: "/etc/passwd")[.modificationDate] as? Date == passwd[.modificationDate] as? Date)
        #expect(try String(contentsOfFile: root + "/inner/ok.txt", encoding: .utf8) == "ok", "the folder's own files are intact")
        #expect(try String(contentsOfFile: root + "/ok.txt", encoding: .utf8) == "top")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/link") == "/etc", "links are not touched")

        // Ordinary names work, including ones that merely look odd.
        for name in ["...", "a..b", "x%y", "naïve.txt", "space name", "-dash"] {
            let (status, reply) = try await proxy.manager("folder/file/mkdir", with(["path": "inner/" + name]))
            #expect(status == 201, "\(name): \(reply)")
        }
        let (_, listing) = try await proxy.manager("folder/file/list", with(["path": "inner"]))
        #expect((listing["items"] as? [[String: Any]])?.count == 8, "\(listing)")
    }

    /// A 1 GiB upload in 16 MiB chunks, cut off in the middle of a chunk, resumed from the
    /// offset the server reports, arrives byte-identical and appears only when complete; a
    /// download cut off and resumed with Range/If-Range is byte-identical too.
    @Test func resumedUploadAndRangedDownloadAreByteIdentical() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        let size: Int64 = 1 << 30
        let data = TestData(size: size)
        let (status, ticket) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": "data/big.bin", "size": size])
        try #require(status == 200, "\(ticket)")
        let url = try #require(ticket["url"] as? String) + "?token=" + (try #require(ticket["token"] as? String))
        let chunk = 16 << 20
        var offset: Int64 = 0
        var interrupted = false
        while offset < size {
            let n = Int(min(Int64(chunk), size - offset))
            if !interrupted && offset >= size / 2 {
                // Send half a chunk, then drop the connection.
                interrupted = true
                let half = data.bytes(from: offset, count: n / 2)
                let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
                continuation.yield(ByteBuffer(bytes: half))
                var request = HTTPClientRequest(url: url)
                request.method = .PATCH
                request.headers.add(name: "Upload-Offset", value: String(offset))
                request.headers.add(name: "Tus-Resumable", value: "1.0.0")
                request.body = .stream(stream, length: .known(Int64(n)))
                let sending = Task { try await HTTPClient.shared.execute(request, timeout: .seconds(60)) }
                try await Task.sleep(for: .milliseconds(300))
                continuation.finish(throwing: CancellationError())
                _ = try? await sending.value
                #expect(!FileManager.default.fileExists(atPath: root + "/data/big.bin"), "an unfinished upload is not visible")
                let resumeAt = try #require(try await proxy.head(url))
                #expect(resumeAt >= offset && resumeAt <= offset + Int64(n / 2), "the server kept what arrived: \(resumeAt)")
                offset = resumeAt
                continue
            }
            let (code, next) = try await proxy.patch(url, offset: offset, ByteBuffer(bytes: data.bytes(from: offset, count: n)))
            try #require(code == 204 && next == offset + Int64(n), "PATCH at \(offset): \(code) \(String(describing: next))")
            offset = next!
        }
        #expect(interrupted)
        let expected = data.sha256()
        #expect(try fileSHA256(root + "/data/big.bin") == expected, "the resumed upload is byte-identical")
        #expect(!FileManager.default.fileExists(atPath: root + "/.upload"), "no staging left behind")
        // A wrong offset is refused with the right one in the message, and nothing is appended.
        let (late, _) = try await proxy.patch(url, offset: 5, ByteBuffer(bytes: [1, 2, 3]))
        #expect(late == 409 || late == 413)

        // Download: stop after ~100 MiB, then resume from there.
        let (dstatus, dticket) = try await proxy.manager("folder/file/download", ["volume": "v1", "folder": folder, "path": "data/big.bin"])
        try #require(dstatus == 200, "\(dticket)")
        let durl = try #require(dticket["url"] as? String) + "?token=" + (try #require(dticket["token"] as? String))
        let local = proxy.dir + "/downloaded.bin"
        _ = FileManager.default.createFile(atPath: local, contents: nil)
        let out = try #require(FileHandle(forWritingAtPath: local))
        var received: Int64 = 0
        let first = try await HTTPClient.shared.execute(HTTPClientRequest(url: durl), timeout: .seconds(600))
        #expect(first.status == .ok && first.headers.first(name: "Content-Length") == String(size))
        let lastModified = try #require(first.headers.first(name: "Last-Modified"))
        for try await buffer in first.body {
            try out.write(contentsOf: Data(buffer.readableBytesView))
            received += Int64(buffer.readableBytes)
            if received >= 100 << 20 { break }
        }
        var resume = HTTPClientRequest(url: durl)
        resume.headers.add(name: "Range", value: "bytes=\(received)-")
        resume.headers.add(name: "If-Range", value: lastModified)
        let second = try await HTTPClient.shared.execute(resume, timeout: .seconds(600))
        #expect(second.status == .partialContent)
        #expect(second.headers.first(name: "Content-Range") == "bytes \(received)-\(size - 1)/\(size)")
        for try await buffer in second.body { try out.write(contentsOf: Data(buffer.readableBytesView)) }
        try out.close()
        #expect(try fileSHA256(local) == expected, "the resumed download is byte-identical")

        // A stale validator restarts from the beginning; an impossible range is 416.
        var stale = HTTPClientRequest(url: durl)
        stale.headers.add(name: "Range", value: "bytes=10-")
        stale.headers.add(name: "If-Range", value: "Mon, 01 Jan 2001 00:00:00 GMT")
        let restarted = try await HTTPClient.shared.execute(stale, timeout: .seconds(60))
        #expect(restarted.status == .ok)
        var beyond = HTTPClientRequest(url: durl)
        beyond.headers.add(name: "Range", value: "bytes=\(size + 10)-")
        #expect(try await HTTPClient.shared.execute(beyond, timeout: .seconds(60)).status.code == 416)
    }

    /// vfs records quotas; the proxy refuses an upload that would exceed one before writing.
    /// The manager API takes the `ClusterProtocol` messages: a field a newer manager adds is
    /// ignored (rolling upgrades), a missing or mistyped one is refused by name with nothing
    /// changed, and the replies decode as the typed messages.
    /// A client that asks `Expect: 100-continue` before a large body (curl does over 1 MiB)
    /// is answered at once instead of waiting out its timeout, and the upload completes.
    @Test func expectContinueIsAnsweredAtOnce() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        let size = 2 << 20
        let file = proxy.dir + "/body.bin"
        try Data(repeating: 7, count: size).write(to: URL(fileURLWithPath: file))
        let (status, ticket) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": "two.bin", "size": size])
        try #require(status == 200, "\(ticket)")
        let url = try #require(ticket["url"] as? String) + "?token=" + (try #require(ticket["token"] as? String))
        // With a 30 s wait allowed, only an interim answer from the server lets curl go on.
        let (code, out) = try run(["/usr/bin/curl", "-sv", "--expect100-timeout", "30", "-X", "PATCH", "-H", "Upload-Offset: 0", "-H", "Tus-Resumable: 1.0.0",
                                   "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect: 100-continue", "-T", file, url])
        #expect(code == 0 && out.contains("< HTTP/1.1 100 Continue") && out.contains("< HTTP/1.1 204"), "\(out)")
        #expect(FileManager.default.contents(atPath: root + "/two.bin") == Data(repeating: 7, count: size))
    }

    @Test func managerMessagesAreTypedAndTolerateNewFields() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        let (made, _) = try await proxy.manager("folder/file/mkdir", ["volume": "v1", "folder": folder, "path": "new", "from_a_newer_manager": true])
        #expect(made == 201)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: root + "/new", isDirectory: &isDirectory) && isDirectory.boolValue)
        let (missing, why) = try await proxy.manager("folder/file/mkdir", ["volume": "v1", "folder": folder])
        #expect(missing == 400 && why["error"] as? String == "'path' is required", "\(why)")
        let (negative, whyNot) = try await proxy.manager("folder/create", ["volume": "v1", "folder": String(repeating: "e", count: 32), "quota": -5])
        #expect(negative == 400 && (whyNot["error"] as? String ?? "").contains("'quota' must be a non-negative integer"), "\(whyNot)")
        let (createdAfter, _) = try await proxy.manager("folder/create", ["volume": "v1", "folder": String(repeating: "e", count: 32)])
        #expect(createdAfter == 201, "the refused create left nothing behind")
        let (mistyped, whyMistyped) = try await proxy.manager("folder/file/delete", ["volume": "v1", "folder": folder, "paths": "new"])
        #expect(mistyped == 400 && (whyMistyped["error"] as? String ?? "").contains("'paths'"), "\(whyMistyped)")
        // Typed replies.
        let (listed, listing) = try await proxy.manager("folder/file/list", ["volume": "v1", "folder": folder])
        #expect(listed == 200)
        let files = try JSONDecoder().decode(FileList.self, from: JSONSerialization.data(withJSONObject: listing))
        #expect(files.items.map(\.name) == ["new"] && files.items.first?.type == "directory")
        let (_, volumes) = try await proxy.manager("volumes")
        let list = try JSONDecoder().decode(VolumeList.self, from: JSONSerialization.data(withJSONObject: volumes))
        #expect(list.volumes.map(\.name) == ["v1"] && list.volumes.first?.backend == "vfs")
    }

    /// A vfs volume configured with its root only syncs what it reports done: the schema's
    /// default, which the host fills in, is fsync on.
    @Test func vfsIsDurableByDefault() throws {
        let library = try PluginLoader.open(path: PluginPaths.bundled("hangar-storage-vfs"))
        let schema = try ConfigSchema(json: try #require(library.descriptor.configSchema))
        let filled = schema.applyingDefaults(to: .table([("root", .string("/srv/volume"))]))
        #expect(filled.lookup("fsync") == .bool(true))
    }

    @Test func vfsQuotaRefusesBeforeAnyByteIsWritten() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder(quota: 10 << 20)
        let (ok, ticket) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": "nine.bin", "size": 9 << 20])
        #expect(ok == 200)
        let url = (ticket["url"] as? String ?? "") + "?token=" + (ticket["token"] as? String ?? "")
        let (code, _) = try await proxy.patch(url, offset: 0, ByteBuffer(bytes: [UInt8](repeating: 7, count: 9 << 20)))
        #expect(code == 204)
        let (refused, reply) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": "two.bin", "size": 2 << 20])
        #expect(refused == 413 && (reply["error"] as? String ?? "").contains("of 10 MiB used"), "the quota in units a person reads: \(reply)")
        #expect(!FileManager.default.fileExists(atPath: root + "/two.bin") && !FileManager.default.fileExists(atPath: root + "/.upload"))
        let (_, usage) = try await proxy.manager("folder/usage", ["volume": "v1", "folder": folder])
        #expect((usage["used_bytes"] as? Int ?? 0) >= 9 << 20 && usage["quota"] as? Int == 10 << 20, "\(usage)")
    }

    /// A directory downloads as a tar archive that `tar` extracts to the same tree (long
    /// names and links included, links archived as links).
    @Test func directoriesDownloadAsTar() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        let long = String(repeating: "n", count: 120)
        try FileManager.default.createDirectory(atPath: root + "/tree/sub/\(long)", withIntermediateDirectories: true)
        try "top\n".write(toFile: root + "/tree/a.txt", atomically: true, encoding: .utf8)
        try Data(TestData(size: 3 << 20).bytes(from: 0, count: 3 << 20)).write(to: URL(fileURLWithPath: root + "/tree/sub/blob.bin"))
        try "deep\n".write(toFile: root + "/tree/sub/\(long)/file.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: root + "/tree/escape", withDestinationPath: "/etc/passwd")
        let (status, ticket) = try await proxy.manager("folder/file/download", ["volume": "v1", "folder": folder, "path": "tree"])
        try #require(status == 200, "\(ticket)")
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: (ticket["url"] as? String ?? "") + "?token=" + (ticket["token"] as? String ?? "")),
                                                           timeout: .seconds(60))
        #expect(response.status == .ok && response.headers.first(name: "Content-Type") == "application/x-tar")
        let archive = proxy.dir + "/tree.tar"
        try Data(try await response.body.collect(upTo: 64 << 20).readableBytesView).write(to: URL(fileURLWithPath: archive))
        let out = proxy.dir + "/extracted"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-xf", archive, "-C", out]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        #expect(try String(contentsOfFile: out + "/tree/a.txt", encoding: .utf8) == "top\n")
        #expect(try String(contentsOfFile: out + "/tree/sub/\(long)/file.txt", encoding: .utf8) == "deep\n", "long names survive")
        #expect(try fileSHA256(out + "/tree/sub/blob.bin") == (try fileSHA256(root + "/tree/sub/blob.bin")))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/tree/escape") == "/etc/passwd", "a link is archived as a link")
    }

    /// A tar sent with `archive: true` is unpacked into the directory while it arrives
    /// (GNU and pax long names, empty files, many small files), and an archive holding a
    /// link, a `..` or absolute name, or no tar at all is refused with what was wrong,
    /// writing nothing outside the folder.
    @Test func archivesUploadUnpackedAndBadOnesAreRefused() async throws {
        let proxy = try await ProxyHarness()
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        let source = proxy.dir + "/source"
        let long = String(repeating: "n", count: 120)
        try FileManager.default.createDirectory(atPath: source + "/sub/\(long)", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: source + "/many", withIntermediateDirectories: true)
        try "top\n".write(toFile: source + "/a.txt", atomically: true, encoding: .utf8)
        try Data().write(to: URL(fileURLWithPath: source + "/empty"))
        try Data(TestData(size: 3 << 20).bytes(from: 0, count: 3 << 20)).write(to: URL(fileURLWithPath: source + "/sub/blob.bin"))
        try "deep\n".write(toFile: source + "/sub/\(long)/file.txt", atomically: true, encoding: .utf8)
        for i in 0..<300 { try "file \(i)\n".write(toFile: source + "/many/f\(i).txt", atomically: false, encoding: .utf8) }

        func upload(_ archive: [UInt8], into path: String) async throws -> (Int, Int64?, String) {
            let (status, ticket) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": path, "size": archive.count, "archive": true])
            try #require(status == 200, "\(ticket)")
            var request = HTTPClientRequest(url: (ticket["url"] as? String ?? "") + "?token=" + (ticket["token"] as? String ?? ""))
            request.method = .PATCH
            request.headers.add(name: "Tus-Resumable", value: "1.0.0")
            request.headers.add(name: "Upload-Offset", value: "0")
            request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
            request.body = .bytes(ByteBuffer(bytes: archive))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            return (Int(response.status.code), response.headers.first(name: "Hangar-Extracted-Files").flatMap(Int64.init), body)
        }
        for format in ["gnu", "pax"] {
            let tarball = proxy.dir + "/\(format).tar"
            let (tarStatus, tarOutput) = try TestSupport.run(["/usr/bin/tar", "--format=\(format)", "-cf", tarball, "-C", source, "."])
            try #require(tarStatus == 0, "\(tarOutput)")
            let (status, files, body) = try await upload(Array(try Data(contentsOf: URL(fileURLWithPath: tarball))), into: "in-\(format)")
            #expect(status == 204 && files == 304, "\(format): \(status) \(files ?? -1) \(body)")
            let out = root + "/in-\(format)"
            #expect(try String(contentsOfFile: out + "/a.txt", encoding: .utf8) == "top\n")
            #expect(try String(contentsOfFile: out + "/sub/\(long)/file.txt", encoding: .utf8) == "deep\n", "\(format) long names")
            #expect(try fileSHA256(out + "/sub/blob.bin") == (try fileSHA256(source + "/sub/blob.bin")))
            #expect((try FileManager.default.attributesOfItem(atPath: out + "/empty")[.size] as? Int) == 0)
            #expect(try String(contentsOfFile: out + "/many/f299.txt", encoding: .utf8) == "file 299\n")
            let left = try FileManager.default.subpathsOfDirectory(atPath: out).filter { $0.contains(".hangar-") }
            #expect(left.isEmpty, "no temporary files stay: \(left)")
        }
        // The folder's root is a target too.
        let small = TarArchive.archive([.init(path: "rooted.txt", kind: .file, mode: 0o644, size: 3, modified: Date(), data: Array("hi\n".utf8))])
        #expect(try await upload(small, into: ".").0 == 204)
        #expect(try String(contentsOfFile: root + "/rooted.txt", encoding: .utf8) == "hi\n")

        let refusals: [(String, [UInt8], String)] = [
            ("symlink", TarArchive.archive([.init(path: "link", kind: .symlink, mode: 0o777, size: 0, modified: Date(), linkTarget: "/etc/passwd")]), "symbolic link"),
            ("traversal", TarArchive.archive([.init(path: "../escaped.txt", kind: .file, mode: 0o644, size: 2, modified: Date(), data: [0x6f, 0x6b])]), "'..' is not allowed"),
            ("absolute", TarArchive.archive([.init(path: "/etc/escaped.txt", kind: .file, mode: 0o644, size: 2, modified: Date(), data: [0x6f, 0x6b])]), "absolute"),
            ("garbage", Array(repeating: 0x41, count: 2048), "not a tar archive"),
            ("truncated", Array(TarArchive.archive([.init(path: "cut.bin", kind: .file, mode: 0o644, size: 4000, modified: Date(), data: Array(repeating: 1, count: 4000))]).prefix(1500)), "ends inside 'bad-truncated"),
        ]
        for (name, archive, reason) in refusals {
            let (status, _, body) = try await upload(archive, into: "bad-\(name)")
            #expect(status == 400 && body.contains(reason), "\(name): \(status) \(body)")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/../escaped.txt") && !FileManager.default.fileExists(atPath: proxy.dir + "/escaped.txt"))
        #expect(!FileManager.default.fileExists(atPath: root + "/bad-truncated/cut.bin"), "a file cut short is not left under its name")
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.contains(".hangar-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        // An archive cannot replace a file by a directory of the same name.
        let (onFile, _) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": "rooted.txt", "size": 1024, "archive": true])
        #expect(onFile == 400 || onFile == 409, "\(onFile)")
    }

    /// Tokens are bound to one operation, folder and path, cannot be altered, and expire.
    @Test func tokensAreBoundAndExpire() async throws {
        let proxy = try await ProxyHarness(tokenTTL: 1)
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder()
        try "secret".write(toFile: root + "/a.txt", atomically: true, encoding: .utf8)
        let (_, up) = try await proxy.manager("folder/file/upload", ["volume": "v1", "folder": folder, "path": "b.txt", "size": 3])
        let (_, down) = try await proxy.manager("folder/file/download", ["volume": "v1", "folder": folder, "path": "a.txt"])
        let upToken = up["token"] as? String ?? "", downToken = down["token"] as? String ?? ""
        // An upload token does not download, and a download token does not upload.
        #expect(try await HTTPClient.shared.execute(HTTPClientRequest(url: proxy.base + "/download?token=" + upToken), timeout: .seconds(10)).status == .forbidden)
        let (wrongOp, _) = try await proxy.patch(proxy.base + "/upload?token=" + downToken, offset: 0, ByteBuffer(bytes: [1, 2, 3]))
        #expect(wrongOp == 403)
        // A token with one changed character fails its signature.
        var tampered = Array(downToken)
        tampered[5] = tampered[5] == "A" ? "B" : "A"
        #expect(try await HTTPClient.shared.execute(HTTPClientRequest(url: proxy.base + "/download?token=" + String(tampered)), timeout: .seconds(10)).status == .forbidden)
        let good = try await HTTPClient.shared.execute(HTTPClientRequest(url: proxy.base + "/download?token=" + downToken), timeout: .seconds(10))
        let content = String(buffer: try await good.body.collect(upTo: 1024))
        #expect(good.status == .ok && content == "secret")
        // The manager API needs the secret.
        let (unauthorized, _) = try await proxy.manager("folder/file/list", ["volume": "v1", "folder": folder, "path": "."], secret: "wrong")
        #expect(unauthorized == 401)
        try await Task.sleep(for: .milliseconds(2100))
        #expect(try await HTTPClient.shared.execute(HTTPClientRequest(url: proxy.base + "/download?token=" + downToken), timeout: .seconds(10)).status == .gone)
    }
}

/// A btrfs filesystem on a loopback file, made and removed by the test (needs root and
/// btrfs-progs, which Tools/scripts/install-deps.sh --server installs).
struct LoopbackBtrfs {
    let image: String
    let mountPoint: String

    static func run(_ tool: String, _ arguments: [String]) throws {
        let candidates = ["/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"].map { $0 + tool }
        let path = try #require(candidates.first(where: FileManager.default.isExecutableFile(atPath:)),
                                "\(tool) is missing: apt-get install btrfs-progs (Tools/scripts/install-deps.sh --server)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "\(tool) \(arguments.joined(separator: " ")) failed")
    }

    init(in dir: String, size: UInt64 = 512 << 20) throws {
        image = dir + "/btrfs.img"
        mountPoint = dir + "/btrfs"
        _ = FileManager.default.createFile(atPath: image, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: image))
        try handle.truncate(atOffset: size)
        try handle.close()
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try Self.run("mkfs.btrfs", ["-q", image])
        try Self.run("mount", ["-o", "loop", image, mountPoint])
        try FileManager.default.createDirectory(atPath: mountPoint + "/vol", withIntermediateDirectories: true)
    }

    func remove() {
        try? Self.run("umount", [mountPoint])
        try? FileManager.default.removeItem(atPath: image)
    }
}

@Suite(.serialized) struct BtrfsVolumeTests {
    /// A 10 MiB qgroup quota refuses the 11th MiB (the kernel enforces it; the upload fails
    /// with 413 and nothing is committed); a clone is a snapshot, independent of its source.
    @Test func quotaRefusesTheEleventhMiBAndClonesAreIndependent() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-btrfs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let fs = try LoopbackBtrfs(in: scratch)
        defer {
            fs.remove()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let proxy = try await ProxyHarness(volumes: [("b1", "btrfs", fs.mountPoint + "/vol")])
        defer { proxy.stop() }
        let (folder, root) = try await proxy.folder("b1", quota: 10 << 20)
        func upload(_ name: String, _ size: Int) async throws -> Int {
            let (status, ticket) = try await proxy.manager("folder/file/upload", ["volume": "b1", "folder": folder, "path": name, "size": size])
            try #require(status == 200, "\(ticket)")
            let url = (ticket["url"] as? String ?? "") + "?token=" + (ticket["token"] as? String ?? "")
            return try await proxy.patch(url, offset: 0, ByteBuffer(bytes: TestData(size: Int64(size)).bytes(from: 0, count: size))).0
        }
        #expect(try await upload("ten.bin", (10 << 20) - (512 << 10)) == 204, "9.5 MiB fit under the 10 MiB quota")
        #expect(try await upload("more.bin", 1 << 20) == 413, "the 11th MiB is refused")
        #expect(!FileManager.default.fileExists(atPath: root + "/more.bin") && !FileManager.default.fileExists(atPath: root + "/.upload"),
                "a refused upload leaves nothing")
        let (_, usage) = try await proxy.manager("folder/usage", ["volume": "b1", "folder": folder])
        #expect(usage["quota"] as? Int == 10 << 20 && (usage["used_bytes"] as? Int ?? 0) >= 9 << 20, "\(usage)")

        let cloneID = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let started = ContinuousClock.now
        let (cloned, reply) = try await proxy.manager("folder/clone", ["volume": "b1", "source": folder, "target": cloneID])
        let took = ContinuousClock.now - started
        #expect(cloned == 201, "\(reply)")
        print("btrfs clone of a 9.5 MiB folder took \(took) (HTTP round trip included)")
        let (_, mount) = try await proxy.manager("folder/mount", ["volume": "b1", "folder": cloneID])
        let cloneRoot = try #require(mount["path"] as? String)
        #expect(try fileSHA256(cloneRoot + "/ten.bin") == (try fileSHA256(root + "/ten.bin")), "the clone starts with the source's data")
        try "only in the clone".write(toFile: cloneRoot + "/new.txt", atomically: true, encoding: .utf8)
        let sourceHandle = try #require(FileHandle(forWritingAtPath: root + "/ten.bin"))
        try sourceHandle.write(contentsOf: Data(repeating: 0xAB, count: 4096))
        try sourceHandle.close()
        #expect(!FileManager.default.fileExists(atPath: root + "/new.txt"), "writes to the clone stay in the clone")
        #expect(try fileSHA256(cloneRoot + "/ten.bin") != (try fileSHA256(root + "/ten.bin")), "writes to the source stay in the source")
        let original = TestData(size: Int64((10 << 20) - (512 << 10)))
        var hasher = SHA256()
        hasher.update(data: original.bytes(from: 0, count: (10 << 20) - (512 << 10)))
        #expect(try fileSHA256(cloneRoot + "/ten.bin") == hasher.finalize().map { String(format: "%02x", $0) }.joined())
        #expect(try await proxy.manager("folder/delete", ["volume": "b1", "folder": cloneID]).0 == 204)
        #expect(try await proxy.manager("folder/delete", ["volume": "b1", "folder": folder]).0 == 204)
    }
}
