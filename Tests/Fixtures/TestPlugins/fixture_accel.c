/*
 * A configurable accelerator plugin for the plugin host's tests. Each test builds it with
 * `cc -shared` and a few -D switches to get one specific defect (or none):
 *
 *   FIXTURE_NAME="x"          descriptor name / device key (default "fixture")
 *   FIXTURE_NO_ENTRY          export no entry symbol
 *   FIXTURE_ABI_MAJOR=n       claim another ABI major
 *   FIXTURE_NO_LIST_DEVICES   leave a required function NULL
 *   FIXTURE_SLOT="x.device"   declare a slot name (e.g. one not prefixed by the key)
 *   FIXTURE_CREATE_FAILS      create() fails with a message
 *   FIXTURE_OLD_MINOR         descriptor of ABI 1.0: struct_size ends before `homepage`
 */
#include <hangar/accelerator.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURE_NAME
#define FIXTURE_NAME "fixture"
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR HANGAR_ABI_MAJOR
#endif
#ifndef FIXTURE_SLOT
#define FIXTURE_SLOT FIXTURE_NAME ".device"
#endif

typedef struct { char error[256]; } fixture_t;

static hangar_status fx_create(const hangar_host_services *host, const char *config, void **out, char *err, size_t err_len) {
    (void)host; (void)config;
#ifdef FIXTURE_CREATE_FAILS
    snprintf(err, err_len, "fixture driver missing: /dev/fixture0 does not exist; load the fixture kernel module");
    (void)out;
    return HANGAR_E_DRIVER_UNAVAILABLE;
#else
    (void)err; (void)err_len;
    fixture_t *f = calloc(1, sizeof *f);
    if (!f) return HANGAR_E_INSUFFICIENT;
    *out = f;
    return HANGAR_OK;
#endif
}

static void fx_destroy(void *instance) { free(instance); }

static size_t fx_last_error(void *instance, char *buf, size_t len) {
    fixture_t *f = instance;
    size_t n = strlen(f->error);
    if (buf && len) snprintf(buf, len, "%s", f->error);
    return n;
}

static hangar_status fx_get_info(void *instance, hangar_accel_info *info) {
    (void)instance;
    if (!info) return HANGAR_E_INVALID_ARGUMENT;
    info->device_key = FIXTURE_NAME;
    return HANGAR_OK;
}

__attribute__((unused)) static hangar_status fx_list_devices(void *instance, hangar_accel_device_sink sink, void *ctx) {
    (void)instance;
    hangar_accel_device d = { sizeof d, "0", "Fixture Device", NULL, NULL, 1u << 30, 4, 0, HANGAR_HEALTH_HEALTHY, NULL };
    return sink(ctx, &d);
}

static hangar_status fx_list_slots(void *instance, hangar_accel_slot_sink sink, void *ctx) {
    (void)instance;
    hangar_accel_slot s = { sizeof s, FIXTURE_SLOT, HANGAR_SLOT_COUNT, HANGAR_ALLOC_DISCRETE, 0, HANGAR_AMOUNT_SCALE, 1, NULL, NULL };
    return sink(ctx, &s);
}

static hangar_status fx_list_device_slots(void *instance, hangar_accel_device_slot_sink sink, void *ctx) {
    (void)instance;
    hangar_accel_device_slot e = { sizeof e, FIXTURE_SLOT, "0", HANGAR_AMOUNT_SCALE };
    return sink(ctx, &e);
}

static hangar_status fx_container_edits(void *instance, const hangar_accel_allocation *a, const hangar_container_edits *e) {
    fixture_t *f = instance;
    if (!a || !e) return HANGAR_E_INVALID_ARGUMENT;
    for (size_t i = 0; i < a->entry_count; i++) {
        const hangar_accel_alloc_entry *en = HANGAR_ARRAY_AT(hangar_accel_alloc_entry, a->entries, a->entry_stride, i);
        if (strcmp(en->device_id, "0") != 0) {
            snprintf(f->error, sizeof f->error, "unknown device '%s'", en->device_id);
            return HANGAR_E_NOT_FOUND;
        }
    }
    return e->add_env(e->context, "FIXTURE_VISIBLE_DEVICES", "0");
}

static const hangar_accelerator_functions functions = {
    .struct_size = sizeof(hangar_accelerator_functions),
    .create = fx_create,
    .destroy = fx_destroy,
    .last_error = fx_last_error,
    .get_info = fx_get_info,
#ifndef FIXTURE_NO_LIST_DEVICES
    .list_devices = fx_list_devices,
#endif
    .list_slots = fx_list_slots,
    .list_device_slots = fx_list_device_slots,
    .container_edits = fx_container_edits,
};

static const char *const slot_names[] = { FIXTURE_SLOT, NULL };

static const hangar_plugin_descriptor descriptor = {
#ifdef FIXTURE_OLD_MINOR
    .struct_size = (uint32_t)offsetof(hangar_plugin_descriptor, homepage),
    .abi_minor = 0,
#else
    .struct_size = sizeof(hangar_plugin_descriptor),
    .abi_minor = HANGAR_ABI_MINOR,
    .homepage = "https://example.invalid/fixture",
#endif
    .abi_major = FIXTURE_ABI_MAJOR,
    .kind = HANGAR_KIND_ACCELERATOR,
    .thread_safety = 0,
    .capabilities = 0,
    .name = FIXTURE_NAME,
    .vendor = "Hangar tests",
    .version = "0.0.1",
    .description = "test fixture",
    .license = "Apache-2.0",
    .config_schema = NULL,
    .static_slot_names = slot_names,
    .functions = &functions,
};

#ifndef FIXTURE_NO_ENTRY
HANGAR_EXPORT const hangar_plugin_descriptor *hangar_plugin_entry_v1(uint32_t host_abi_version) {
    (void)host_abi_version;
    return &descriptor;
}
#else
HANGAR_EXPORT const hangar_plugin_descriptor *some_other_symbol(void) { return &descriptor; }
#endif
