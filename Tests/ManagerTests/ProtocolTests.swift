import ClusterProtocol
import Foundation
import Testing
import TestSupport
@testable import Manager
import PluginHost
import StateStore

/// The manager's side of the kernel contract: it builds exactly what the agent decodes (the
/// recorded messages themselves are checked in ClusterProtocolTests).
@Suite struct ProtocolTests {
    @Test func theManagerBuildsTheAgentsTypedRequest() throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        var spec = try StoreFixtures.sessionSpec(store, admin, name: "train", cpu: 1.5)
        spec.requested["cuda.shares"] = 0.25
        let session = try store.createSession(spec)
        let request = SessionLifecycle.kernelRequest(kernelID: "k1", session: session, command: "echo hi", slotTypes: ["cuda.shares": "count"],
                                                     mounts: [SessionMount(folderID: "v", name: "data", hostPath: "/srv/v", containerPath: "/home/work/data", readOnly: false)])
        #expect(request.slots == ["cpu": 1_500_000, "mem": 1 << 30, "cuda.shares": 250_000])
        #expect(request.command == ["/bin/sh", "-c", "echo hi"])
        #expect(request.mounts == [KernelMount(hostPath: "/srv/v", containerPath: "/home/work/data", readOnly: false)])
        // What goes over the wire decodes back to the same request.
        #expect(try JSONDecoder().decode(KernelRequest.self, from: JSONEncoder().encode(request)) == request)
        #expect(SessionLifecycle.agentReason(#"{"error":"not enough cuda.shares"}"#) == "not enough cuda.shares")
        #expect(SessionLifecycle.agentReason("plain text") == "plain text")
    }
}

/// One fixed-point amount: the ABI's scale, the allocator's and the manager's are the same.
@Suite struct SlotAmountTests {
    @Test func everyLayerUsesTheABIsScale() {
        #expect(SlotAmount.scale == amountScale, "PluginHost's scale is HANGAR_AMOUNT_SCALE from accelerator.h")
        #expect(SlotAmount.fixed(Decimal(string: "0.25")!, bytes: false) == 250_000)
        #expect(SlotAmount.fixed(Decimal(1 << 30), bytes: true) == 1 << 30)
        #expect(SlotAmount.decimal(1_500_000, bytes: false) == Decimal(string: "1.5")!)
    }
}
