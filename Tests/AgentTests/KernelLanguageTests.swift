import Agent
import ClusterProtocol
import Foundation
import Testing
import TestSupport

/// The runtimes of Hangar's kernel images (Tools/images/build.sh), each in a real container
/// of its image: R and Node.js keep their state between queries like Python, take input,
/// end with the code's own status, stop on an interrupt and keep going; plots come back as
/// media; C, C++ and Java compile a query's snippet; a batch's `*` builds and runs the
/// uploaded files by language, and a build error fails with the compiler's words and status.
@Suite(.serialized) struct KernelLanguageTests {
    /// The images the recipes build (Tools/images/build.sh --image NAME).
    static let images = ["python": TestEngine.image, "r": "hangar/r:4.2-bookworm", "nodejs": "hangar/nodejs:18-bookworm",
                         "cpp": "hangar/cpp:12-bookworm", "java": "hangar/java:17-bookworm",
                         "python-pytorch": "hangar/python-pytorch:1.13-bookworm", "python-tensorflow": "hangar/python-tensorflow:2.15-bookworm"]

    struct Outcome {
        var stdout = ""
        var stderr = ""
        var media: [[String: String]] = []
        var statuses: [String] = []
        var exitCode: Int?
        var prompts: [String] = []
    }

    static func run(_ execution: KernelExecution, _ first: ExecutionRequest, inputs: [String] = [],
                    interruptAfter: Duration? = nil) async throws -> Outcome {
        var outcome = Outcome()
        var inputs = inputs
        var request = first
        var interrupt = interruptAfter
        for _ in 0..<300 {
            let result = try await execution.execute(request)
            for record in result.console {
                switch record[0] {
                case "stdout": outcome.stdout += record[1]
                case "stderr": outcome.stderr += record[1]
                case "media": outcome.media.append((try? JSONSerialization.jsonObject(with: Data(record[1].utf8))) as? [String: String] ?? [:])
                default: Issue.record("unexpected console record \(record[0])")
                }
            }
            outcome.statuses.append(result.status)
            switch result.status {
            case "finished":
                outcome.exitCode = result.exitCode
                return outcome
            case "waiting-input":
                outcome.prompts.append(result.options?.prompt ?? "")
                request = ExecutionRequest(mode: "input", code: inputs.isEmpty ? "" : inputs.removeFirst(), runId: result.runId)
            default:
                if let delay = interrupt {
                    try await Task.sleep(for: delay)
                    try await execution.interrupt()
                    interrupt = nil
                }
                request = ExecutionRequest(mode: "continue", runId: result.runId)
            }
        }
        Issue.record("the run never finished")
        return outcome
    }

    static func query(_ execution: KernelExecution, _ code: String, inputs: [String] = [], interruptAfter: Duration? = nil) async throws -> Outcome {
        try await run(execution, ExecutionRequest(mode: "query", code: code), inputs: inputs, interruptAfter: interruptAfter)
    }

    /// A kernel of the recipe's image, destroyed by `body`'s end.
    static func withKernel(_ recipe: String, _ body: (KernelRunner, String, KernelExecution) async throws -> Void) async throws {
        let image = try #require(images[recipe])
        let (runner, _, _) = try makeRunner()
        let id = "k-\(recipe)-\(UUID().uuidString.prefix(6).lowercased())"
        do {
            _ = try await runner.create(KernelRequest(kernelID: id, sessionID: "s-\(id)", image: image, slots: ["cpu": unit, "mem": 1 << 30]))
        } catch {
            Issue.record("cannot start a kernel of \(image) (build it with Tools/images/build.sh \(recipe)): \(error)")
            return
        }
        do {
            try await body(runner, id, try await runner.execution(id))
        } catch {
            _ = try? await runner.destroy(id)
            throw error
        }
        _ = try? await runner.destroy(id)
    }

    /// A media record is Backend.AI's {"type", "data"} with a PNG inside.
    static func isPNG(_ record: [String: String]) -> Bool {
        guard record["type"] == "image/png", let data = record["data"].flatMap({ Data(base64Encoded: $0) }) else { return false }
        return data.starts(with: [0x89, 0x50, 0x4E, 0x47])
    }

    static func upload(_ runner: KernelRunner, _ id: String, _ files: [String: String]) async throws {
        _ = try await runner.writeFiles(id, KernelUpload(files: files.map { .init(path: $0.key, data: Data($0.value.utf8).base64EncodedString()) }))
    }

    static func batch(_ execution: KernelExecution) async throws -> Outcome {
        try await run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(clean: "*", build: "*", exec: "*")))
    }

    @Test func rKeepsStateTakesInputEndsWithItsStatusAndSendsPlots() async throws {
        try await Self.withKernel("r") { _, _, r in
            let set = try await Self.query(r, "x <- 6 * 7\ncat('set\\n')")
            #expect(set.stdout == "set\n" && set.exitCode == 0, "\(set)")
            let shown = try await Self.query(r, "x")
            #expect(shown.stdout == "[1] 42\n", "a visible value prints as Rscript prints it, and x survived: \(shown)")
            let asked = try await Self.query(r, "n <- readline('who? '); cat('hi', n, '\\n')", inputs: ["ada"])
            #expect(asked.prompts == ["who? "] && asked.stdout == "hi ada \n", "\(asked)")
            let quit = try await Self.query(r, "quit(status = 3)")
            #expect(quit.exitCode == 3, "quit(status = 3) is the query's status: \(quit)")
            let failed = try await Self.query(r, "stop('boom')")
            #expect(failed.exitCode == 1 && failed.stderr == "Error: boom\n", "\(failed)")
            let stopped = try await Self.query(r, "repeat {}", interruptAfter: .milliseconds(500))
            #expect(stopped.exitCode == 1 && stopped.stderr.contains("Interrupted"), "\(stopped)")
            let after = try await Self.query(r, "cat(x + 1, '\\n')")
            #expect(after.stdout == "43 \n", "state outlives quit(), an error and an interrupt: \(after)")
            let plot = try await Self.query(r, "library(ggplot2)\nggplot(data.frame(a = 1:3, b = c(2, 4, 8)), aes(a, b)) + geom_line()")
            #expect(plot.exitCode == 0 && plot.media.count == 1 && plot.media.allSatisfy(Self.isPNG), "a ggplot arrives as one PNG: \(plot.stderr) \(plot.media.count)")
            let two = try await Self.query(r, "plot(1:10); hist(rnorm(100))")
            #expect(two.media.count == 2 && two.media.allSatisfy(Self.isPNG), "two plots, two media records: \(two.media.count)")
        }
    }

    @Test func nodeKeepsStateTakesInputAndEndsWithItsStatus() async throws {
        try await Self.withKernel("nodejs") { _, _, node in
            let set = try await Self.query(node, "const x = 6 * 7; console.log('set')")
            #expect(set.stdout == "set\n" && set.exitCode == 0, "\(set)")
            let shown = try await Self.query(node, "x")
            #expect(shown.stdout == "42\n", "\(shown)")
            let asked = try await Self.query(node, "const who = input('who? '); console.log('hi ' + who)", inputs: ["ada"])
            #expect(asked.prompts == ["who? "] && asked.stdout == "hi ada\n", "\(asked)")
            let exit = try await Self.query(node, "process.exit(4)")
            #expect(exit.exitCode == 4, "\(exit)")
            let failed = try await Self.query(node, "throw new TypeError('boom')")
            #expect(failed.exitCode == 1 && failed.stderr.hasPrefix("TypeError: boom\n    at <query-") && !failed.stderr.contains("node:vm"), "\(failed)")
            let stopped = try await Self.query(node, "while (true) {}", interruptAfter: .milliseconds(500))
            #expect(stopped.exitCode == 1 && stopped.stderr.contains("interrupted"), "\(stopped)")
            let awaited = try await Self.query(node, "new Promise((done) => setTimeout(() => done(x + 1), 100))")
            #expect(awaited.stdout == "43\n", "a promise is awaited and x survived: \(awaited)")
        }
    }

    @Test func pythonImageHasNumpyPandasAndSendsPlots() async throws {
        try await Self.withKernel("python") { _, _, py in
            let data = try await Self.query(py, "import numpy as np, pandas as pd\nprint(int(pd.DataFrame({'a': np.arange(10)})['a'].sum()))")
            #expect(data.stdout == "45\n", "\(data)")
            let plot = try await Self.query(py, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9]); plt.show()")
            #expect(plot.exitCode == 0 && plot.media.count == 1 && plot.media.allSatisfy(Self.isPNG), "\(plot.stderr) \(plot.media.count)")
            let none = try await Self.query(py, "print('no figure left')")
            #expect(none.media.isEmpty, "figures are sent once and closed")
        }
    }

    @Test func pyTorchMultipliesMatricesOnTheCPU() async throws {
        try await Self.withKernel("python-pytorch") { _, _, py in
            let product = try await Self.query(py, "import torch\na = torch.arange(6.).reshape(2, 3)\nprint((a @ a.T).tolist(), torch.cuda.is_available())")
            #expect(product.stdout == "[[5.0, 14.0], [14.0, 50.0]] False\n" && product.exitCode == 0, "\(product)")
        }
    }

    @Test func tensorFlowFitsASmallModelOnTheCPU() async throws {
        try await Self.withKernel("python-tensorflow") { _, _, py in
            // y = 2x - 1 learned by one dense unit; the loss must fall well below its start.
            let code = """
                import os
                os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
                import numpy as np, tensorflow as tf
                tf.random.set_seed(1)
                x = np.arange(-4, 6, dtype='float32').reshape(-1, 1)
                model = tf.keras.Sequential([tf.keras.Input(shape=(1,)), tf.keras.layers.Dense(1)])
                model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss='mse')
                history = model.fit(x, 2 * x - 1, epochs=300, verbose=0).history['loss']
                print('fit', history[-1] < history[0] / 20, round(float(model.predict(np.array([[10.0]]), verbose=0)[0][0])))
                """
            let fitted = try await Self.query(py, code)
            #expect(fitted.stdout == "fit True 19\n" && fitted.exitCode == 0, "\(fitted.stdout) \(fitted.stderr.suffix(800))")
        }
    }

    @Test func cAndCppCompileQueriesAndBatchBuildsByLanguage() async throws {
        try await Self.withKernel("cpp") { runner, id, cpp in
            let snippet = try await Self.query(cpp, "cout << 6 * 7 << endl;")
            #expect(snippet.stdout == "42\n" && snippet.exitCode == 0, "a snippet without main is wrapped in one: \(snippet)")
            let whole = try await Self.query(cpp, "#include <cstdio>\nint main() { std::puts(\"whole\"); return 5; }")
            #expect(whole.stdout == "whole\n" && whole.exitCode == 5, "\(whole)")
            let broken = try await Self.query(cpp, "int y = ;")
            #expect(broken.exitCode == 1 && broken.stderr.contains("error:"), "the compiler's message and status: \(broken)")

            try await Self.upload(runner, id, ["main.cpp": "#include <iostream>\n#include \"util.h\"\nint main() { std::cout << twice(21) << std::endl; }\n",
                                               "util.cpp": "int twice(int x) { return 2 * x; }\n", "util.h": "int twice(int x);\n"])
            let built = try await Self.batch(cpp)
            #expect(built.stdout == "42\n" && built.exitCode == 0 && built.statuses.contains("build-finished"), "every source compiled and ./main run: \(built)")
            try await Self.upload(runner, id, ["util.cpp": "int twice(int x) { return 2 * x }\n"])
            let failing = try await Self.batch(cpp)
            #expect(failing.exitCode == 1 && failing.stderr.contains("util.cpp") && failing.stderr.contains("error:"), "\(failing)")
        }
    }

    @Test func javaCompilesQueriesAndBatchRunsTheMainClass() async throws {
        try await Self.withKernel("java") { runner, id, java in
            let snippet = try await Self.query(java, "System.out.println(6 * 7);")
            #expect(snippet.stdout == "42\n" && snippet.exitCode == 0, "\(snippet)")
            let exit = try await Self.query(java, "System.exit(3);")
            #expect(exit.exitCode == 3, "\(exit)")
            try await Self.upload(runner, id, ["Main.java": "public class Main { public static void main(String[] a) { System.out.println(Helper.greet()); } }\n",
                                               "Helper.java": "class Helper { static String greet() { return \"java-batch\"; } }\n"])
            let built = try await Self.batch(java)
            #expect(built.stdout == "java-batch\n" && built.exitCode == 0, "\(built)")
        }
    }

    /// Each image runs a one-line program in its language through `hangar run`: a query, or
    /// uploaded files built and run by the image's defaults; a C++ build error is the
    /// compiler's message and status.
    @Test func everyImageRunsItsLanguageThroughHangarRun() async throws {
        let cluster = try await TestCluster(prefix: "lang")
        defer { cluster.stop() }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        func file(_ name: String, _ text: String) throws -> String {
            try FileManager.default.createDirectory(atPath: dir.path + "/" + name, withIntermediateDirectories: true)
            let path = dir.path + "/" + name + "/" + name.split(separator: "-").last!
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let cases: [(image: String, arguments: [String], stdout: String)] = [
            (Self.images["python"]!, ["-c", "print(6 * 7)"], "42\n"),
            (Self.images["r"]!, ["-c", "cat(6 * 7, '\\n')"], "42 \n"),
            (Self.images["r"]!, [try file("r-main.R", "cat('from-file', 6 * 7, '\\n')\n")], "from-file 42 \n"),
            (Self.images["nodejs"]!, ["-c", "console.log(6 * 7)"], "42\n"),
            (Self.images["nodejs"]!, [try file("js-main.js", "console.log('from-file', 6 * 7)\n")], "from-file 42\n"),
            (Self.images["cpp"]!, ["-c", "cout << 6 * 7 << endl;"], "42\n"),
            (Self.images["cpp"]!, [try file("cpp-main.cpp", "#include <iostream>\nint main() { std::cout << 6 * 7 << std::endl; }\n")], "42\n"),
            (Self.images["cpp"]!, [try file("c-prog.c", "#include <stdio.h>\nint main(void) { printf(\"c %d\\n\", 6 * 7); return 0; }\n")], "c 42\n"),
            (Self.images["java"]!, [try file("java-Main.java", "public class Main { public static void main(String[] a) { System.out.println(6 * 7); } }\n")], "42\n"),
        ]
        for c in cases {
            let out = try cluster.hangar(["run", c.image, "-q", "--rm"] + c.arguments)
            #expect(out.status == 0 && out.stdout == c.stdout, "\(c.image) \(c.arguments): \(out)")
        }
        let broken = try cluster.hangar(["run", Self.images["cpp"]!, "-q", "--rm", try file("bad-main.cpp", "int main() { return undefined_name; }\n")])
        #expect(broken.status == 1 && broken.stderr.contains("undefined_name") && broken.stderr.contains("error:"), "\(broken)")
    }

    /// An image labelled with a device minimum (a CUDA image) is refused at once, naming the
    /// label, where no agent has that device; its CPU twin runs.
    @Test func acceleratorImagesArePlacedOnlyWhereTheDeviceIs() async throws {
        let cluster = try await TestCluster(prefix: "accel")
        defer { cluster.stop() }
        let cuda = "hangar/cuda-labelled:\(UUID().uuidString.prefix(6).lowercased())"
        try await KernelSandboxTests.commitImage(cuda, labels: ["ai.backend.accelerators": "cuda", "ai.backend.resource.min.cuda.device": "1"])
        defer { Task { try? await KernelSandboxTests.removeImage(cuda) } }
        // The agent reports the new image (and its labels) with its next heartbeat.
        for _ in 0..<50 where !((try cluster.store.agent(id: cluster.agentID)?.images ?? "").contains("cuda-labelled")) {
            try await Task.sleep(for: .milliseconds(200))
        }
        let (status, body) = try await SignedAPI.json(.POST, base: cluster.base, path: "/session",
                                                      json: #"{"name": "accel-cuda", "image": "\#(cuda)", "type": "interactive"}"#,
                                                      accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let message = "\(body ?? [:])"
        #expect(status == 400 && message.contains("cuda.device") && message.contains("ai.backend.resource.min.cuda.device"), "\(status) \(message)")
        try await KernelSandboxTests.removeImage(cuda)
        let plain = try cluster.hangar(["run", Self.images["python"]!, "-q", "--rm", "-c", "print('cpu-only')"])
        #expect(plain.status == 0 && plain.stdout == "cpu-only\n", "\(plain)")
    }

    @Test func defaultsFollowTheLanguageAndTheUploadedFiles() throws {
        #expect(KernelLanguage(runtimeType: "r").runnerRuntime == "r")
        #expect(KernelLanguage(runtimeType: "cpp").runnerRuntime == "shell")
        #expect(KernelLanguage(runtimeType: "julia") == .shell)
        #expect(KernelLanguage(runtimeType: nil) == .python)
        // An image without a known language: the files decide (the official client's `run FILE`).
        #expect(try KernelLanguage.shell.defaultExec(files: ["main.py"]).get() == "python3 'main.py'")
        #expect(try KernelLanguage.shell.defaultExec(files: ["analysis.R"]).get() == "Rscript 'analysis.R'")
        #expect(try KernelLanguage.nodejs.defaultExec(files: ["app.js"]).get() == "node 'app.js'")
        #expect(KernelLanguage.shell.defaultBuild(files: ["a.cpp", "b.cpp"])?.hasPrefix("g++") == true)
        #expect(KernelLanguage.cpp.defaultBuild(files: ["Makefile", "a.cpp"]) == "make")
        #expect(KernelLanguage.python.defaultBuild(files: ["main.py"]) == nil)
        #expect(KernelLanguage.cpp.defaultBuild(files: ["prog.c"])?.hasPrefix("gcc") == true, "C sources on the C++ image are C")
        // Files uploaded with a directory (the official client's `run langs/Main.java`).
        #expect(KernelLanguage.java.defaultBuild(files: ["langs/Main.java", "langs/Util.java"]) == "javac -d . 'langs/Main.java' 'langs/Util.java'")
        #expect(try KernelLanguage.java.defaultExec(files: ["langs/Main.java", "langs/Util.java"]).get() == "java -cp . 'Main'")
        #expect(try KernelLanguage.nodejs.defaultExec(files: ["src/app.js"]).get() == "node 'src/app.js'")
        if case .failure(let missing) = KernelLanguage.r.defaultExec(files: ["a.R", "b.R"]) {
            #expect(missing.description.contains("main.R"), "\(missing)")
        } else {
            Issue.record("two R files and no main.R name no program")
        }
    }
}
