// swift-tools-version:6.1
// Hangar: a container-based computing cluster platform for AI and HPC.
// Layout: PluginAPI/ (the C ABI, headers only), Host/ (the core), Plugins/ (one
// dynamic library per plugin), Tools/ (CLIs, benchmarks), Tests/.
import PackageDescription

/// C plugins export only their entry symbol; everything else stays private to the library.
let pluginCSettings: [CSetting] = [.unsafeFlags(["-fvisibility=hidden", "-std=c11", "-Wall", "-Wextra"]), .define("_GNU_SOURCE")]

/// One shared-library product and C target per bundled plugin.
struct BundledPlugin {
    let product: String
    let target: String
    let path: String
    var linkerSettings: [LinkerSetting] = []
}

let bundledPlugins: [BundledPlugin] = [
    BundledPlugin(product: "hangar-accel-mock", target: "MockAccelerator", path: "Plugins/Accelerators/Mock"),
    BundledPlugin(product: "hangar-accel-cuda", target: "CUDAAccelerator", path: "Plugins/Accelerators/CUDA",
                  linkerSettings: [.linkedLibrary("dl")]),
    BundledPlugin(product: "hangar-storage-vfs", target: "VFSStorage", path: "Plugins/Storage/VFS"),
    BundledPlugin(product: "hangar-scheduler-fifo", target: "FIFOScheduler", path: "Plugins/Schedulers/FIFO"),
    BundledPlugin(product: "hangar-selector-concentrated", target: "ConcentratedSelector",
                  path: "Plugins/AgentSelectors/Concentrated"),
]

let package = Package(
    name: "Hangar",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hangar-plugin", targets: ["HangarPluginCLI"]),
        .executable(name: "hangar-bench", targets: ["HangarBench"]),
        .library(name: "PluginHost", targets: ["PluginHost"]),
    ] + bundledPlugins.map { .library(name: $0.product, type: .dynamic, targets: [$0.target]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // The ABI: C headers only. Plugins and the host compile against it; nothing links it.
        .target(name: "PluginAPI", path: "PluginAPI"),
        .systemLibrary(name: "CLtdl", path: "Host/CLtdl"),
        .target(
            name: "PluginHost",
            dependencies: [
                "PluginAPI", "CLtdl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            path: "Host/PluginHost"
        ),
        .target(
            name: "PluginConformance",
            dependencies: ["PluginHost", "PluginAPI"],
            path: "Host/PluginConformance"
        ),
        .executableTarget(
            name: "HangarPluginCLI",
            dependencies: [
                "PluginHost", "PluginConformance",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tools/hangar-plugin"
        ),
        .executableTarget(
            name: "HangarBench",
            dependencies: ["PluginHost", "PluginAPI"],
            path: "Tools/hangar-bench"
        ),
        // Tests load plugins only as .so files next to the test runner; they never
        // depend on plugin targets (every plugin defines the same entry symbol).
        .testTarget(
            name: "PluginHostTests",
            dependencies: ["PluginHost", "PluginConformance", "PluginAPI"],
            path: "Tests/PluginHostTests"
        ),
    ] + bundledPlugins.map {
        .target(name: $0.target, dependencies: ["PluginAPI"], path: $0.path,
                publicHeadersPath: ".", cSettings: pluginCSettings, linkerSettings: $0.linkerSettings)
    }
)
