import ClusterProtocol
import Foundation
import Testing

/// The archive format of the engine's archive endpoint and of session downloads, checked against GNU tar itself.
struct TarArchiveTests {
    @Test func roundTripsThroughGNUTar() throws {
        let long = String(repeating: "d", count: 120) + "/file.txt"
        let entries = [
            TarArchive.Entry(path: "dir", kind: .directory, mode: 0o755, size: 0, modified: Date(timeIntervalSince1970: 1_700_000_000)),
            TarArchive.Entry(path: "dir/a.txt", kind: .file, mode: 0o600, size: 6, modified: Date(timeIntervalSince1970: 1_700_000_000), data: Array("hello\n".utf8)),
            TarArchive.Entry(path: long, kind: .file, mode: 0o644, size: 700, modified: Date(), data: [UInt8](repeating: 7, count: 700)),
            TarArchive.Entry(path: "link", kind: .symlink, mode: 0o777, size: 0, modified: Date(), linkTarget: "dir/a.txt"),
        ]
        let bytes = TarArchive.archive(entries)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tar-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/x.tar"))
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-xf", dir + "/x.tar", "-C", dir]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        #expect(try String(contentsOfFile: dir + "/dir/a.txt", encoding: .utf8) == "hello\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + long)).count == 700)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link") == "dir/a.txt")
        let read = try TarArchive.entries(bytes)
        #expect(read.map(\.path) == entries.map(\.path) && read[1].data == Array("hello\n".utf8) && read[1].mode == 0o600)

        // What GNU tar writes (pax headers for long names) reads back too.
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/bin/tar")
        make.arguments = ["--format=pax", "-cf", dir + "/y.tar", "-C", dir, "dir", long]
        try make.run()
        make.waitUntilExit()
        let theirs = try TarArchive.entries(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/y.tar"))))
        #expect(theirs.contains { $0.path == long && $0.data.count == 700 }, "\(theirs.map(\.path))")
        #expect(throws: TarArchive.FormatError.self) { try TarArchive.entries(Array(bytes.prefix(600))) }
    }
}
