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
    /// Files under `path` that are not part of the library (manual test programs).
    var exclude: [String] = []
}

let bundledPlugins: [BundledPlugin] = [
    BundledPlugin(product: "hangar-accel-mock", target: "MockAccelerator", path: "Plugins/Accelerators/Mock"),
    BundledPlugin(product: "hangar-accel-cuda", target: "CUDAAccelerator", path: "Plugins/Accelerators/CUDA",
                  linkerSettings: [.linkedLibrary("dl")]),
    BundledPlugin(product: "hangar-accel-rocm", target: "ROCmAccelerator", path: "Plugins/Accelerators/ROCm", linkerSettings: [.linkedLibrary("dl")]),
    BundledPlugin(product: "hangar-accel-gaudi", target: "GaudiAccelerator", path: "Plugins/Accelerators/Gaudi", linkerSettings: [.linkedLibrary("dl")]),
    BundledPlugin(product: "hangar-accel-tpu", target: "TPUAccelerator", path: "Plugins/Accelerators/TPU"),
    BundledPlugin(product: "hangar-accel-warboy", target: "WarboyAccelerator", path: "Plugins/Accelerators/FuriosaWarboy"),
    BundledPlugin(product: "hangar-accel-rngd", target: "RNGDAccelerator", path: "Plugins/Accelerators/FuriosaRNGD", linkerSettings: [.linkedLibrary("dl")]),
    BundledPlugin(product: "hangar-accel-tenstorrent", target: "TenstorrentAccelerator", path: "Plugins/Accelerators/Tenstorrent"),
    BundledPlugin(product: "hangar-accel-ipu", target: "IPUAccelerator", path: "Plugins/Accelerators/IPU"),
    BundledPlugin(product: "hangar-accel-atom", target: "AtomAccelerator", path: "Plugins/Accelerators/Rebellions"),
    BundledPlugin(product: "hangar-accel-hyperaccel-lpu", target: "HyperAccelLPUAccelerator", path: "Plugins/Accelerators/HyperAccel"),
    BundledPlugin(product: "hangar-storage-vfs", target: "VFSStorage", path: "Plugins/Storage/VFS"),
    BundledPlugin(product: "hangar-storage-btrfs", target: "BtrfsStorage", path: "Plugins/Storage/Btrfs", exclude: ["test"]),
    BundledPlugin(product: "hangar-scheduler-fifo", target: "FIFOScheduler", path: "Plugins/Schedulers/FIFO"),
    BundledPlugin(product: "hangar-scheduler-lifo", target: "LIFOScheduler", path: "Plugins/Schedulers/LIFO"),
    BundledPlugin(product: "hangar-scheduler-drf", target: "DRFScheduler", path: "Plugins/Schedulers/DRF"),
    BundledPlugin(product: "hangar-scheduler-fairshare", target: "FairShareScheduler", path: "Plugins/Schedulers/FairShare"),
    BundledPlugin(product: "hangar-selector-concentrated", target: "ConcentratedSelector",
                  path: "Plugins/AgentSelectors/Concentrated"),
    BundledPlugin(product: "hangar-selector-dispersed", target: "DispersedSelector", path: "Plugins/AgentSelectors/Dispersed"),
    BundledPlugin(product: "hangar-selector-roundrobin", target: "RoundRobinSelector", path: "Plugins/AgentSelectors/RoundRobin"),
]

let package = Package(
    name: "Hangar",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hangar-plugin", targets: ["HangarPluginCLI"]),
        .executable(name: "hangar-bench", targets: ["HangarBench"]),
        .executable(name: "hangard", targets: ["hangard"]),
        .executable(name: "hangar-runner", targets: ["HangarRunner"]),
        .executable(name: "hangar", targets: ["HangarCLI"]),
        .library(name: "PluginHost", targets: ["PluginHost"]),
    ] + bundledPlugins.map { .library(name: $0.product, type: .dynamic, targets: [$0.target]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/GraphQLSwift/Graphiti", from: "3.1.0"),
        .package(url: "https://github.com/GraphQLSwift/GraphQL", from: "4.3.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // The ABI: C headers only. Plugins and the host compile against it; nothing links it.
        .target(name: "PluginAPI", path: "PluginAPI"),
        // Header-only plugin plumbing (last_error, config, listings, allocation checks) that
        // bundled plugins and the vendor template build on; optional for outside plugins.
        .target(name: "PluginSupport", dependencies: ["PluginAPI"], path: "Plugins/Support", exclude: ["README.md"]),
        // The in-container runner: C, linked statically so it runs in any image (the Swift
        // driver links; nothing in it uses the Swift runtime).
        .executableTarget(
            name: "HangarRunner",
            path: "Host/Runner",
            exclude: ["README.md", "python_driver.py"],
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-std=c11", "-O2", "-Wall", "-Wextra"])],
            // libseccomp.a (Debian's libseccomp-dev): the jail must work in any image.
            linkerSettings: [.linkedLibrary("seccomp"), .unsafeFlags(["-static-executable"])]
        ),
        .systemLibrary(name: "CLtdl", path: "Host/CLtdl"),
        // TOML config files: typed keys, errors naming file, key and expected type.
        .target(
            name: "ConfigFile",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")],
            path: "Host/ConfigFile"
        ),
        .target(
            name: "PluginHost",
            dependencies: [
                "PluginAPI", "CLtdl", "ConfigFile",
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
        .systemLibrary(name: "CSQLite", path: "Host/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibpq", path: "Host/CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // Shared manager <-> agent contract (messages, resource slots).
        .target(name: "ClusterProtocol", path: "Host/ClusterProtocol"),
        // WebSocket byte streams: masking a word at a time, the servers' unmasking extension, and
        // the client app streams and agent tunnels use.
        .target(
            name: "StreamTunnel",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Host/StreamTunnel"
        ),
        // Password hashing, key generation, Backend.AI request signing.
        .target(
            name: "Identity",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Host/Identity"
        ),
        // Durable state on SQLite or PostgreSQL.
        .target(
            name: "StateStore",
            dependencies: ["CSQLite", "CLibpq", "ClusterProtocol", "Identity"],
            path: "Host/StateStore"
        ),
        .systemLibrary(name: "CNuma", path: "Host/CNuma", providers: [.apt(["libnuma-dev"])]),
        // Builds the CPU-count hook (Host/CPUCountHook/hook.c) with cc, glibc only, as a
        // resource next to the agent: a SwiftPM library would link the Swift runtime.
        .plugin(name: "BuildCPUCountHook", capability: .buildTool(), path: "Tools/BuildCPUCountHook"),
        .systemLibrary(name: "CSeccomp", path: "Host/CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CZlib", path: "Host/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Kernel sandbox policies: the default, TOML layers, syscall names checked with libseccomp.
        .target(name: "Sandbox", dependencies: ["CSeccomp", "ConfigFile"], path: "Host/Sandbox"),
        // The agent's resource model: devices, slots, NUMA-aware allocation maps.
        .target(name: "AgentResources", dependencies: ["CNuma", "ClusterProtocol"], path: "Host/AgentResources"),
        // Docker Engine API over its unix socket (Docker or podman's compatible service).
        .target(
            name: "ContainerEngine",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Host/ContainerEngine"
        ),
        // The container engine's test double: containers in memory (lifecycle, exits, OOM,
        // events, adoption), so the agent's logic is tested without an engine.
        .target(name: "InMemoryEngine", dependencies: ["ContainerEngine"], path: "Host/InMemoryEngine"),
        // The agent role: kernels in containers, resources, manager link.
        .target(
            name: "Agent",
            dependencies: [
                "Sandbox", "StreamTunnel",
                "AgentResources", "ContainerEngine", "PluginHost", "ClusterProtocol", "ConfigFile",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Host/Agent",
            plugins: ["BuildCPUCountHook"]
        ),
        .target(
            name: "Manager",
            dependencies: [
                "Sandbox", "StreamTunnel",
                "StateStore", "Identity", "ClusterProtocol", "ConfigFile", "PluginHost",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Graphiti", package: "Graphiti"),
                .product(name: "GraphQL", package: "GraphQL"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            path: "Host/Manager"
        ),
        // The storage proxy role: volumes through storage plugins, vfolder file operations
        // confined to their folder, tus uploads and ranged downloads behind signed tokens.
        .target(
            name: "StorageProxy",
            dependencies: [
                "ClusterProtocol",
                "PluginHost", "ConfigFile",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            path: "Host/StorageProxy"
        ),
        // The webserver role: the web UI (embedded, no build step) and login sessions; it
        // forwards API calls to the manager signed with the logged-in user's keypair.
        .target(
            name: "WebServer",
            dependencies: [
                "ClusterProtocol", "Identity", "ConfigFile", "CZlib", "StreamTunnel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Host/WebServer",
            resources: [.embedInCode("UI")]
        ),
        .executableTarget(
            name: "hangard",
            dependencies: [
                "Manager", "StateStore", "Agent", "PluginHost", "ConfigFile", "Identity", "ContainerEngine", "StorageProxy", "WebServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Host/hangard"
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
        // The `hangar` client: run code, manage sessions.
        .executableTarget(
            name: "HangarCLI",
            dependencies: [
                "Identity", "ConfigFile", "ClusterProtocol", "StreamTunnel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tools/hangar"
        ),
        .executableTarget(
            name: "HangarBench",
            dependencies: ["PluginHost", "PluginAPI", "Manager", "StateStore", "ClusterProtocol"],
            path: "Tools/hangar-bench"
        ),
        // What every test target shares: where the products and fixtures are, temporary
        // folders, running commands, free ports, building C fixtures, the fake vendor machines.
        .target(
            name: "TestSupport",
            dependencies: [
                "PluginHost", "ConfigFile", "StateStore", "ClusterProtocol", "Identity",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/TestSupport"
        ),
        // Tests load plugins only as .so files next to the test runner; they never
        // depend on plugin targets (every plugin defines the same entry symbol).
        .testTarget(
            name: "PluginHostTests",
            dependencies: ["PluginHost", "PluginConformance", "PluginAPI", "AgentResources", "TestSupport"],
            path: "Tests/PluginHostTests"
        ),
        .testTarget(
            name: "AgentResourcesTests",
            dependencies: ["AgentResources", "TestSupport"],
            path: "Tests/AgentResourcesTests"
        ),
        .testTarget(
            name: "SandboxTests",
            dependencies: ["Sandbox", "ConfigFile", "TestSupport"],
            path: "Tests/SandboxTests"
        ),
        .testTarget(
            name: "ConfigFileTests",
            dependencies: ["ConfigFile", "TestSupport"],
            path: "Tests/ConfigFileTests"
        ),
        .testTarget(
            name: "IdentityTests",
            dependencies: ["Identity", "TestSupport"],
            path: "Tests/IdentityTests",
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "StreamTunnelTests",
            dependencies: [
                "StreamTunnel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Tests/StreamTunnelTests"
        ),
        .testTarget(
            name: "ClusterProtocolTests",
            dependencies: ["ClusterProtocol", "TestSupport"],
            path: "Tests/ClusterProtocolTests",
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "ContainerEngineTests",
            dependencies: ["ContainerEngine", "InMemoryEngine", "TestSupport"],
            path: "Tests/ContainerEngineTests"
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "AgentResources", "ContainerEngine", "InMemoryEngine", "PluginHost", "Identity", "StateStore", "ClusterProtocol", "TestSupport",
                "ConfigFile", "Sandbox",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/AgentTests"
        ),
        .testTarget(
            name: "StorageProxyTests",
            dependencies: [
                "StorageProxy", "ClusterProtocol", "PluginHost", "ConfigFile", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/StorageProxyTests"
        ),
        .testTarget(
            name: "StateStoreTests",
            dependencies: ["StateStore", "ClusterProtocol", "Identity", "TestSupport"],
            path: "Tests/StateStoreTests"
        ),
        .testTarget(
            name: "ManagerTests",
            dependencies: [
                "Manager", "StateStore", "Identity", "ClusterProtocol", "ConfigFile", "PluginHost", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/ManagerTests"
        ),
        .testTarget(
            name: "WebServerTests",
            dependencies: [
                "WebServer", "ConfigFile", "Manager", "StateStore", "Identity", "ClusterProtocol", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/WebServerTests"
        ),
    ] + bundledPlugins.map {
        .target(name: $0.target, dependencies: ["PluginAPI", "PluginSupport"], path: $0.path, exclude: $0.exclude,
                publicHeadersPath: ".", cSettings: pluginCSettings, linkerSettings: $0.linkerSettings)
    }
)
