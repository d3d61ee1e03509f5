// The manager ↔ storage-proxy contract: the proxy's manager API (under `/manager/`,
// authenticated by a shared secret) as Codable messages both sides import. Decoders ignore
// fields they do not know, so a newer manager or proxy can add one during a rolling upgrade.

/// The storage proxy's manager API: where it lives, how it is authenticated, its calls.
public enum StorageProxyAPI {
    /// The header carrying the secret shared by the manager and the proxy.
    public static let secretHeader = "X-Hangar-Storage-Secret"
    /// The prefix of every manager-API path.
    public static let prefix = "/manager/"

    /// One manager-API call; the raw value is its path below `prefix`.
    public enum Call: String, Sendable, CaseIterable {
        /// GET: the proxy's volumes (`VolumeList`).
        case volumes = "volumes"
        /// `CreateFolderRequest` → `CreatedFolder`.
        case createFolder = "folder/create"
        /// `FolderTarget` → no content.
        case deleteFolder = "folder/delete"
        /// `CloneFolderRequest` → `ClonedFolder`.
        case cloneFolder = "folder/clone"
        /// `FolderTarget` → `MountedFolder` (the host path kernels bind).
        case mountFolder = "folder/mount"
        /// `FolderTarget` → `FolderUsage`.
        case folderUsage = "folder/usage"
        /// `SetQuotaRequest` → `FolderQuota`.
        case folderQuota = "folder/quota"
        /// `MakeDirectoryRequest` → empty object.
        case makeDirectory = "folder/file/mkdir"
        /// `ListFilesRequest` → `FileList`.
        case listFiles = "folder/file/list"
        /// `RenameFileRequest` → empty object.
        case renameFile = "folder/file/rename"
        /// `MoveFileRequest` → empty object.
        case moveFile = "folder/file/move"
        /// `DeleteFilesRequest` → empty object.
        case deleteFiles = "folder/file/delete"
        /// `UploadTicketRequest` → `TransferTicket` (a tus upload URL and token).
        case requestUpload = "folder/file/upload"
        /// `DownloadTicketRequest` → `TransferTicket`.
        case requestDownload = "folder/file/download"
        /// `VolumeTarget` → `VolumePerformance` (what the volume's plugin measures).
        case volumePerformance = "volume/performance"

        /// The call's path on the proxy.
        public var path: String { StorageProxyAPI.prefix + rawValue }
    }
}

/// What a volume can do beyond plain folders.
public struct VolumeCapabilities: Codable, Sendable, Equatable {
    /// The backend enforces folder quotas itself.
    public var quota: Bool
    /// Clones are snapshots rather than copies.
    public var fastClone: Bool

    public init(quota: Bool, fastClone: Bool) {
        self.quota = quota
        self.fastClone = fastClone
    }

    enum CodingKeys: String, CodingKey {
        case quota, fastClone = "fast_clone"
    }
}

/// One volume of a storage proxy.
public struct VolumeSummary: Codable, Sendable, Equatable {
    public var name: String
    /// The storage plugin serving it ("vfs", "btrfs", ...).
    public var backend: String
    public var capabilities: VolumeCapabilities
    public var usedBytes: UInt64
    public var capacityBytes: UInt64

    public init(name: String, backend: String, capabilities: VolumeCapabilities, usedBytes: UInt64, capacityBytes: UInt64) {
        self.name = name
        self.backend = backend
        self.capabilities = capabilities
        self.usedBytes = usedBytes
        self.capacityBytes = capacityBytes
    }

    enum CodingKeys: String, CodingKey {
        case name, backend, capabilities, usedBytes = "used_bytes", capacityBytes = "capacity_bytes"
    }
}

/// The reply to `volumes`.
public struct VolumeList: Codable, Sendable, Equatable {
    public var volumes: [VolumeSummary]
    public init(volumes: [VolumeSummary]) { self.volumes = volumes }
}

/// One volume of a proxy: the body of volume-wide calls.
public struct VolumeTarget: Codable, Sendable, Equatable {
    public var volume: String
    public init(volume: String) { self.volume = volume }
}

/// One measure of a volume's performance as its storage plugin reports it.
public struct VolumeMetric: Codable, Sendable, Equatable {
    /// The plugin's key ("read_bytes", "write_ops", ...).
    public var key: String
    /// The plugin's unit ("bytes/s", "ops/s", "ms", ... or empty).
    public var unit: String
    public var value: Double
    public init(key: String, unit: String, value: Double) {
        self.key = key
        self.unit = unit
        self.value = value
    }
}

/// The reply to `volumePerformance`: empty when the volume's plugin measures nothing.
public struct VolumePerformance: Codable, Sendable, Equatable {
    public var volume: String
    public var metrics: [VolumeMetric]
    public init(volume: String, metrics: [VolumeMetric]) {
        self.volume = volume
        self.metrics = metrics
    }
}

/// One folder on one volume: the body of delete, mount and usage calls.
public struct FolderTarget: Codable, Sendable, Equatable {
    public var volume: String
    /// The folder's id (32 hex digits), which is also its directory name.
    public var folder: String
    public init(volume: String, folder: String) {
        self.volume = volume
        self.folder = folder
    }
}

/// Creates a folder, optionally with a quota in bytes (0 or absent: none).
public struct CreateFolderRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var quota: UInt64?
    public init(volume: String, folder: String, quota: UInt64?) {
        self.volume = volume
        self.folder = folder
        self.quota = quota
    }
}

/// The reply to `createFolder`.
public struct CreatedFolder: Codable, Sendable, Equatable {
    public var folder: String
    /// Where the folder lives on the proxy's host.
    public var path: String
    public init(folder: String, path: String) {
        self.folder = folder
        self.path = path
    }
}

/// Clones `source` into a new folder `target` on the same volume.
public struct CloneFolderRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var source: String
    public var target: String
    public init(volume: String, source: String, target: String) {
        self.volume = volume
        self.source = source
        self.target = target
    }
}

/// The reply to `cloneFolder`.
public struct ClonedFolder: Codable, Sendable, Equatable {
    public var folder: String
    public init(folder: String) { self.folder = folder }
}

/// The reply to `mountFolder`: the host path a kernel bind-mounts.
public struct MountedFolder: Codable, Sendable, Equatable {
    public var path: String
    public init(path: String) { self.path = path }
}

/// The reply to `folderUsage`.
public struct FolderUsage: Codable, Sendable, Equatable {
    public var usedBytes: UInt64
    /// -1 when the backend does not count files.
    public var fileCount: Int64
    /// The folder's quota in bytes (the volume's capacity when it has none).
    public var quota: UInt64
    public init(usedBytes: UInt64, fileCount: Int64, quota: UInt64) {
        self.usedBytes = usedBytes
        self.fileCount = fileCount
        self.quota = quota
    }

    enum CodingKeys: String, CodingKey {
        case usedBytes = "used_bytes", fileCount = "file_count", quota
    }
}

/// Sets a folder's quota (absent: only read it).
public struct SetQuotaRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var quota: UInt64?
    public init(volume: String, folder: String, quota: UInt64?) {
        self.volume = volume
        self.folder = folder
        self.quota = quota
    }
}

/// The reply to `folderQuota`.
public struct FolderQuota: Codable, Sendable, Equatable {
    public var quota: UInt64
    public init(quota: UInt64) { self.quota = quota }
}

/// Makes a directory inside a folder.
public struct MakeDirectoryRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    /// Relative to the folder's root.
    public var path: String
    public var parents: Bool?
    public var existOK: Bool?
    public init(volume: String, folder: String, path: String, parents: Bool? = nil, existOK: Bool? = nil) {
        self.volume = volume
        self.folder = folder
        self.path = path
        self.parents = parents
        self.existOK = existOK
    }

    enum CodingKeys: String, CodingKey {
        case volume, folder, path, parents, existOK = "exist_ok"
    }
}

/// Lists a directory inside a folder (absent path: the root).
public struct ListFilesRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var path: String?
    public init(volume: String, folder: String, path: String? = nil) {
        self.volume = volume
        self.folder = folder
        self.path = path
    }
}

/// One directory entry, as `vfolder ls` shows it.
public struct FolderEntry: Codable, Sendable, Equatable {
    public var name: String
    /// "file", "directory", "symlink" or "other".
    public var type: String
    public var size: Int64
    /// `ls -l` style, e.g. "-rw-r--r--".
    public var mode: String
    public var mtime: Double
    public var atime: Double
    public var ctime: Double

    public init(name: String, type: String, size: Int64, mode: String, mtime: Double, atime: Double, ctime: Double) {
        self.name = name
        self.type = type
        self.size = size
        self.mode = mode
        self.mtime = mtime
        self.atime = atime
        self.ctime = ctime
    }
}

/// The reply to `listFiles`.
public struct FileList: Codable, Sendable, Equatable {
    public var items: [FolderEntry]
    public init(items: [FolderEntry]) { self.items = items }
}

/// Renames one entry in place.
public struct RenameFileRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var path: String
    public var newName: String
    public init(volume: String, folder: String, path: String, newName: String) {
        self.volume = volume
        self.folder = folder
        self.path = path
        self.newName = newName
    }

    enum CodingKeys: String, CodingKey {
        case volume, folder, path, newName = "new_name"
    }
}

/// Moves one entry within the folder.
public struct MoveFileRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var source: String
    public var destination: String
    public init(volume: String, folder: String, source: String, destination: String) {
        self.volume = volume
        self.folder = folder
        self.source = source
        self.destination = destination
    }
}

/// Deletes entries (directories only with `recursive`).
public struct DeleteFilesRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var paths: [String]
    public var recursive: Bool?
    public init(volume: String, folder: String, paths: [String], recursive: Bool? = nil) {
        self.volume = volume
        self.folder = folder
        self.paths = paths
        self.recursive = recursive
    }
}

/// Asks for a token to upload one file of `size` bytes.
public struct UploadTicketRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var path: String
    public var size: UInt64
    /// The upload is a tar archive (`size` its length) to unpack into the directory at
    /// `path` ("" or "." for the folder's root) as it arrives.
    public var archive: Bool?
    public init(volume: String, folder: String, path: String, size: UInt64, archive: Bool? = nil) {
        self.volume = volume
        self.folder = folder
        self.path = path
        self.size = size
        self.archive = archive
    }
}

/// Asks for a token to download a file, or a directory as a tar archive.
public struct DownloadTicketRequest: Codable, Sendable, Equatable {
    public var volume: String
    public var folder: String
    public var path: String
    /// Absent: archive directories, send files as they are.
    public var archive: Bool?
    public init(volume: String, folder: String, path: String, archive: Bool? = nil) {
        self.volume = volume
        self.folder = folder
        self.path = path
        self.archive = archive
    }
}

/// The reply to `requestUpload` and `requestDownload`: where the client goes, with what token.
public struct TransferTicket: Codable, Sendable, Equatable {
    public var token: String
    public var url: String
    /// The upload's staging session (uploads only).
    public var session: String?
    public init(token: String, url: String, session: String? = nil) {
        self.token = token
        self.url = url
        self.session = session
    }
}

/// The body of every refusal the proxy sends.
public struct StorageErrorReply: Codable, Sendable, Equatable {
    public var error: String
    public init(error: String) { self.error = error }
}
