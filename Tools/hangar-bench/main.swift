// hangar-bench: benchmarks, not tests. Run them on a quiet machine with a release build
// (`swift build -c release`, then run from that bin folder, where the bundled plugins are).
//
//   hangar-bench [abi] [--iterations N] [--plugin-dir DIR]
//       what calling a plugin through the host's ABI wrapper costs vs a direct Swift call
//   hangar-bench scheduler --snapshot snapshot.json.gz [--expected expected.json.gz] [--plugin-dir DIR]
//       scheduler and selector plugins on the shared Backend.AI snapshot: pick and placement
//       times, a 1,000-session pass, and agreement with Backend.AI's own decisions
//   hangar-bench pass [--sessions N] [--agents N] [--database postgresql://...]
//       the manager's whole scheduling pass (database included) over N pending sessions
//   hangar-bench simulate [--trace FILE | --synthetic N] [--agents N] [--scheduler NAME] ... (SimulateBench.swift)
//       a job trace replayed through the plugins and the manager's pass on a virtual clock
import Foundation
import PluginAPI
import PluginHost

struct Options {
    var mode = "abi"
    var iterations = 5_000_000
    var pluginDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    var snapshot: String?
    var expected: String?
    var sessions = 10_000
    var agents = 1_000
    var database: String?

    init(_ args: [String]) {
        var it = args.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "abi", "scheduler", "pass": mode = arg
            case "--sessions": sessions = it.next().flatMap(Int.init) ?? sessions
            case "--agents": agents = it.next().flatMap(Int.init) ?? agents
            case "--database": database = it.next()
            case "--iterations": iterations = it.next().flatMap(Int.init) ?? iterations
            case "--plugin-dir": pluginDir = it.next() ?? pluginDir
            case "--snapshot": snapshot = it.next()
            case "--expected": expected = it.next()
            default:
                FileHandle.standardError.write(Data("usage: hangar-bench [abi] [--iterations N] [--plugin-dir DIR] | scheduler --snapshot F [--expected F]\n".utf8))
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

/// Times `body(i)` for i in 0..<iterations. Bodies alternate between two inputs by `i` so
/// the optimiser cannot hoist a pure call out of the loop.
func measure(_ label: String, iterations: Int, _ body: (Int) throws -> Int?) rethrows -> Double {
    // Warm up caches and the branch predictor before timing.
    var sink = 0
    for i in 0..<(iterations / 10) { sink &+= try body(i) ?? 0 }
    let start = DispatchTime.now().uptimeNanoseconds
    for i in 0..<iterations { sink &+= try body(i) ?? 0 }
    let elapsed = DispatchTime.now().uptimeNanoseconds - start
    let perCall = Double(elapsed) / Double(iterations)
    print("\(label.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%8.2f", perCall)) ns/call  (checksum \(sink))")
    return perCall
}

if CommandLine.arguments.dropFirst().first == "simulate" {
    let defaultDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    let args = Array(CommandLine.arguments.dropFirst(2))
    let dir = args.firstIndex(of: "--plugin-dir").flatMap { args.indices.contains($0 + 1) ? args[$0 + 1] : nil } ?? defaultDir
    do {
        try runSimulateBench(args, pluginDir: dir)
    } catch {
        FileHandle.standardError.write(Data("simulate: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
let options = Options(CommandLine.arguments)
if options.mode == "scheduler" {
    try runSchedulerBench(options)
    exit(0)
}
if options.mode == "pass" {
    try runPassBench(options)
    exit(0)
}
let library = try PluginLoader.open(path: options.pluginDir + "/libhangar-scheduler-fifo.so")
let slots = SchedulingSlots(names: ["cpu", "mem", "cuda.device"], types: [.count, .bytes, .count])
let sessions = (0..<4).map { i in
    PendingSession(id: "session-\(i)", ownerIndex: 0, priority: 0, createdAtMicros: 1_700_000_000_000_000 + Int64(4 - i),
                   requested: [amountScale, 1 << 30, 0])
}
let variants = [sessions, sessions.reversed()]
let inputs = variants.map {
    SchedulerInput(slots: slots, total: [64 * amountScale, 1 << 38, 8 * amountScale],
                   free: [32 * amountScale, 1 << 37, 4 * amountScale], sessions: $0,
                   owners: [SchedulingOwner(accessKey: "AKIABENCH", occupied: [0, 0, 0])])
}
let plugin = try SchedulerPlugin(library: library)
let table = SchedulerTable(library.functions).raw
let handle = try plugin.instance.withHandle("pick_next") { $0 }

print("one pick_next over \(sessions.count) pending sessions, \(options.iterations) iterations, \(library.descriptor.isThreadSafe ? "thread-safe plugin (shared lock)" : "serialised plugin (mutex)")")
let direct = measure("direct Swift call", iterations: options.iterations) { i in swiftPickNext(variants[i & 1]) }
let raw = measure("raw C function pointer (no host wrapper)", iterations: options.iterations) { i in
    var index = 0
    return table.pick_next!(handle, inputs[i & 1].raw, &index) == HANGAR_OK ? index : nil
}
let wrapped = try measure("SchedulerPlugin.pickNext (host wrapper)", iterations: options.iterations) { i in try plugin.pickNext(inputs[i & 1]) }
print(String(format: "host wrapper overhead vs direct Swift: %.2f ns/call; vs raw C call: %.2f ns/call", wrapped - direct, wrapped - raw))
plugin.instance.destroy()

// The same comparison for a plugin the host serialises (a mutex instead of a shared lock):
// get_info on the mock accelerator, which only fills a struct.
let mockLibrary = try PluginLoader.open(path: options.pluginDir + "/libhangar-accel-mock.so")
let mock = try PluginInstance(library: mockLibrary)
let accel = AcceleratorTable(mockLibrary.functions).raw
let mockHandle = try mock.withHandle("get_info") { $0 }
print("\nget_info on the mock accelerator, \(mockLibrary.descriptor.isThreadSafe ? "thread-safe" : "serialised plugin (mutex)")")
let rawInfo = measure("raw C function pointer (no host wrapper)", iterations: options.iterations) { _ in
    var info = hangar_accel_info()
    info.struct_size = UInt32(MemoryLayout<hangar_accel_info>.size)
    return accel.get_info!(mockHandle, &info) == HANGAR_OK ? 1 : nil
}
let wrappedInfo = try measure("PluginInstance.invoke (host wrapper)", iterations: options.iterations) { _ in
    var info = hangar_accel_info()
    info.struct_size = UInt32(MemoryLayout<hangar_accel_info>.size)
    try mock.invoke("get_info") { h in accel.get_info!(h, &info) }
    return 1
}
print(String(format: "host wrapper overhead vs raw C call: %.2f ns/call", wrappedInfo - rawInfo))
mock.destroy()
