/*
 * Hangar plugin support library: header-only helpers on top of the ABI in
 * PluginAPI/include/hangar. Include this (or one part of it) instead of
 * writing last_error buffers, struct_size checks, config reading, device
 * listings and allocation checks by hand. Everything is `static inline`, so
 * a plugin still exports only its entry symbol and links nothing new.
 *
 *   support/core.h         last_error, create() and config, descriptor and entry, text, files
 *   support/accelerator.h  device table, listings, allocation checks, container edits, measures
 *   support/vendor.h       PCI devices in sysfs, vendor libraries (dlopen), vendor tools run
 *                          with a deadline, strict JSON for their output
 *   support/storage.h      folder ids, errno mapping, usage structs
 *   support/scheduling.h   reading scheduler and selector snapshots
 */
#ifndef HANGAR_SUPPORT_H
#define HANGAR_SUPPORT_H

#include <hangar/support/core.h>
#include <hangar/support/accelerator.h>
#include <hangar/support/vendor.h>
#include <hangar/support/scheduling.h>
#include <hangar/support/storage.h>

#endif /* HANGAR_SUPPORT_H */
