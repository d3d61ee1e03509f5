import Foundation

/// What a kernel's code is written in, from its image's `ai.backend.runtime-type` label: it
/// decides what hangar-runner keeps running for queries and what a batch's `*` (Backend.AI's
/// "the kernel's default") builds and runs.
///
/// - `python`, `r`, `nodejs`: one persistent interpreter; a query's state stays for the next.
/// - `cpp`, `c`, `java`: a query is a snippet compiled and run on its own (wrapped in a `main`
///   when it has none), as Backend.AI's compiled-language kernels answer queries.
/// - `shell` (and any other label): a query is a `/bin/sh -c` command.
public enum KernelLanguage: String, Sendable, CaseIterable {
    case python, r, nodejs, cpp, c, java, shell

    /// The language an image's runtime-type names; unknown types run as `shell`.
    public init(runtimeType: String?) {
        switch runtimeType?.lowercased() {
        case nil, "", "python": self = .python
        case "r": self = .r
        case "nodejs", "node", "javascript": self = .nodejs
        case "cpp", "c++": self = .cpp
        case "c": self = .c
        case "java": self = .java
        default: self = .shell
        }
    }

    /// hangar-runner's `--runtime`: an interpreter it keeps, or `shell`.
    public var runnerRuntime: String {
        switch self {
        case .python, .r, .nodejs: rawValue
        case .cpp, .c, .java, .shell: "shell"
        }
    }

    /// The code a query sends to the runner's `Q`: the code itself, or for a compiled language
    /// a shell program that writes it to a fresh directory, compiles it and runs it (the
    /// compiler's messages and status are the query's when it does not compile).
    public func queryProgram(_ code: String) -> String {
        switch self {
        case .python, .r, .nodejs, .shell:
            return code
        case .cpp:
            let source = code.contains("main(") ? code : "#include <bits/stdc++.h>\nusing namespace std;\nint main() {\n\(code)\nreturn 0;\n}\n"
            return Self.compileAndRun(file: "main.cpp", source: source, build: #"g++ -std=c++17 -O1 -o "$d/main" "$d/main.cpp""#, run: #""$d/main""#)
        case .c:
            let source = code.contains("main(") ? code
                : "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\nint main(void) {\n\(code)\nreturn 0;\n}\n"
            return Self.compileAndRun(file: "main.c", source: source, build: #"gcc -std=c17 -O1 -o "$d/main" "$d/main.c" -lm"#, run: #""$d/main""#)
        case .java:
            // Java 11+ runs a single source file directly (compiled in memory).
            let source = code.contains("class ") ? code
                : "public class Main {\npublic static void main(String[] args) throws Exception {\n\(code)\n}\n}\n"
            return Self.compileAndRun(file: "Main.java", source: source, build: nil, run: #"java "$d/Main.java""#)
        }
    }

    private static func compileAndRun(file: String, source: String, build: String?, run: String) -> String {
        // A quoted here-document keeps the source byte for byte; its end marker is random, so
        // no source can end it early in practice.
        let marker = "HANGAR_SOURCE_" + (0..<12).map { _ in String("abcdefghijklmnopqrstuvwxyz0123456789".randomElement()!) }.joined()
        let body = source.hasSuffix("\n") ? source : source + "\n"
        let steps = [build, run].compactMap { $0 }.joined(separator: " && ")
        return """
        d=$(mktemp -d /tmp/hangar-query.XXXXXX) || exit 1
        cat > "$d/\(file)" <<'\(marker)'
        \(body)\(marker)
        \(steps)
        status=$?
        rm -rf "$d"
        exit $status
        """
    }

    /// A batch's `build: "*"`: what builds the uploaded files, or nil when there is nothing
    /// to build. `files` are paths relative to the working directory (KernelLanguage.files).
    public func defaultBuild(files: Set<String>) -> String? {
        let sources = { (extensions: Set<String>) in files.filter { extensions.contains(Self.fileExtension($0)) }.sorted().map(Self.quoted).joined(separator: " ") }
        switch language(for: files) {
        case .cpp: return files.contains("Makefile") ? "make" : "g++ -std=c++17 -O2 -o main \(sources(["cpp", "cc", "cxx"]))"
        case .c: return files.contains("Makefile") ? "make" : "gcc -std=c17 -O2 -o main \(sources(["c"])) -lm"
        case .java: return "javac -d . \(sources(["java"]))"
        default: return nil
        }
    }

    /// A batch's `exec: "*"`: what runs the uploaded program, or why the files name none.
    public func defaultExec(files: Set<String>) -> Result<String, DefaultExecMissing> {
        let language = language(for: files)
        // main.EXT at the top, else one file of that name below, else the only file of that
        // kind anywhere.
        func main(_ names: [String], _ command: (String) -> String) -> Result<String, DefaultExecMissing> {
            if let found = names.first(where: files.contains) { return .success(command(found)) }
            let named = files.filter { names.contains(($0 as NSString).lastPathComponent) }
            if named.count == 1, let only = named.first { return .success(command(only)) }
            let kinds = Set(names.map(Self.fileExtension))
            let candidates = files.filter { kinds.contains(Self.fileExtension($0)) }
            if candidates.count == 1, let only = candidates.first { return .success(command(only)) }
            return .failure(DefaultExecMissing(language: language, expected: names[0]))
        }
        switch language {
        case .python: return main(["main.py"]) { "python3 \(Self.quoted($0))" }
        case .r: return main(["main.R", "main.r"]) { "Rscript \(Self.quoted($0))" }
        case .nodejs: return main(["main.js", "index.js"]) { "node \(Self.quoted($0))" }
        case .cpp, .c: return .success("./main")
        case .java:
            // The default package's class named after the file: Main.java, else the only source.
            return main(["Main.java"]) { "java -cp . \(Self.quoted(String(($0 as NSString).lastPathComponent.dropLast(".java".count))))" }
        case .shell:
            return .failure(DefaultExecMissing(language: .shell, expected: "main.py, main.R, main.js, *.cpp, *.c or *.java"))
        }
    }

    /// The language the uploaded files are in: this one, unless it is `shell` (then the
    /// files' extensions decide, as the official client's `run FILE` expects); C sources alone
    /// on a C++ image are C, and C++ sources on a C image are C++ (one gcc builds both).
    func language(for files: Set<String>) -> KernelLanguage {
        let extensions = Set(files.map(Self.fileExtension))
        let cpp = !extensions.isDisjoint(with: ["cpp", "cc", "cxx"])
        if self == .cpp || self == .c { return cpp ? .cpp : extensions.contains("c") ? .c : self }
        guard self == .shell else { return self }
        if extensions.contains("py") { return .python }
        if extensions.contains("R") || extensions.contains("r") { return .r }
        if extensions.contains("js") { return .nodejs }
        if cpp { return .cpp }
        if extensions.contains("c") { return .c }
        if extensions.contains("java") { return .java }
        return .shell
    }

    /// The files under a working directory, relative to it, for the defaults above: a few
    /// levels deep, hidden entries and vfolder mounts' contents aside, at most `limit`.
    public static func files(in directory: String, depth: Int = 3, limit: Int = 2000) -> Set<String> {
        var found = Set<String>()
        func walk(_ relative: String, _ level: Int) {
            let path = relative.isEmpty ? directory : directory + "/" + relative
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
            for name in names.sorted() where !name.hasPrefix(".") && found.count < limit {
                let child = relative.isEmpty ? name : relative + "/" + name
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: directory + "/" + child, isDirectory: &isDirectory) else { continue }
                if isDirectory.boolValue {
                    if level < depth { walk(child, level + 1) }
                } else {
                    found.insert(child)
                }
            }
        }
        walk("", 1)
        return found
    }

    static func fileExtension(_ path: String) -> String {
        let name = (path as NSString).lastPathComponent
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[name.index(after: dot)...])
    }

    static func quoted(_ name: String) -> String {
        "'" + name.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}

/// A batch asked for the default program (`exec: "*"`) and the uploaded files name none.
public struct DefaultExecMissing: Error, Sendable, CustomStringConvertible {
    public var language: KernelLanguage
    public var expected: String
    public var description: String {
        "batch mode needs an exec command (options.exec), or \(expected) uploaded into the session to run by default (\(language.rawValue) kernel)"
    }
}
