// hangar-bench: measures what calling a plugin through the host's ABI wrapper costs compared
// with a direct Swift call doing the same work. Not a test: run it on a quiet machine with a
// release build (`swift build -c release --product hangar-bench`, then run it from that bin
// folder, where the bundled plugins are).
//
//   hangar-bench [--iterations N] [--plugin-dir DIR]
import Foundation
import PluginAPI
import PluginHost

struct Options {
    var iterations = 5_000_000
    var pluginDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path

    init(_ args: [String]) {
        var it = args.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "--iterations": iterations = it.next().flatMap(Int.init) ?? iterations
            case "--plugin-dir": pluginDir = it.next() ?? pluginDir
            default:
                FileHandle.standardError.write(Data("usage: hangar-bench [--iterations N] [--plugin-dir DIR]\n".utf8))
                exit(2)
            }
        }
    }
}

/// The same decision the fifo plugin makes, in Swift: highest priority, then oldest.
@inline(never)
func swiftPickNext(_ sessions: [PendingSession]) -> Int? {
    var best: Int?
    for (i, s) in sessions.enumerated() {
        guard let b = best else { best = i; continue }
        let o = sessions[b]
        if s.priority > o.priority || (s.priority == o.priority && s.createdAtMicros < o.createdAtMicros) { best = i }
    }
    return best
}

func measure(_ label: String, iterations: Int, _ body: () throws -> Int?) rethrows -> Double {
    // Warm up caches and the branch predictor before timing.
    var sink = 0
    for _ in 0..<(iterations / 10) { sink &+= try body() ?? 0 }
    let start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<iterations { sink &+= try body() ?? 0 }
    let elapsed = DispatchTime.now().uptimeNanoseconds - start
    let perCall = Double(elapsed) / Double(iterations)
    print("\(label.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%8.2f", perCall)) ns/call  (checksum \(sink))")
    return perCall
}

let options = Options(CommandLine.arguments)
let library = try PluginLoader.open(path: options.pluginDir + "/libhangar-scheduler-fifo.so")
let slots = SchedulingSlots(names: ["cpu", "mem", "cuda.device"], types: [.count, .bytes, .count])
let sessions = (0..<4).map { i in
    PendingSession(id: "session-\(i)", ownerIndex: 0, priority: 0, createdAtMicros: 1_700_000_000_000_000 + Int64(4 - i),
                   requested: [amountScale, 1 << 30, 0])
}
let input = SchedulerInput(slots: slots, total: [64 * amountScale, 1 << 38, 8 * amountScale],
                           free: [32 * amountScale, 1 << 37, 4 * amountScale], sessions: sessions,
                           owners: [SchedulingOwner(accessKey: "AKIABENCH", occupied: [0, 0, 0])])
let plugin = try SchedulerPlugin(library: library)
let table = SchedulerTable(library.functions).raw
let handle = try plugin.instance.withHandle("pick_next") { $0 }

print("one pick_next over \(sessions.count) pending sessions, \(options.iterations) iterations, \(library.descriptor.isThreadSafe ? "thread-safe plugin (shared lock)" : "serialised plugin (mutex)")")
let direct = measure("direct Swift call", iterations: options.iterations) { swiftPickNext(sessions) }
let raw = measure("raw C function pointer (no host wrapper)", iterations: options.iterations) {
    var index = 0
    return table.pick_next!(handle, input.raw, &index) == HANGAR_OK ? index : nil
}
let wrapped = try measure("SchedulerPlugin.pickNext (host wrapper)", iterations: options.iterations) { try plugin.pickNext(input) }
print(String(format: "host wrapper overhead vs direct Swift: %.2f ns/call; vs raw C call: %.2f ns/call", wrapped - direct, wrapped - raw))
plugin.instance.destroy()
