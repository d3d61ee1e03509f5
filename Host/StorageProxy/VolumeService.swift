import ClusterProtocol
import Foundation
import HTTPTypes
import PluginHost

/// The volumes of one storage proxy: a storage plugin instance per configured volume, and
/// how a folder on one is found. What the routes resolve every call through.
public final class VolumeService: Sendable {
    /// The volumes by name.
    public let all: [String: StorageVolume]
    /// Where the volumes' storage plugins come from.
    let plugins: PluginHost

    /// Creates one plugin instance per configured volume.
    /// - Throws: `PluginError` naming the volume's plugin and why it did not start; the
    ///   instances made before it are released.
    public init(config: StorageProxyConfig, plugins: PluginHost) throws {
        self.plugins = plugins
        var volumes: [String: StorageVolume] = [:]
        for v in config.volumes {
            let plugin: StoragePlugin
            do {
                plugin = try plugins.makeStorage(v.backend, config: v.options)
            } catch {
                for made in volumes.values { plugins.release(made.plugin.instance) }
                throw error
            }
            volumes[v.name] = StorageVolume(name: v.name, backend: v.backend, plugin: plugin)
        }
        all = volumes
    }

    /// Releases every volume's plugin instance.
    public func shutdown() {
        for v in all.values { plugins.release(v.plugin.instance) }
    }

    /// The volume called `name`; a 404 naming the volumes there are otherwise.
    func volume(_ name: String) throws -> StorageVolume {
        guard let v = all[name] else {
            throw StorageProxyError(.notFound, "no volume '\(name)' on this storage proxy (volumes: \(all.keys.sorted().joined(separator: ", ")))")
        }
        return v
    }

    /// Folder ids are what the manager makes (hex UUIDs); anything else is refused before
    /// it reaches a plugin or a path.
    static func checkFolderID(_ id: String) throws {
        guard (1...64).contains(id.count), id.allSatisfy({ ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "_" }) else {
            throw StorageProxyError(.badRequest, "folder id '\(FolderPathError.printable(id))' must be 1-64 of [0-9a-z_-]")
        }
    }

    /// The file operations confined to one existing folder of a volume.
    func fileSystem(_ volume: StorageVolume, _ folder: String) throws -> FolderFileSystem {
        try Self.checkFolderID(folder)
        let root: String
        do throws(PluginError) {
            root = try volume.plugin.folderPath(folder)
        } catch {
            throw StorageProxyError.from(error)
        }
        var info = stat()
        guard lstat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw StorageProxyError(.notFound, "folder '\(folder)' does not exist on volume '\(volume.name)'")
        }
        return FolderFileSystem(root: root)
    }
}
