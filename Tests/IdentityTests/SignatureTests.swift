import Foundation
import Identity
import Testing
import TestSupport

/// Request signing against the vectors the official client computed.
@Suite struct SignatureTests {
    struct Vector {
        let name: String
        let input: SignatureInput
        let accessKey: String
        let secretKey: String
        let stringToSign: String
        let dateStamp: String
        let signature: String
        let authorization: String
    }

    static func vectors() throws -> [Vector] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/reference/sign_vectors.json").path
        let bundled = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/sign_vectors.json").path
        let data = try Data(contentsOf: URL(fileURLWithPath: FileManager.default.fileExists(atPath: bundled) ? bundled : path))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let items = try #require(root["vectors"] as? [[String: Any]])
        return try items.map { item in
            let inputs = try #require(item["inputs"] as? [String: String])
            let derived = try #require(item["derived"] as? [String: String])
            return Vector(name: item["name"] as? String ?? "?",
                          input: SignatureInput(method: inputs["method"]!, requestTarget: inputs["request_target"]!, date: inputs["date_header"]!,
                                                host: derived["host"]!, contentType: inputs["content_type"], apiVersion: inputs["x_backendai_version"]!),
                          accessKey: inputs["access_key"]!, secretKey: inputs["secret_key"]!, stringToSign: derived["string_to_sign"]!,
                          dateStamp: derived["date_for_key"]!, signature: derived["signature"]!,
                          authorization: item["expected_authorization"] as! String)
        }
    }

    @Test func everyOfficialVectorVerifies() throws {
        let vectors = try Self.vectors()
        #expect(vectors.count == 5)
        for v in vectors {
            #expect(RequestSigner.stringToSign(v.input) == v.stringToSign, "\(v.name)")
            let date = try RequestDate.parse(v.input.date)
            #expect(date.dateStamp == v.dateStamp, "\(v.name)")
            #expect(RequestSigner.signature(secretKey: v.secretKey, input: v.input, dateStamp: date.dateStamp) == v.signature, "\(v.name)")
            #expect(try RequestSigner.sign(accessKey: v.accessKey, secretKey: v.secretKey, input: v.input) == v.authorization, "\(v.name)")
            let parsed = try AuthorizationHeader.parse(v.authorization)
            #expect(parsed.accessKey == v.accessKey && parsed.signature == v.signature)
        }
    }

    @Test func tamperingWithAnySignedPartChangesTheSignature() throws {
        let v = try #require(try Self.vectors().first { $0.name == "graphql-post-json" })
        let stamp = try RequestDate.parse(v.input.date).dateStamp
        var tampered: [(String, SignatureInput, String)] = []
        var i = v.input
        i.method = "PUT"; tampered.append(("method", i, stamp)); i = v.input
        i.requestTarget = "/admin/gql2"; tampered.append(("path", i, stamp)); i = v.input
        i.requestTarget = "/admin/gql?x=1"; tampered.append(("query", i, stamp)); i = v.input
        i.date = "2024-03-01T12:34:57.789012+00:00"; tampered.append(("date", i, stamp)); i = v.input
        i.contentType = "text/plain"; tampered.append(("content type", i, stamp)); i = v.input
        i.host = "127.0.0.1:8091"; tampered.append(("host", i, stamp)); i = v.input
        i.apiVersion = "v6.20220615"; tampered.append(("version", i, stamp))
        tampered.append(("date stamp", v.input, "20240302"))
        for (what, input, dateStamp) in tampered {
            #expect(RequestSigner.signature(secretKey: v.secretKey, input: input, dateStamp: dateStamp) != v.signature, "tampered \(what)")
        }
        #expect(RequestSigner.signature(secretKey: v.secretKey + "x", input: v.input, dateStamp: stamp) != v.signature, "other key")
    }

    @Test func contentTypeIsSignedAsBareLowercaseMime() {
        var input = SignatureInput(method: "POST", requestTarget: "/", date: "d", host: "h", contentType: "Multipart/Form-Data; boundary=xyz", apiVersion: "v")
        #expect(input.signedContentType == "multipart/form-data")
        input.contentType = nil
        #expect(input.signedContentType == "application/octet-stream")
    }

    @Test(arguments: [
        ("2024-03-01T12:34:56.789012+00:00", "20240301", 1_709_296_496.789012),
        ("2024-03-01T12:34:56+00:00", "20240301", 1_709_296_496),
        ("2024-03-02T01:00:00+09:00", "20240302", 1_709_308_800),
        ("2024-03-01T12:34:56Z", "20240301", 1_709_296_496),
        ("2024-03-01T12:34:56", "20240301", 1_709_296_496),
        ("Fri, 01 Mar 2024 12:34:56 GMT", "20240301", 1_709_296_496),
        ("01 mar 2024 12:34:56 UTC", "20240301", 1_709_296_496),
        ("Sat, 02 Mar 2024 01:34:56 +1300", "20240301", 1_709_296_496),
        ("Thu, 29 Feb 2024 23:34:56 -13:00", "20240301", 1_709_296_496),
    ])
    func datesParseLikeTheReferenceManager(text: String, stamp: String, epoch: Double) throws {
        let date = try RequestDate.parse(text)
        #expect(date.dateStamp == stamp)
        #expect(abs(date.instant.timeIntervalSince1970 - epoch) < 0.001)
    }

    @Test func malformedHeadersAreRefused() {
        for bad in ["yesterday", "Fri, 01 Foo 2024 12:34:56 GMT", "Fri, 32 Mar 2024 12:34:56 GMT", "Fri, 01 Mar 2024 25:00:00 GMT",
                    "Fri, 01 Mar 2024 12:34:56 CET", "Fri, 01 Mar 24 12:34:56 GMT", "Fri, 01 Mar 2024 12:34 GMT"] {
            #expect(throws: SignatureError.self, "\(bad)") { try RequestDate.parse(bad) }
        }
        #expect(throws: SignatureError.self) { try AuthorizationHeader.parse("Bearer xyz") }
        #expect(throws: SignatureError.self) { try AuthorizationHeader.parse("BackendAI signMethod=HMAC-MD5, credential=AK:sig") }
        #expect(throws: SignatureError.self) { try AuthorizationHeader.parse("BackendAI signMethod=HMAC-SHA256") }
    }

    @Test func passwordsHashAndVerify() throws {
        let hash = try PasswordHasher.hash("correct horse", rounds: 1000)
        #expect(hash.hasPrefix("pbkdf2-sha256$1000$"))
        #expect(PasswordHasher.verify("correct horse", against: hash))
        #expect(!PasswordHasher.verify("wrong horse", against: hash))
        #expect(!PasswordHasher.verify("correct horse", against: "garbage"))
    }
}

@Suite struct CivilTimeTests {
    @Test func roundTripsAgainstFoundation() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        for epoch: Int64 in [0, 86_399, 86_400, 951_782_400, 1_709_296_496, 4_102_444_800, -86_401, 1_000_000_000_000 / 1000] {
            let c = CivilTime.civil(epochSeconds: epoch)
            let f = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(epoch)))
            #expect(c.year == f.year && c.month == f.month && c.day == f.day, "\(epoch)")
            #expect(CivilTime.epochSeconds(year: c.year, month: c.month, day: c.day) + Int64(c.secondOfDay) == epoch)
        }
        #expect(CivilTime.iso8601(micros: 1_709_296_496_789_012) == "2024-03-01T12:34:56.789012Z")
    }
}
