/*
 * Hangar plugin ABI v1 — umbrella header. Include this, or only the header of
 * the kind you implement (each pulls in plugin.h).
 */
#ifndef HANGAR_HANGAR_H
#define HANGAR_HANGAR_H

#include "plugin.h"
#include "accelerator.h"
#include "storage.h"
#include "scheduler.h"

#endif /* HANGAR_HANGAR_H */
