import Foundation
import PackagePlugin

/// Builds `hangar-hook.so` (Host/CPUCountHook/hook.c) with the system C compiler, as a resource
/// of the Agent target. A SwiftPM library product would link the Swift runtime, which user
/// images do not have; this one links glibc only.
@main
struct BuildCPUCountHook: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let source = context.package.directoryURL.appending(path: "Host/CPUCountHook/hook.c")
        let output = context.pluginWorkDirectoryURL.appending(path: "hangar-hook.so")
        return [.buildCommand(displayName: "Building the CPU-count hook (hangar-hook.so)",
                              executable: URL(fileURLWithPath: "/usr/bin/cc"),
                              arguments: ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
                                          "-o", output.path, source.path],
                              inputFiles: [source], outputFiles: [output])]
    }
}
