import ArgumentParser
import Foundation
import PluginHost

/// `hangar-plugin devices`: create the enabled accelerator plugins and list what they see.
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Create the accelerator plugins a config enables and list their devices and slots.")

    @OptionGroup var location: PluginLocationOptions

    @Flag(help: "Print JSON.")
    var json = false

    struct PluginDevices: Encodable {
        var plugin: String
        var info: AcceleratorInfo
        var devices: [AcceleratorDevice]
        var slots: [SlotDefinition]
        var deviceSlots: [DeviceSlotCapacity]
    }
    struct Output: Encodable {
        var plugins: [PluginDevices]
        var skipped: [String]
    }

    func run() throws {
        let config = try location.hostConfig()
        guard !config.enabled.isEmpty else {
            throw CommandFailure(description: "no plugins enabled: pass --config with a [plugins] section listing enabled = [\"...\"]")
        }
        let host = try PluginHost(config: config)
        defer { host.shutdown() }
        var output = Output(plugins: [], skipped: host.skipped.map(\.description))
        for accelerator in host.accelerators {
            output.plugins.append(PluginDevices(plugin: accelerator.name, info: accelerator.info, devices: try accelerator.devices(),
                                                slots: try accelerator.slots(), deviceSlots: try accelerator.deviceSlots()))
        }
        if json {
            try printJSON(output)
            return try failIfSkipped(output.skipped)
        }
        for p in output.plugins {
            print("\(p.plugin) (device key \(p.info.deviceKey)\(p.info.driverVersion.map { ", driver \($0)" } ?? ""))")
            if p.devices.isEmpty {
                print("  no devices\(p.info.noDeviceReason.map { ": \($0)" } ?? "")")
            } else {
                print(table(["  ID", "MODEL", "MEMORY", "UNITS", "NUMA", "LOCATION", "HEALTH"], p.devices.map { d in
                    ["  \(d.id)", d.model, "\(d.memoryBytes)", "\(d.processingUnits)", d.numaNode.map(String.init) ?? "-",
                     d.hwLocation ?? "-", d.health.description + (d.healthReason.map { " (\($0))" } ?? "")]
                }))
            }
            // ABI 1.2 facts, where the plugin reports them.
            for d in p.devices {
                let facts = [d.firmwareVersion.map { "firmware \($0)" }, d.boardID.map { "board \($0)" }, d.linkSpeed.map { "link \($0)" },
                             d.cpuAffinity.map { "near CPUs \($0)" }, d.parentDeviceID.map { "partition of \($0)" }, d.extraInfoJSON].compactMap { $0 }
                if !facts.isEmpty { print("  \(d.id): \(facts.joined(separator: ", "))") }
            }
            for s in p.slots {
                print("  slot \(s.name): \(s.type), \(s.mode), capacity \(formatAmount(s.capacity, type: s.type))\(s.exclusive ? ", exclusive" : "")")
            }
        }
        for s in output.skipped { print("skipped: \(s)") }
        try failIfSkipped(output.skipped)
    }

    /// An enabled plugin that could not be created is a failure the operator must see in the
    /// exit status, not only in the listing.
    func failIfSkipped(_ skipped: [String]) throws {
        guard !skipped.isEmpty else { return }
        FileHandle.standardError.write(Data("hangar-plugin: \(skipped.count) enabled plugin(s) were skipped; see above\n".utf8))
        throw ExitCode(1)
    }
}
