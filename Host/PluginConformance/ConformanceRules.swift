import PluginHost

/// A rule of the ABI headers that `hangar-plugin verify` checks from outside the plugin, with
/// the check id that reports it. `hangar-plugin verify --list` prints this catalog; every
/// check the suite records is one of these ids.
public struct ConformanceRule: Sendable, Codable, Equatable {
    /// The check id, e.g. `accelerator.container_edits.unknown_device`.
    public var id: String
    /// The kinds the check runs for (all kinds when empty).
    public var kinds: [String]
    /// The header that states the rule.
    public var header: String
    /// The rule, as the header states it.
    public var rule: String
}

/// Every check of the suite with the rule it enforces.
public enum ConformanceRules {
    private static func r(_ id: String, _ kinds: [String], _ header: String, _ rule: String) -> ConformanceRule {
        ConformanceRule(id: id, kinds: kinds, header: header, rule: rule)
    }
    private static let acc = ["accelerator"]

    public static let all: [ConformanceRule] = [
        // Loading and the descriptor (checked when the library opens; a failure there is reported under these ids).
        r("entry.exported", [], "plugin.h", "the library exports exactly one entry symbol, hangar_plugin_entry_v1, with default visibility"),
        r("entry.returns_descriptor", [], "plugin.h", "the entry symbol returns a descriptor for a host of its ABI major whose minor it can serve"),
        r("entry.idempotent", [], "plugin.h", "the entry symbol has no side effects and returns the same static descriptor on every call"),
        r("descriptor.abi", [], "plugin.h", "abi_major is the host's HANGAR_ABI_MAJOR"),
        r("descriptor.struct_size", [], "plugin.h", "struct_size is sizeof(hangar_plugin_descriptor) of the plugin's build, at least the 1.0 size"),
        r("descriptor.kind", [], "plugin.h", "kind is one of HANGAR_KIND_*"),
        r("descriptor.name", [], "plugin.h", "name is 1-63 lowercase letters, digits and '-', starting with a letter"),
        r("descriptor.metadata", [], "plugin.h", "vendor, version, description and license are set"),
        r("descriptor.thread_safety", [], "plugin.h", "thread_safety uses only HANGAR_THREAD_SAFE and HANGAR_THREAD_SINGLE_INSTANCE"),
        r("descriptor.config_schema", [], "plugin.h", "config_schema is NULL or a JSON Schema using only the keywords the host enforces"),
        r("descriptor.functions", [], "plugin.h", "the function table's struct_size covers the required functions, and none of them is NULL"),
        r("descriptor.static_slot_names", acc, "plugin.h", "every static slot name starts with \"<name>.\""),
        // Lifecycle.
        r("lifecycle.create", [], "plugin.h", "create() succeeds on a valid config; on failure it writes a message saying what was wrong and how to fix it"),
        r("lifecycle.last_error", [], "plugin.h", "last_error() has snprintf semantics: it returns the full length, writes at most buf_len bytes NUL-terminated, and accepts (NULL, 0)"),
        r("lifecycle.recreate", [], "plugin.h", "destroy() releases everything, so a new create() after it succeeds"),
        r("lifecycle.two_instances", [], "plugin.h", "without HANGAR_THREAD_SINGLE_INSTANCE, two instances can exist at once (no mutable global state)"),
        // Accelerator: discovery.
        r("accelerator.get_info", acc, "accelerator.h", "get_info succeeds and sets a valid device_key (1-63 lowercase letters, digits and '-')"),
        r("accelerator.device_key", acc, "plugin.h", "with static slot names, the device key is the descriptor name"),
        r("accelerator.no_device_reason", acc, "accelerator.h", "zero devices is not an error, but get_info's no_device_reason says why"),
        r("accelerator.list_devices", acc, "accelerator.h", "list_devices succeeds and reports every device, healthy or not"),
        r("accelerator.device_ids", acc, "accelerator.h", "every device has a non-empty device_id, unique within the plugin"),
        r("accelerator.device_model", acc, "accelerator.h", "every device has a model"),
        r("accelerator.device_numa", acc, "accelerator.h", "numa_node is a node number, or -1 if unknown"),
        r("accelerator.device_health", acc, "accelerator.h", "health is one of HANGAR_HEALTH_*"),
        r("accelerator.device_cpu_affinity", acc, "accelerator.h", "cpu_affinity is NULL or a Linux cpulist such as \"0-15,32-47\""),
        r("accelerator.device_extra_info", acc, "accelerator.h", "a device's extra_info_json is NULL or one JSON object"),
        r("accelerator.device_parent", acc, "accelerator.h", "parent_device_id is NULL or names another listed device that is not itself a partition"),
        r("accelerator.list_slots", acc, "accelerator.h", "list_slots succeeds; each slot has a name, a HANGAR_SLOT_* type, a HANGAR_ALLOC_* mode and non-negative quantum and capacity"),
        r("accelerator.slot_prefix", acc, "accelerator.h", "every slot name starts with \"<device_key>.\""),
        r("accelerator.slot_names_unique", acc, "accelerator.h", "each slot is reported once"),
        r("accelerator.slots_declared", acc, "plugin.h", "with static_slot_names, every slot an instance reports is among them"),
        r("accelerator.fractional_quantum", acc, "accelerator.h", "a fractional slot has a positive quantum"),
        r("accelerator.list_device_slots", acc, "accelerator.h", "list_device_slots succeeds and each row names a listed device and slot with a non-negative capacity"),
        r("accelerator.capacity_sum", acc, "accelerator.h", "a slot's capacity is the sum of its devices' capacities"),
        r("accelerator.sink_stop", acc, "plugin.h", "when a sink returns anything but HANGAR_OK the listing stops and returns that status (every listing: devices, slots, device slots, node and container measures)"),
        r("accelerator.capabilities", acc, "accelerator.h", "capability bits match the function table: NODE_METRICS and CONTAINER_METRICS need their gather function, NEEDS_RELEASE needs release, NEEDS_PREPARE needs prepare; no unknown bits"),
        // Accelerator: container edits.
        r("accelerator.container_edits.valid", acc, "accelerator.h", "an allocation of a healthy device within its capacity gets container edits"),
        r("accelerator.container_edits.repeatable", acc, "accelerator.h", "container_edits changes no state: the same allocation gives the same edits again"),
        r("accelerator.container_edits.empty", acc, "accelerator.h", "an allocation with no entries emits nothing and returns HANGAR_OK"),
        r("accelerator.container_edits.null_arguments", acc, "accelerator.h", "a NULL allocation or edits builder is refused with HANGAR_E_INVALID_ARGUMENT"),
        r("accelerator.container_edits.unknown_slot", acc, "accelerator.h", "a slot that is not the plugin's is refused with HANGAR_E_INVALID_ARGUMENT"),
        r("accelerator.container_edits.unknown_device", acc, "accelerator.h", "an unknown device is refused with HANGAR_E_NOT_FOUND"),
        r("accelerator.container_edits.zero_amount", acc, "accelerator.h", "a zero or negative amount is refused with HANGAR_E_BAD_ALLOCATION"),
        r("accelerator.container_edits.partial_amount", acc, "accelerator.h", "an amount that is not a whole unit (discrete) or a multiple of the quantum (fractional) is refused with HANGAR_E_BAD_ALLOCATION"),
        r("accelerator.container_edits.over_capacity", acc, "accelerator.h", "more than the device's capacity of the slot is refused with HANGAR_E_BAD_ALLOCATION"),
        r("accelerator.container_edits.duplicate_device", acc, "accelerator.h", "a device named in two entries is refused with HANGAR_E_BAD_ALLOCATION"),
        r("accelerator.container_edits.unhealthy_device", acc, "accelerator.h", "an unhealthy device is refused with HANGAR_E_DEVICE_LOST"),
        r("accelerator.container_edits.error_message", acc, "accelerator.h", "every refusal sets last_error"),
        r("accelerator.container_edits.no_partial_edits", acc, "accelerator.h", "every entry is validated before anything is emitted: a refused allocation leaves no edits"),
        r("accelerator.container_edits.order", acc, "accelerator.h", "container-local indices follow the order of list_devices whatever the entry order"),
        // Accelerator: prepare and release.
        r("accelerator.prepare.idempotent", acc, "accelerator.h", "prepare() of a prepared allocation returns HANGAR_OK, and container_edits works after it"),
        r("accelerator.prepare.refusals", acc, "accelerator.h", "prepare() refuses what container_edits refuses (an unknown device, a zero amount, another plugin's slot, an unhealthy device), with the same status"),
        r("accelerator.release.idempotent", acc, "accelerator.h", "release() twice, or of an allocation the plugin never saw, returns HANGAR_OK"),
        // Accelerator: measures.
        r("accelerator.node_measures", acc, "accelerator.h", "gather_node_measures succeeds; each measure has a key free of dots, a HANGAR_UNIT_* unit and a HANGAR_MEASURE_* kind"),
        r("accelerator.measures.percent_range", acc, "accelerator.h", "percentages lie within 0-100"),
        r("accelerator.measures.device_known", acc, "accelerator.h", "a measure's device_id is NULL or a listed device"),
        r("accelerator.measures.unique", acc, "accelerator.h", "a key is reported once per device (and container) in one call"),
        r("accelerator.measures.counter_monotonic", acc, "accelerator.h", "a counter never decreases between two calls"),
        r("accelerator.container_measures", acc, "accelerator.h", "gather_container_measures succeeds and sets container_id in each measure to one of the given containers"),
        // Storage.
        r("storage.capabilities", ["storage"], "storage.h", "capability bits match the function table: QUOTA needs get_quota and set_quota, FAST_CLONE needs clone_folder, METRICS needs get_performance; no unknown bits"),
        r("storage.create_folder", ["storage"], "storage.h", "create_folder makes a new folder"),
        r("storage.folder_path", ["storage"], "storage.h", "folder_path returns the absolute path of an existing directory"),
        r("storage.folder_path_buffer", ["storage"], "storage.h", "folder_path with a short buffer returns HANGAR_E_BUFFER_TOO_SMALL and the full length in *out_len"),
        r("storage.get_usage", ["storage"], "storage.h", "get_usage counts what the folder holds"),
        r("storage.create_folder.exists", ["storage"], "storage.h", "creating an existing folder is refused with HANGAR_E_EXISTS"),
        r("storage.invalid_id", ["storage"], "storage.h", "folder ids that are not 1-64 characters of [0-9a-z_-] are refused with HANGAR_E_INVALID_ARGUMENT"),
        r("storage.volume_usage", ["storage"], "storage.h", "volume_usage succeeds"),
        r("storage.quota_roundtrip", ["storage"], "storage.h", "set_quota then get_quota returns the same value"),
        r("storage.clone_folder", ["storage"], "storage.h", "clone_folder copies the folder's content; an existing target is refused with HANGAR_E_EXISTS"),
        r("storage.performance", ["storage"], "storage.h", "get_performance succeeds with metric keys free of dots"),
        r("storage.sink_stop", ["storage"], "plugin.h", "when the metric sink returns anything but HANGAR_OK, get_performance stops and returns that status"),
        r("storage.delete_folder", ["storage"], "storage.h", "delete_folder removes the folder; a missing folder is refused with HANGAR_E_NOT_FOUND"),
        // Scheduler and agent selector.
        r("scheduler.empty_queue", ["scheduler"], "scheduler.h", "pick_next on an empty queue returns HANGAR_E_NOTHING_TO_SCHEDULE"),
        r("scheduler.pick", ["scheduler"], "scheduler.h", "pick_next returns an index within the queue"),
        r("scheduler.deterministic", ["scheduler"], "scheduler.h", "the same snapshot gives the same pick"),
        r("scheduler.priority", ["scheduler"], "scheduler.h", "higher priority runs first: sessions of lower priority wait while higher ones are pending"),
        r("scheduler.null_input", ["scheduler"], "scheduler.h", "a NULL input or out_index is refused with HANGAR_E_INVALID_ARGUMENT"),
        r("scheduler.explain", ["scheduler"], "scheduler.h", "explain (optional, 1.3) reports factors in [0, 1] that pick_next orders by: the picked session has the highest total of its priority; an index out of range is refused with HANGAR_E_INVALID_ARGUMENT"),
        r("selector.place", ["agent selector"], "scheduler.h", "a kernel that fits one agent only is placed there"),
        r("selector.too_big", ["agent selector"], "scheduler.h", "kernels that do not fit give HANGAR_E_NO_AGENT, with a reason in last_error"),
        r("selector.multi_kernel", ["agent selector"], "scheduler.h", "several kernels are placed without over-committing any agent (occupied + placed <= capacity)"),
        r("selector.architecture", ["agent selector"], "scheduler.h", "kernels go only to agents of the architecture the session needs"),
        r("selector.single_node", ["agent selector"], "scheduler.h", "a single-node session's kernels all go to one agent"),
        r("selector.overcommitted_agent", ["agent selector"], "scheduler.h", "an agent whose occupied amounts already exceed its capacity takes nothing"),
        r("selector.null_input", ["agent selector"], "scheduler.h", "a NULL input or kernel_count 0 is refused with HANGAR_E_INVALID_ARGUMENT"),
    ]

    /// The rule of a check id.
    public static func rule(_ id: String) -> ConformanceRule? { byID[id] }
    private static let byID = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
}
