import ConfigFile
import Foundation
import Testing
import TestSupport

/// The config reader every role uses: typed accessors whose errors name the file, the key and
/// what was expected; unknown sections and keys refused; sizes and addresses parsed strictly.
@Suite struct ConfigFileTests {
    static func section(_ toml: String) throws -> ConfigSection {
        try ConfigFile(toml: "[s]\n" + toml, path: "test.toml").section("s")
    }

    @Test func typedValuesAndDefaults() throws {
        let s = try Self.section("""
            name = "node-1"
            count = 4
            ratio = 0.5
            whole = 2
            on = true
            paths = ["/a", "/b"]
            size = "1.5G"
            raw = 4096
            """)
        #expect(try s.string("name", default: "x") == "node-1")
        #expect(try s.string("missing", default: "x") == "x")
        #expect(try s.optionalString("missing") == nil)
        #expect(try s.int("count", default: 0, range: 1...8) == 4)
        #expect(try s.double("ratio", default: 0) == 0.5)
        #expect(try s.double("whole", default: 0) == 2, "an integer reads as a number")
        #expect(try s.bool("on", default: false))
        #expect(try s.strings("paths", default: []) == ["/a", "/b"])
        #expect(try s.bytes("size", default: 0) == 3 << 29)
        #expect(try s.bytes("raw", default: 0) == 4096)
    }

    @Test func errorsNameTheFileTheKeyAndWhatWasExpected() throws {
        let s = try Self.section("count = \"four\"\nratio = 9.0\npaths = [\"/a\", 3]\nsize = \"lots\"\non = 1\n")
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        #expect(message { _ = try s.int("count", default: 0) } == #"test.toml: 's.count': expected an integer, found string "four""#)
        #expect(message { _ = try s.double("ratio", default: 0, range: 0...1) }.contains("must be between 0.0 and 1.0, found 9.0"))
        #expect(message { _ = try s.strings("paths", default: []) }.contains("found integer 3 in it"))
        #expect(message { _ = try s.bytes("size", default: 0) }.contains(#"expected a size like 16M or 1G, found "lots""#))
        #expect(message { _ = try s.bool("on", default: false) }.contains("expected true or false"))
    }

    @Test func unknownSectionsAndKeysAreRefusedWithTheKnownOnes() throws {
        let file = try ConfigFile(toml: "[agent]\nid = \"a\"\nlisten_adress = \"x\"\n[agnet]\n", path: "agent.toml")
        #expect(throws: ConfigFileError(file: "agent.toml", key: "agnet", "unknown section; known sections: agent, plugins")) {
            try file.checkSections(["agent", "plugins"])
        }
        let error = #expect(throws: ConfigFileError.self) {
            try file.section("agent").checkKeys(["id": "string", "listen": "host:port"])
        }
        #expect(error?.key == "agent.listen_adress")
        #expect(error?.message == "unknown key; known keys: id (string), listen (host:port)")
        #expect(throws: ConfigFileError.self) { try ConfigFile(toml: "agent = 3", path: "x").section("agent") }
    }

    @Test func invalidTOMLSaysWhere() {
        let error = #expect(throws: ConfigFileError.self) { try ConfigFile(toml: "[agent]\nid = \n", path: "bad.toml") }
        #expect(error?.description.hasPrefix("bad.toml: invalid TOML at line 2") == true, "\(String(describing: error))")
        let missing = #expect(throws: ConfigFileError.self) { try ConfigFile(path: "/nonexistent/hangar.toml") }
        #expect(missing?.description.contains("cannot read the config file") == true)
    }

    @Test(arguments: [
        ("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:8091", "::1", 8091), ("0.0.0.0:0", "0.0.0.0", 0),
    ])
    func addresses(text: String, host: String, port: Int) throws {
        let parsed = try Self.section("listen = \"\(text)\"").hostPort("listen", default: "127.0.0.1", 1)
        #expect(parsed.host == host && parsed.port == port)
    }

    @Test(arguments: ["localhost", ":8080", "host:", "host:70000", "host:+80", "host:8o80"])
    func badAddressesAreRefused(text: String) throws {
        let s = try Self.section("listen = \"\(text)\"")
        #expect(throws: ConfigFileError.self) { try s.hostPort("listen", default: "127.0.0.1", 1) }
    }

    @Test func sizesParseStrictly() {
        #expect(ByteSize.parse("16M") == 16 << 20)
        #expect(ByteSize.parse("16 MiB") == 16 << 20)
        #expect(ByteSize.parse("2g") == 2 << 30)
        #expect(ByteSize.parse("1.5T") == 3 << 39)
        #expect(ByteSize.parse("0.3k") == 307, "fractions of a byte round down")
        #expect(ByteSize.parse("4096") == 4096)
        #expect(ByteSize.parse("512b") == 512)
        for bad in ["", "G", "-1G", "+1G", "1.5x", "1e3", "1..5G", "1.G", ".5G", "nan", "16 M B", "9999999999P", "8388608T"] {
            #expect(ByteSize.parse(bad) == nil, "\(bad) is not a size")
        }
        #expect(ByteSize.parse("8388607T") == 8_388_607 << 40, "the largest whole-terabyte size that fits")
    }

    @Test func configValuesLookUpAndRenderInOrder() throws {
        let file = try ConfigFile(toml: "[p]\nz = 1\na = [\"x\", {k = true}]\n", path: "t")
        let p = try #require(file.root["p"])
        #expect(p.lookup("a.1.k") == .bool(true))
        #expect(p.lookup("a.5") == nil)
        // TOMLKit hands tables over sorted by key; the rendering keeps the order it was given.
        #expect(p.json == #"{"a":["x",{"k":true}],"z":1}"#)
        #expect(ConfigValue.table([("z", .integer(1)), ("a", .string("q\"\n"))]).json == #"{"z":1,"a":"q\"\n"}"#)
        let json = try ConfigValue(jsonText: #"{"b": [1, 2.5, "s", true]}"#)
        #expect(json.lookup("b") == .array([.integer(1), .double(2.5), .string("s"), .bool(true)]))
        #expect(throws: ConfigFileError.self) { try ConfigValue(jsonText: "{not json") }
    }
}
