import PluginAPI
import PluginHost

/// Accelerator listings read through raw sinks that accept anything, so the suite can judge
/// each rule on its own (the host's typed wrappers stop at the first malformed item), and
/// count sink calls to check that a refusing sink stops the listing.
final class RawCollector<T> {
    var items: [T] = []
    /// Sink calls made, including refused ones.
    var calls = 0
    /// When set, every sink call is answered with this status (after being counted).
    var refuseWith: hangar_status?

    static func from(_ raw: UnsafeMutableRawPointer?) -> RawCollector<T> {
        Unmanaged<RawCollector<T>>.fromOpaque(raw!).takeUnretainedValue()
    }

    func accept(_ item: T) -> hangar_status {
        calls += 1
        if let refuseWith { return refuseWith }
        items.append(item)
        return HANGAR_OK
    }

    /// Runs `body` with this collector as the sink context.
    func with(_ body: (UnsafeMutableRawPointer) -> hangar_status) -> hangar_status {
        let unmanaged = Unmanaged.passRetained(self)
        defer { unmanaged.release() }
        return body(unmanaged.toOpaque())
    }
}

/// A device as reported, before any check.
struct RawDevice {
    var size: UInt32 = UInt32.max
    var id: String?
    var model: String?
    var numaNode: Int32
    var health: UInt32
    var cpuAffinity: String?
    var extraInfoJSON: String?
    var parent: String?
}

/// A slot as reported.
struct RawSlot {
    var size: UInt32 = UInt32.max
    var name: String?
    var type: UInt32
    var mode: UInt32
    var quantum: Int64
    var capacity: Int64
}

/// A device-slot row as reported.
struct RawDeviceSlot {
    var slot: String?
    var device: String?
    var capacity: Int64
}

/// A measure as reported.
struct RawMeasure {
    var key: String?
    var unit: UInt32
    var kind: UInt32
    var device: String?
    var container: String?
    var current: Double
}

private func string(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

func rawDeviceSink(_ ctx: UnsafeMutableRawPointer?, _ p: UnsafePointer<hangar_accel_device>?) -> hangar_status {
    let box = RawCollector<RawDevice>.from(ctx)
    guard let p else { return box.accept(RawDevice(numaNode: -1, health: 0)) }
    let (d, size) = copySizePrefixed(UnsafeRawPointer(p), as: hangar_accel_device.self, zero: hangar_accel_device())
    return box.accept(RawDevice(size: size, id: string(d.device_id), model: string(d.model), numaNode: d.numa_node, health: d.health,
                                cpuAffinity: string(d.cpu_affinity), extraInfoJSON: string(d.extra_info_json), parent: string(d.parent_device_id)))
}

func rawSlotSink(_ ctx: UnsafeMutableRawPointer?, _ p: UnsafePointer<hangar_accel_slot>?) -> hangar_status {
    let box = RawCollector<RawSlot>.from(ctx)
    guard let p else { return box.accept(RawSlot(type: 0, mode: 0, quantum: -1, capacity: -1)) }
    let (s, size) = copySizePrefixed(UnsafeRawPointer(p), as: hangar_accel_slot.self, zero: hangar_accel_slot())
    return box.accept(RawSlot(size: size, name: string(s.name), type: s.type, mode: s.allocation_mode, quantum: s.quantum, capacity: s.capacity))
}

func rawDeviceSlotSink(_ ctx: UnsafeMutableRawPointer?, _ p: UnsafePointer<hangar_accel_device_slot>?) -> hangar_status {
    let box = RawCollector<RawDeviceSlot>.from(ctx)
    guard let p else { return box.accept(RawDeviceSlot(capacity: -1)) }
    let r = copySizePrefixed(UnsafeRawPointer(p), as: hangar_accel_device_slot.self, zero: hangar_accel_device_slot()).value
    return box.accept(RawDeviceSlot(slot: string(r.slot_name), device: string(r.device_id), capacity: r.capacity))
}

func rawMeasureSink(_ ctx: UnsafeMutableRawPointer?, _ p: UnsafePointer<hangar_accel_measure>?) -> hangar_status {
    let box = RawCollector<RawMeasure>.from(ctx)
    guard let p else { return box.accept(RawMeasure(unit: .max, kind: .max, current: .nan)) }
    let m = copySizePrefixed(UnsafeRawPointer(p), as: hangar_accel_measure.self, zero: hangar_accel_measure()).value
    return box.accept(RawMeasure(key: string(m.key), unit: m.unit, kind: m.measure_kind, device: string(m.device_id),
                                 container: string(m.container_id), current: m.current))
}

/// `withCAllocations` for bodies that make a raw call and return its status.
func withRawAllocations<R>(_ allocations: [Allocation], _ body: (UnsafePointer<hangar_accel_allocation>, Int) -> R) throws(PluginError) -> R {
    try withCAllocations(allocations) { array, count throws(PluginError) in body(array, count) }
}

func rawMetricSink(_ ctx: UnsafeMutableRawPointer?, _ p: UnsafePointer<hangar_storage_metric>?) -> hangar_status {
    let box = RawCollector<String>.from(ctx)
    guard let p else { return box.accept("") }
    let m = copySizePrefixed(UnsafeRawPointer(p), as: hangar_storage_metric.self, zero: hangar_storage_metric()).value
    return box.accept(string(m.key) ?? "")
}
