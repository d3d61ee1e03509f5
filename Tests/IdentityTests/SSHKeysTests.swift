import Foundation
import Identity
import Testing

/// Generated SSH keypairs are what OpenSSH itself reads: ssh-keygen derives the same public
/// key from the private key file.
struct SSHKeysTests {
    @Test func opensshReadsTheGeneratedKey() throws {
        let (pub, priv) = SSHKeys.generateEd25519(comment: "work@hangar")
        #expect(pub.hasPrefix("ssh-ed25519 ") && pub.hasSuffix(" work@hangar") && SSHKeys.isPublicKey(pub))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try priv.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let keygen = Process()
        keygen.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        keygen.arguments = ["-y", "-f", path]
        let out = Pipe()
        keygen.standardOutput = out
        try keygen.run()
        keygen.waitUntilExit()
        let derived = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(keygen.terminationStatus == 0)
        #expect(derived.split(separator: " ").prefix(2) == pub.split(separator: " ").prefix(2), "\(derived) vs \(pub)")
        #expect(!SSHKeys.isPublicKey("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA=="), "the blob names another key type")
        #expect(!SSHKeys.isPublicKey("not a key"))
    }
}
