import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The web UI's files: plain ES modules, CSS and one HTML page, built into hangard (SwiftPM
/// embeds `UI/` as code), or read from `ui_directory` while someone works on them. The
/// terminal's xterm.js comes from Debian's node-xterm (3.8.1, the version Debian 12 ships and
/// patches): its CommonJS modules are joined into one browser script here, when first asked
/// for, so nothing is fetched from the internet and no Node toolchain is needed.
final class UIAssets: Sendable {
    let directory: String?
    let xtermDirectory: String
    private let xtermBundle = Mutex<[UInt8]?>(nil)
    /// gzip copies of the files built in and of the xterm bundle, made on first request.
    private let compressed = Mutex<[String: [UInt8]]>([:])

    /// The files built in, by name.
    static let embedded: [String: [UInt8]] = [
        "index.html": PackageResources.index_html,
        "app.js": PackageResources.app_js,
        "api.js": PackageResources.api_js,
        "app.css": PackageResources.app_css,
        "icon.svg": PackageResources.icon_svg,
    ]

    init(directory: String?, xtermDirectory: String) {
        self.directory = directory
        self.xtermDirectory = xtermDirectory
    }

    static func contentType(_ name: String) -> String {
        switch (name as NSString).pathExtension {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        default: "application/octet-stream"
        }
    }

    /// A UI file by its plain name (no folders: nothing outside the UI can be named), gzipped
    /// when the client accepts it.
    func response(for name: String, acceptEncoding: String? = nil) throws -> Response {
        guard !name.contains("/"), !name.hasPrefix("."), let bytes = bytes(of: name) else {
            throw HTTPError(.notFound, message: "no UI file named '\(name)'")
        }
        // The page itself is never cached, so a new hangard's UI is picked up at once.
        let cache = name.hasSuffix(".html") ? "no-store" : "no-cache"
        // A working copy (ui_directory) changes under us: compressed each time, never kept.
        return answer(bytes, key: directory == nil ? name : nil, contentType: Self.contentType(name), cacheControl: cache, acceptEncoding: acceptEncoding)
    }

    /// `bytes` as an answer, gzipped (and the gzip copy kept under `key`) when the client
    /// accepts it and it is worth it.
    func answer(_ bytes: [UInt8], key: String?, contentType: String, cacheControl: String, acceptEncoding: String?) -> Response {
        var headers: HTTPFields = [.contentType: contentType, .cacheControl: cacheControl, .vary: "Accept-Encoding"]
        // Below a kilobyte the header costs about what gzip saves.
        guard bytes.count >= 1024, Gzip.accepted(acceptEncoding) else {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        let gzipped: [UInt8]? = if let key {
            compressed.withLock { cache in
                if let hit = cache[key] { return hit }
                let made = Gzip.compress(bytes)
                cache[key] = made
                return made
            }
        } else {
            Gzip.compress(bytes)
        }
        guard let gzipped else { return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes))) }
        headers[.contentEncoding] = "gzip"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: gzipped)))
    }

    func bytes(of name: String) -> [UInt8]? {
        if let directory {
            return FileManager.default.contents(atPath: directory + "/" + name).map { Array($0) }
        }
        return Self.embedded[name]
    }

    /// xterm.js as one script that defines `window.Terminal`.
    func xtermScript(acceptEncoding: String? = nil) throws -> Response {
        let script = try xtermBundle.withLock { cached -> [UInt8] in
            if let cached { return cached }
            let built = Array(try XtermBundle.build(directory: xtermDirectory).utf8)
            cached = built
            return built
        }
        return answer(script, key: "/vendor/xterm.js", contentType: "text/javascript; charset=utf-8", cacheControl: "max-age=86400",
                      acceptEncoding: acceptEncoding)
    }

    func xtermStyle(acceptEncoding: String? = nil) throws -> Response {
        guard let data = FileManager.default.contents(atPath: xtermDirectory + "/xterm.css") else {
            throw HTTPError(.notFound, message: "xterm.css is not in \(xtermDirectory): install Debian's node-xterm, or set [webserver] xterm_directory")
        }
        return answer(Array(data), key: "/vendor/xterm.css", contentType: "text/css; charset=utf-8", cacheControl: "max-age=86400",
                      acceptEncoding: acceptEncoding)
    }
}

/// Joins a folder of CommonJS modules (xterm.js as Debian ships it) into one browser script:
/// each module becomes a function in a table, and a small `require` resolves the relative
/// names between them.
enum XtermBundle {
    /// `.js` files below `directory`, following symbolic links (Debian links the addons in).
    static func javaScriptFiles(in directory: String, under prefix: String) -> [String] {
        let here = prefix.isEmpty ? directory : directory + "/" + prefix
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: here) else { return [] }
        var out: [String] = []
        for name in names.sorted() {
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: here + "/" + name, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                // Bounded: Debian's tree is three levels deep; a link loop must not hang a request.
                if relative.split(separator: "/").count < 6 { out += javaScriptFiles(in: directory, under: relative) }
            } else if name.hasSuffix(".js") {
                out.append(relative)
            }
        }
        return out
    }

    static func build(directory: String) throws -> String {
        guard FileManager.default.fileExists(atPath: directory + "/public/Terminal.js") else {
            throw HTTPError(.notFound, message: "xterm.js is not in \(directory): install Debian's node-xterm, or set [webserver] xterm_directory")
        }
        var modules: [String] = []
        for path in javaScriptFiles(in: directory, under: "") where !path.hasSuffix(".test.js") {
            guard let source = try? String(contentsOfFile: directory + "/" + path, encoding: .utf8) else { continue }
            let id = String(path.dropLast(3))
            // Source maps point at files the browser cannot fetch.
            let cleaned = source.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("//# sourceMappingURL=") }.joined(separator: "\n")
            modules.append("\"\(id)\": function (module, exports, require) {\n\(cleaned)\n}")
        }
        guard modules.contains(where: { $0.hasPrefix("\"public/Terminal\"") }) else {
            throw HTTPError(.notFound, message: "\(directory) does not hold xterm.js 3.x (public/Terminal.js is missing)")
        }
        return """
            // xterm.js (Debian node-xterm), joined into one script by hangard.
            (function () {
            "use strict";
            var defs = {\n\(modules.joined(separator: ",\n"))\n};
            var cache = {};
            function resolve(from, name) {
              var parts = from.split("/"); parts.pop();
              name.replace(/\\.js$/, "").split("/").forEach(function (p) { if (p === "..") parts.pop(); else if (p !== ".") parts.push(p); });
              var id = parts.join("/");
              return defs[id] ? id : id + "/index";
            }
            function load(id) {
              if (cache[id]) return cache[id].exports;
              if (!defs[id]) throw new Error("xterm bundle: no module " + id);
              var module = { exports: {} };
              cache[id] = module;
              defs[id].call(module.exports, module, module.exports, function (name) { return load(resolve(id, name)); });
              return module.exports;
            }
            var Terminal = load("public/Terminal").Terminal;
            if (defs["addons/fit/fit"]) Terminal.applyAddon(load("addons/fit/fit"));
            window.Terminal = Terminal;
            })();

            """
    }
}
