import ArgumentParser
import Foundation
import PluginHost

/// `hangar-plugin edits`: what a container gets for an allocation of a plugin's devices.
struct EditsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edits",
        abstract: "Print the container edits (devices, environment, mounts, ...) an allocation of a plugin's devices gets.",
        discussion: """
        Creates the accelerator plugin with its [plugins.config.NAME] from --config, builds an
        allocation from the --device options, and prints what container_edits (after prepare, for
        plugins that have it) emits for it, one edit per line, as the agent would apply them. The
        allocation is released again before the command exits.

          hangar-plugin edits cuda --device 0 --device 2
          hangar-plugin edits mock --config agent.toml --slot mock.shares --device 0:0.5
        """)

    @Argument(help: "An accelerator plugin name on the search path, or a library file path.")
    var plugin: String

    @Option(name: .customLong("device"), help: "A device id, with an amount after ':' (default: one unit, or the whole device for byte and unique slots). Repeatable.")
    var devices: [String] = []

    @Option(help: "The slot to allocate (default: the first slot the first device has capacity in).")
    var slot: String?

    @Option(name: .customLong("container-id"), help: "The container id the allocation is made for.")
    var containerID = "hangar-plugin-edits"

    @OptionGroup var location: PluginLocationOptions

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if devices.isEmpty { throw ValidationError("name at least one device: --device ID[:AMOUNT]") }
    }

    func run() throws {
        let hostConfig = try location.hostConfig()
        let library = try PluginCatalog.scan(hostConfig.searchPaths).resolve(plugin)
        guard library.descriptor.kind == .accelerator else {
            throw CommandFailure(description: "'\(library.descriptor.name)' is a \(library.descriptor.kind) plugin; edits are for accelerator plugins")
        }
        let accelerator = try AcceleratorPlugin(library: library, config: hostConfig.config(for: library.descriptor.name))
        defer { accelerator.instance.destroy() }
        let allocation = try buildAllocation(accelerator)
        try accelerator.prepare(allocation)
        defer { try? accelerator.release(allocation) }
        let edits = try accelerator.containerEdits(for: allocation)
        if json { return try printJSON(edits) }
        let described = allocation.entries.map { e in
            let type = (try? accelerator.slots())?.first { $0.name == e.slotName }?.type ?? .count
            return "\(formatAmount(e.amount, type: type)) of \(e.slotName) on \(e.deviceID)"
        }
        print("# \(accelerator.name): \(described.joined(separator: ", ")) (container \(containerID))")
        if edits.isEmpty { print("# no edits") }
        for line in edits.lines { print(line) }
    }

    /// The allocation the --device options describe, checked against what the plugin lists so
    /// a typo is named before the plugin is called.
    func buildAllocation(_ accelerator: AcceleratorPlugin) throws -> Allocation {
        let slots = try accelerator.slots()
        let rows = try accelerator.deviceSlots()
        let known = try accelerator.devices().map(\.id)
        var entries: [AllocationEntry] = []
        for spec in devices {
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            let id = parts[0]
            guard known.contains(id) else {
                throw CommandFailure(description: "no device '\(id)' in \(accelerator.name) (devices: \(known.joined(separator: ", ")))")
            }
            // A device without capacity (unhealthy) still gets a slot, so the plugin's own refusal is shown.
            let slotName = slot ?? rows.first { $0.deviceID == id && $0.capacity > 0 }?.slotName ?? rows.first { $0.capacity > 0 }?.slotName
                ?? slots.first?.name
            guard let slotName, let definition = slots.first(where: { $0.name == slotName }) else {
                throw CommandFailure(description: slot.map { "no slot '\($0)' in \(accelerator.name) (slots: \(slots.map(\.name).joined(separator: ", ")))" }
                    ?? "\(accelerator.name) reports no slots")
            }
            let capacity = rows.first { $0.deviceID == id && $0.slotName == slotName }?.capacity ?? 0
            let amount: Int64
            if parts.count == 2 {
                guard let parsed = parseAmount(parts[1], type: definition.type) else {
                    throw CommandFailure(description: "'\(parts[1])' is not an amount of \(slotName) (write 1, 0.5, or bytes such as 16G for byte slots)")
                }
                amount = parsed
            } else {
                let largest = rows.filter { $0.slotName == slotName }.map(\.capacity).max() ?? 0
                amount = definition.type == .count ? amountScale : (capacity > 0 ? capacity : largest)
            }
            entries.append(AllocationEntry(slotName: slotName, deviceID: id, amount: amount))
        }
        return Allocation(containerID: containerID, entries: entries)
    }
}
