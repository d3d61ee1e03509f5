import ClusterProtocol
import Foundation
import Testing

/// The heartbeat's device report carries the plugin ABI 1.2 facts without breaking agents or
/// managers of the version before.
@Suite struct DeviceReportTests {
    @Test func aReportFromAnOlderAgentStillDecodes() throws {
        let recorded = #"{"plugin":"cuda","id":"0","model":"NVIDIA H200","memoryBytes":151397597184,"processingUnits":132,"numaNode":0,"health":"healthy"}"#
        let report = try JSONDecoder().decode(DeviceReport.self, from: Data(recorded.utf8))
        #expect(report.model == "NVIDIA H200" && report.firmwareVersion == nil && report.cpuAffinity == nil)
    }

    @Test func theNewFactsRoundTripAndAbsentOnesAreLeftOut() throws {
        let report = DeviceReport(plugin: "cuda", id: "0", model: "NVIDIA H200", memoryBytes: 1, processingUnits: 1, numaNode: 1, health: "healthy",
                                  firmwareVersion: "96.00.A5.00.01", linkSpeed: "PCIe 5.0 x16", cpuAffinity: "16-31")
        let data = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(DeviceReport.self, from: data) == report)
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.contains("boardID") && !text.contains("parentDeviceID"))
    }
}
