/*
 * fake_furiosa_smi.c built so that furiosa_smi_init fails with
 * FURIOSA_SMI_RETURN_CODE_INCOMPATIBLE_DRIVER_ERROR, as the real library does when the RNGD
 * kernel driver is missing or does not match it. case.json builds it as its own library (the
 * test builds each {build:...} source with cc and no extra flags).
 */
#define FAKE_FURIOSA_SMI_INIT_FAILS 1
#include "fake_furiosa_smi.c"
