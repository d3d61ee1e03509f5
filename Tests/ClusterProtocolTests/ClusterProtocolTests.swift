import ClusterProtocol
import Foundation
import Testing
import TestSupport

/// Every message that crosses a role boundary: recorded messages of today's version still
/// decode (unknown fields ignored, for rolling upgrades), what a side sends encodes with the
/// wire's keys, and the RPC paths and the protocol version are one definition.
@Suite struct ClusterProtocolTests {
    @Test func aRecordedCreateKernelRequestDecodes() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/protocol/create-kernel-v1.json")
        let request = try JSONDecoder().decode(KernelRequest.self, from: Data(contentsOf: url))
        #expect(request.slots == ["cpu": 2_000_000, "mem": 1 << 30, "cuda.device": 1_000_000])
        #expect(request.mounts == [KernelMount(hostPath: "/srv/vfolders/ab/cd/abcd1234", containerPath: "/home/work/data", readOnly: true)])
        #expect(request.command == ["/bin/sh", "-c", "python3 train.py"])
        #expect(request.runtime == nil)
    }

    /// Messages of today's manager ↔ storage-proxy protocol, recorded with fields a newer
    /// side might add, decode as the typed messages; what the manager sends encodes with the
    /// wire's keys.
    @Test func recordedStorageProxyMessagesDecode() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/protocol/storage-proxy-v1.json")
        let recorded = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func message<T: Decodable>(_ key: String, as: T.Type) throws -> T {
            try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: try #require(recorded[key])))
        }
        let volumes = try message("volumes", as: VolumeList.self)
        #expect(volumes.volumes == [VolumeSummary(name: "local", backend: "btrfs", capabilities: VolumeCapabilities(quota: true, fastClone: true),
                                                  usedBytes: 1 << 20, capacityBytes: 10 << 30)])
        #expect(try message("create_folder", as: CreateFolderRequest.self) == CreateFolderRequest(volume: "local", folder: "0123456789abcdef0123456789abcdef", quota: 1 << 30))
        #expect(try message("folder_usage", as: FolderUsage.self) == FolderUsage(usedBytes: 4096, fileCount: 3, quota: 1 << 30))
        #expect(try message("list_files", as: FileList.self).items.map(\.name) == ["train.py"])
        #expect(try message("upload_ticket", as: TransferTicket.self).session == "3f2a")
        let mkdir = try message("mkdir", as: MakeDirectoryRequest.self)
        #expect(mkdir.existOK == true && mkdir.parents == true)
        #expect(try message("error", as: StorageErrorReply.self).error.contains("does not exist"))
        // The manager's side encodes the wire's snake_case keys.
        let sent = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(mkdir)) as? [String: Any])
        #expect(Set(sent.keys) == ["volume", "folder", "path", "parents", "exist_ok"])
        #expect(StorageProxyAPI.Call.requestUpload.path == "/manager/folder/file/upload")
    }

    /// Heartbeats say which protocol the agent speaks; one from before versioning still
    /// decodes, and one newer than this manager understands is refused with what to do.
    @Test func heartbeatsCarryTheProtocolVersion() throws {
        let heartbeat = StoreFixtures.heartbeat("node-v", cpu: 2)
        let sent = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(heartbeat)) as? [String: Any])
        #expect(sent["protocolVersion"] as? Int == ClusterProtocolVersion.current)
        var older = sent
        older["protocolVersion"] = nil
        let decoded = try JSONDecoder().decode(AgentHeartbeat.self, from: JSONSerialization.data(withJSONObject: older))
        #expect(decoded.protocolVersion == nil && decoded.validationErrors().isEmpty)
        var newer = heartbeat
        newer.protocolVersion = ClusterProtocolVersion.current + 1
        #expect(newer.validationErrors().contains { $0.contains("upgrade the managers before the agents") })
    }

    @Test func rpcPathsAreOneDefinition() {
        #expect(AgentAPI.kernelPath("k") == "/rpc/kernels/k")
        #expect(AgentAPI.logsPath("k") == "/rpc/kernels/k/logs")
        #expect(AgentAPI.executePath("k").hasPrefix(AgentAPI.kernelsPath))
    }
}

/// Amounts as users write them and as messages show them.
@Suite struct AmountTests {
    @Test(arguments: [
        ("512", "512"), ("1.5", "1.5"), ("1k", "1024"), ("1K", "1024"), ("1kb", "1024"), ("1KiB", "1024"), ("1ki", "1024"),
        ("2m", "2097152"), ("2MB", "2097152"), ("2Mi", "2097152"), ("1g", "1073741824"), ("1GiB", "1073741824"), ("1gb", "1073741824"),
        ("1.5g", "1610612736"), ("1t", "1099511627776"), ("1TiB", "1099511627776"), ("512b", "512"), ("512B", "512"),
    ])
    func everyAcceptedSuffixParses(text: String, expected: String) {
        #expect(ResourceSlots.parseAmount(text) == Decimal(string: expected), "\(text)")
    }

    @Test(arguments: ["", "g", "-1g", "1x", "1gg", "1.2.3g", ".5g", "1e3", "ten", "1 g b", "16ib", "0x10"])
    func anythingElseIsRefused(text: String) {
        #expect(ResourceSlots.parseAmount(text) == nil, "\(text)")
    }

    @Test func bytesReadLikeAPersonWritesThem() {
        #expect(ResourceSlots.humanBytes(Decimal(100) * Decimal(1 << 30)) == "100 GiB")
        #expect(ResourceSlots.humanBytes(Decimal(25_324_961_792)) == "23.6 GiB")
        #expect(ResourceSlots.humanBytes(Decimal(512 << 20)) == "512 MiB")
        #expect(ResourceSlots.humanBytes(Decimal(1000)) == "1000 bytes")
        #expect(ResourceSlots.humanBytes(Decimal(1536)) == "1.5 KiB")
        #expect(ResourceSlots.human(Decimal(string: "2.5")!, bytes: false) == "2.5")
        #expect(ResourceSlots.acceptedAmountForms.contains("16g"))
    }
}
