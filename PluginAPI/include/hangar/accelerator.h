/*
 * Hangar plugin ABI v1 — accelerator plugins (1.2).
 *
 * An accelerator plugin tells the agent which devices a node has, which
 * resource slots they provide, and what a container needs to use an
 * allocation of them. It never touches a container itself: the agent merges
 * the container edits a plugin emits into the engine's create request, which
 * covers how every targeted vendor attaches devices:
 *   CUDA       device nodes /dev/nvidia*, NVIDIA_VISIBLE_DEVICES, CDI nvidia.com/gpu=<uuid>
 *   ROCm       /dev/kfd + /dev/dri/renderD*, groups video/render, security opt seccomp=unconfined
 *   TPU        no device nodes: environment (TPU_NAME, TPU_VISIBLE_DEVICES) only
 *   IPU        a generated ipuof.conf mount, IPC_LOCK, host IPC, memlock ulimit, sysctl, RDMA network
 *   Rebellions /dev/rbln<N> renamed in the container, /dev/rsd groups, CDI rebellions.ai/npu=runtime
 *   Furiosa    /dev/npu<N>* renamed, IPC_LOCK, host IPC, memlock ulimit
 *   HyperAccel /dev/xfpga/xvc_pri.m<N>.0, /dev/dri/renderD<N>, an SDK bind mount, IPC_LOCK
 *
 * Amounts: slot amounts are 64-bit fixed point. For HANGAR_SLOT_COUNT and
 * HANGAR_SLOT_UNIQUE slots one unit is HANGAR_AMOUNT_SCALE (so 0.25 of a
 * device is 250000); for HANGAR_SLOT_BYTES slots the amount is in bytes.
 */
#ifndef HANGAR_ACCELERATOR_H
#define HANGAR_ACCELERATOR_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Fixed-point scale of count and unique slot amounts: 1.0 == 1000000. */
#define HANGAR_AMOUNT_SCALE 1000000LL

/* Accelerator status codes (100–199). */
/** The device named in an allocation is gone or has failed. */
#define HANGAR_E_DEVICE_LOST 100
/** An allocation asks for an amount the plugin cannot honour (not a multiple of the quantum, unique != 1, ...). */
#define HANGAR_E_BAD_ALLOCATION 101

/* Capability bits for hangar_plugin_descriptor.capabilities. */
/** Some slot is fractional (devices can be shared in quanta). */
#define HANGAR_ACCEL_CAP_FRACTIONAL (1ull << 0)
/** Container edits may name CDI devices (the engine must support CDI). */
#define HANGAR_ACCEL_CAP_CDI (1ull << 1)
/** gather_node_measures reports something. */
#define HANGAR_ACCEL_CAP_NODE_METRICS (1ull << 2)
/** gather_container_measures reports something. */
#define HANGAR_ACCEL_CAP_CONTAINER_METRICS (1ull << 3)
/** Device health can change at run time; the agent should re-list devices periodically. */
#define HANGAR_ACCEL_CAP_HEALTH_WATCH (1ull << 4)
/** release() must be called when a container's allocation ends (it frees driver-side state). */
#define HANGAR_ACCEL_CAP_NEEDS_RELEASE (1ull << 5)
/** (1.2) prepare() makes driver-side state (partitions) before container_edits; implies NEEDS_RELEASE. */
#define HANGAR_ACCEL_CAP_NEEDS_PREPARE (1ull << 6)

/* Slot types (Backend.AI's SlotTypes). */
/** Units that may be whole or fractional (cores, devices, shares). */
#define HANGAR_SLOT_COUNT 1u
/** A byte amount (memory). */
#define HANGAR_SLOT_BYTES 2u
/** A device that must be allocated exactly once, whole (MIG profiles). */
#define HANGAR_SLOT_UNIQUE 3u

/* Allocation modes of a slot. */
/** Whole units per device: an allocation on a device is an integer amount. */
#define HANGAR_ALLOC_DISCRETE 1u
/** Shares of a device in multiples of the slot's quantum. */
#define HANGAR_ALLOC_FRACTIONAL 2u

/* Device health. */
#define HANGAR_HEALTH_UNKNOWN 0u
#define HANGAR_HEALTH_HEALTHY 1u
/** Usable, but something is wrong (ECC errors, throttling); health_reason says what. */
#define HANGAR_HEALTH_DEGRADED 2u
/** Not usable; the agent stops allocating it. health_reason says why (e.g. an XID). */
#define HANGAR_HEALTH_UNHEALTHY 3u

/** Key, version and driver facts of an instance, filled by get_info. */
typedef struct hangar_accel_info {
    /** Set by the host to sizeof as it compiled it; the plugin fills at most that many bytes. */
    uint32_t struct_size;
    /**
     * The device key: the prefix of every slot name and the Backend.AI
     * "device name" (e.g. "cuda"). Usually the descriptor name; a
     * configuration-driven plugin such as the mock may take it from config.
     * Static or instance-owned; valid until destroy().
     */
    const char *device_key;
    /** Driver version string, or NULL. Valid until destroy(). */
    const char *driver_version;
    /** Runtime/toolkit version string, or NULL. Valid until destroy(). */
    const char *runtime_version;
    /** Extra facts as a JSON object for the heartbeat (Backend.AI's extra_info), or NULL. Valid until destroy(). */
    const char *extra_info_json;
    /** Why the plugin sees no devices (e.g. "libnvidia-ml.so.1 not found"), or NULL. Valid until destroy(). */
    const char *no_device_reason;
} hangar_accel_info;

/** One physical or partitioned device. */
typedef struct hangar_accel_device {
    /** sizeof(hangar_accel_device) as the plugin compiled it. */
    uint32_t struct_size;
    /** Stable id, unique within the plugin (index, UUID or node name). Required. */
    const char *device_id;
    /** Model name, e.g. "NVIDIA H100 80GB HBM3". Required. */
    const char *model;
    /** Vendor UUID or serial, or NULL. */
    const char *uuid;
    /** Hardware location: PCI bus id "0000:3b:00.0", "<ip>:<pcie id>", or NULL. */
    const char *hw_location;
    /** Device memory in bytes (0 if none or unknown). */
    uint64_t memory_bytes;
    /** Processing units (SMs, compute units, cores). */
    uint32_t processing_units;
    /** NUMA node the device is attached to, or -1 if unknown. */
    int32_t numa_node;
    /** HANGAR_HEALTH_*. */
    uint32_t health;
    /** Why the device is not healthy, or NULL. */
    const char *health_reason;

    /* ---- added in ABI 1.2 (absent when struct_size ends before them) ---- */

    /** Firmware (VBIOS, SMC, ...) version, or NULL. */
    const char *firmware_version;
    /** Board or part id printed on the card (serial of the board, not the chip), or NULL. */
    const char *board_id;
    /** Host link as text, e.g. "PCIe 4.0 x16" or "16 GT/s x16", or NULL. */
    const char *link_speed;
    /**
     * Anything else as one JSON object (e.g. {"driver_model":"..."}), or NULL. Reported in the
     * heartbeat. Build it with escaping (hs_strbuf_add_json_string): a value that is not one
     * JSON object is dropped by the host, and fails `hangar-plugin verify`.
     */
    const char *extra_info_json;
    /**
     * The host CPUs nearest the device as a Linux cpulist ("0-15,32-47", as
     * sysfs local_cpulist writes it), or NULL to go by numa_node alone. The
     * agent takes a container's CPU cores from this list first when the
     * container gets the device (a hint: it falls back to other cores when
     * these are taken). A value that is not a cpulist is dropped by the host.
     */
    const char *cpu_affinity;
    /**
     * For a partition of a physical device (a MIG instance, an NPU core
     * group): the device_id of the device it is carved from, which is also
     * listed, and is not itself a partition (one level: GPU, then its
     * instances). NULL for a whole device. The agent never gives a partition
     * and its parent to two containers at once when both carry capacity.
     */
    const char *parent_device_id;
} hangar_accel_device;

/** A slot type the plugin provides, with its node-wide capacity. */
typedef struct hangar_accel_slot {
    /** sizeof(hangar_accel_slot) as the plugin compiled it. */
    uint32_t struct_size;
    /** "<device_key>.<subtype>", e.g. "cuda.device", "cuda.shares", "cuda.device:10g-mig". */
    const char *name;
    /** HANGAR_SLOT_*. */
    uint32_t type;
    /** HANGAR_ALLOC_*. */
    uint32_t allocation_mode;
    /** Smallest allocatable amount per device (fixed point); 0 means one whole unit for discrete slots. */
    int64_t quantum;
    /** Total capacity on this node (fixed point), after any device mask. */
    int64_t capacity;
    /**
     * Non-zero if a container may not combine this slot with another exclusive
     * slot of the same plugin (Backend.AI's exclusive_slot_types: flag
     * cuda.device, cuda.shares and every cuda.device:<profile>-mig slot, and a
     * container gets only one of them).
     */
    int32_t exclusive;
    /** Human-readable name for UIs ("GPU", "fGPU"), or NULL. */
    const char *display_name;
    /** Unit for UIs ("GPU", "FGPU", "NPU"), or NULL. */
    const char *display_unit;
} hangar_accel_slot;

/** How much of one slot one device provides (an allocation map entry). */
typedef struct hangar_accel_device_slot {
    /** sizeof(hangar_accel_device_slot) as the plugin compiled it. */
    uint32_t struct_size;
    /** The slot name (one of those from list_slots). */
    const char *slot_name;
    /** The device id (one of those from list_devices). */
    const char *device_id;
    /** This device's capacity of the slot (fixed point). */
    int64_t capacity;
} hangar_accel_device_slot;

/** One entry of an allocation: `amount` of `slot_name` on `device_id`. */
typedef struct hangar_accel_alloc_entry {
    /** sizeof(hangar_accel_alloc_entry) as the host compiled it. */
    uint32_t struct_size;
    /** One of the plugin's slot names (from list_slots). Never NULL. */
    const char *slot_name;
    /** One of the plugin's device ids (from list_devices). Never NULL. */
    const char *device_id;
    /** Amount of the slot on that device, fixed point (see the file comment); positive. */
    int64_t amount;
} hangar_accel_alloc_entry;

/** The devices of this plugin given to one container. */
typedef struct hangar_accel_allocation {
    /** sizeof(hangar_accel_allocation) as the host compiled it. */
    uint32_t struct_size;
    /** The container (kernel) id the allocation belongs to; stable across agent restarts. */
    const char *container_id;
    /** Entries; index with HANGAR_ARRAY_AT(hangar_accel_alloc_entry, entries, entry_stride, i). */
    const hangar_accel_alloc_entry *entries;
    size_t entry_count;
    size_t entry_stride;
} hangar_accel_allocation;

/* Sinks: the host receives list results through these callbacks. A callback
 * returns HANGAR_OK to continue; anything else asks the plugin to stop and
 * return that status. Data passed in is valid only during the callback. */

/** Receives devices from list_devices. */
typedef hangar_status (*hangar_accel_device_sink)(void *sink_context, const hangar_accel_device *device);
/** Receives slot types from list_slots. */
typedef hangar_status (*hangar_accel_slot_sink)(void *sink_context, const hangar_accel_slot *slot);
/** Receives per-device capacities from list_device_slots. */
typedef hangar_status (*hangar_accel_device_slot_sink)(void *sink_context, const hangar_accel_device_slot *entry);

/** Measurement units. A plain number (events, processes). */
#define HANGAR_UNIT_COUNT 0u
/** Bytes (memory used); capacity is the total. */
#define HANGAR_UNIT_BYTES 1u
/** Percent, 0 to 100 (utilisation). */
#define HANGAR_UNIT_PERCENT 2u
/** Bytes per second (link or memory bandwidth). */
#define HANGAR_UNIT_BPS 3u
/** (1.2) Degrees Celsius (temperature); a gauge. */
#define HANGAR_UNIT_CELSIUS 4u
/** (1.2) Watts (power draw); a gauge; capacity is the power limit, or 0. */
#define HANGAR_UNIT_WATTS 5u
/** (1.2) Joules (energy consumed since an arbitrary start); a counter. */
#define HANGAR_UNIT_JOULES 6u
/** (1.2) Hertz (clock frequency); a gauge; capacity is the maximum clock, or 0. */
#define HANGAR_UNIT_HERTZ 7u

/** (1.2) Measure kinds. A value that goes up and down (utilisation, temperature). The default: 0. */
#define HANGAR_MEASURE_GAUGE 0u
/** (1.2) A value that only grows until the device or driver resets (energy, error counts); rates are its differences. */
#define HANGAR_MEASURE_COUNTER 1u

/** One measured value. */
typedef struct hangar_accel_measure {
    /** sizeof(hangar_accel_measure) as the plugin compiled it. */
    uint32_t struct_size;
    /** Metric key, unique within the plugin and free of dots: "cuda_util", "cuda_mem". */
    const char *key;
    /** HANGAR_UNIT_*. */
    uint32_t unit;
    /** The device measured, or NULL for a node-wide (or container-wide) aggregate. */
    const char *device_id;
    /** The container measured (gather_container_measures only), else NULL. */
    const char *container_id;
    /** Current value. */
    double current;
    /** Capacity for the value (total memory, 100 for percent), or 0 if none. */
    double capacity;

    /* ---- added in ABI 1.2 ---- */

    /** HANGAR_MEASURE_GAUGE or HANGAR_MEASURE_COUNTER. A counter never decreases between two calls unless the device reset. */
    uint32_t measure_kind;
} hangar_accel_measure;

/** Receives measurements. */
typedef hangar_status (*hangar_accel_measure_sink)(void *sink_context, const hangar_accel_measure *measure);

/**
 * Builder the plugin fills with what a container needs for an allocation.
 * Every function copies its arguments before returning and returns HANGAR_OK,
 * or HANGAR_E_INVALID_ARGUMENT for a malformed value (the plugin should
 * propagate it). Functions appended in later minors may be absent: check
 * struct_size (offsetof the field < struct_size) before calling them.
 */
typedef struct hangar_container_edits {
    /** sizeof(hangar_container_edits) as the host compiled it. */
    uint32_t struct_size;
    /** Pass back as the first argument of every function. */
    void *context;
    /** Sets an environment variable (last write wins). */
    hangar_status (*add_env)(void *context, const char *name, const char *value);
    /**
     * Exposes a host device node. container_path NULL means the same path.
     * cgroup_permissions is "rwm" or a subset; NULL means "rwm".
     */
    hangar_status (*add_device_node)(void *context, const char *host_path, const char *container_path, const char *cgroup_permissions);
    /** Bind-mounts a host path. read_only non-zero mounts it read-only. */
    hangar_status (*add_mount)(void *context, const char *host_path, const char *container_path, int32_t read_only);
    /** Requests a fully qualified CDI device, e.g. "nvidia.com/gpu=GPU-...". Needs a CDI-capable engine. */
    hangar_status (*add_cdi_device)(void *context, const char *qualified_name);
    /** A host path of a library to LD_PRELOAD in the container (mounted read-only by the agent). */
    hangar_status (*add_preload_library)(void *context, const char *host_path);
    /**
     * A syscall name (libseccomp's spelling, e.g. "perf_event_open") that containers given this
     * allocation may call although the kernel sandbox policy denies it; "name:condition"
     * (e.g. "unshare:newuser") lifts one conditional rule only. Applies only to containers
     * that got this plugin's devices. An unknown name fails the container's creation with the
     * name, so a typo never weakens or silently skips the policy.
     */
    hangar_status (*add_allowed_syscall)(void *context, const char *syscall_name);
    /** A Linux capability to add, e.g. "IPC_LOCK". */
    hangar_status (*add_capability)(void *context, const char *capability);
    /** A supplementary group (name or numeric gid) for the container user, e.g. "video". */
    hangar_status (*add_group)(void *context, const char *group);
    /** An rlimit, e.g. ("memlock", -1, -1); -1 means unlimited. */
    hangar_status (*add_ulimit)(void *context, const char *name, int64_t soft, int64_t hard);
    /** A namespaced sysctl, e.g. ("net.ipv6.conf.all.disable_ipv6", "0"). */
    hangar_status (*add_sysctl)(void *context, const char *name, const char *value);
    /** An engine security option, e.g. "seccomp=unconfined". The agent may refuse it by policy. */
    hangar_status (*add_security_opt)(void *context, const char *option);
    /** Asks for the host IPC namespace (RDMA and NPU runtimes need it). */
    hangar_status (*use_host_ipc)(void *context);
    /** An engine network to attach the container to (e.g. an RDMA network). */
    hangar_status (*add_network)(void *context, const char *network_name);
    /**
     * A KEY=VALUE line for the kernel's resource file (/home/config/resource.txt),
     * read by in-container hooks, e.g. ("CUDA_GLOBAL_DEVICE_IDS", "0:2,1:3").
     */
    hangar_status (*add_resource_data)(void *context, const char *key, const char *value);
} hangar_container_edits;

/**
 * The accelerator function table. Required: struct_size, create, destroy,
 * last_error, get_info, list_devices, list_slots, list_device_slots,
 * container_edits. Optional (may be NULL): the rest.
 *
 * Unless the descriptor sets HANGAR_THREAD_SAFE, the host never calls two
 * functions on one instance at the same time. Every function may block for
 * driver calls but should return within a second; measurement functions are
 * called every few seconds.
 */
typedef struct hangar_accelerator_functions {
    /** sizeof(hangar_accelerator_functions) as the plugin compiled it. */
    uint32_t struct_size;

    /** See "Fields every kind's function table starts with" in plugin.h. */
    hangar_status (*create)(const hangar_host_services *host, const char *config_json, void **out_instance, char *err, size_t err_len);
    /** See plugin.h. */
    void (*destroy)(void *instance);
    /** See plugin.h. */
    size_t (*last_error)(void *instance, char *buf, size_t buf_len);

    /** Fills *info (the host sets info->struct_size). Pointers stay valid until destroy(). */
    hangar_status (*get_info)(void *instance, hangar_accel_info *info);
    /**
     * Reports every device the instance manages, healthy or not. Zero devices
     * is not an error (say why in get_info's no_device_reason).
     */
    hangar_status (*list_devices)(void *instance, hangar_accel_device_sink sink, void *sink_context);
    /** Reports each slot type with its node-wide capacity. Every name starts with "<device_key>.". */
    hangar_status (*list_slots)(void *instance, hangar_accel_slot_sink sink, void *sink_context);
    /** Reports the capacity each device contributes to each slot (the allocation map's rows). */
    hangar_status (*list_device_slots)(void *instance, hangar_accel_device_slot_sink sink, void *sink_context);
    /**
     * Describes what a container needs to use `allocation` (whose entries name
     * only this plugin's slots and devices). Must not change any state: the
     * agent may call it again for the same allocation after a restart.
     * Validate every entry before emitting anything. Returns
     * HANGAR_E_INVALID_ARGUMENT for a NULL argument or a slot that is not the
     * plugin's, HANGAR_E_NOT_FOUND for an unknown device,
     * HANGAR_E_BAD_ALLOCATION for an amount the plugin cannot honour (zero
     * or negative, not a multiple of the slot's quantum, more than the
     * device's capacity of the slot) or a device named in two entries,
     * HANGAR_E_DEVICE_LOST for a device whose health is
     * HANGAR_HEALTH_UNHEALTHY. Every refusal sets last_error.
     * An allocation with no entries emits nothing and returns HANGAR_OK.
     * Container-local device indices (renumbered device nodes, the
     * "<local>:<host>" pairs of *_GLOBAL_DEVICE_IDS) follow the order in
     * which list_devices reports the devices, whatever the entry order.
     */
    hangar_status (*container_edits)(void *instance, const hangar_accel_allocation *allocation, const hangar_container_edits *edits);
    /**
     * Optional. Frees driver-side state made for an allocation (device groups,
     * partitions). Idempotent: releasing twice, or releasing an allocation the
     * plugin never saw, returns HANGAR_OK.
     */
    hangar_status (*release)(void *instance, const hangar_accel_allocation *allocation);
    /** Optional. Node- and device-level measurements (utilisation, memory used). */
    hangar_status (*gather_node_measures)(void *instance, hangar_accel_measure_sink sink, void *sink_context);
    /**
     * Optional. Per-container measurements for the given allocations
     * (index with HANGAR_ARRAY_AT(hangar_accel_allocation, allocations, stride, i)).
     * Set container_id in each measure.
     */
    hangar_status (*gather_container_measures)(void *instance, const hangar_accel_allocation *allocations, size_t count, size_t stride,
                                               hangar_accel_measure_sink sink, void *sink_context);

    /* ---- added in ABI 1.2 (absent when struct_size ends before it) ---- */

    /**
     * Optional. Makes the driver-side state an allocation needs before its
     * container starts (MIG GPU and compute instances, NPU core groups) and
     * that container_edits then describes. The agent calls it for every
     * allocation before container_edits, and again after an agent restart
     * for allocations it re-adopts, so it must be idempotent: preparing an
     * allocation that is already prepared returns HANGAR_OK and changes
     * nothing. It refuses what container_edits refuses, with the same
     * statuses, and leaves nothing behind on failure. release() frees what
     * it made; a plugin that sets prepare must set release and
     * HANGAR_ACCEL_CAP_NEEDS_PREPARE.
     */
    hangar_status (*prepare)(void *instance, const hangar_accel_allocation *allocation);
} hangar_accelerator_functions;

#ifdef __cplusplus
}
#endif

#endif /* HANGAR_ACCELERATOR_H */
