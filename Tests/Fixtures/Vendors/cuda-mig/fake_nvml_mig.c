/*
 * The cuda-mig fixture's libnvidia-ml.so.1: the fake NVML of Tests/Fixtures/FakeNVML
 * built as its MIG machine (three A100-SXM4-40GB: GPU 0 in MIG mode with two 3g.20gb MIG
 * devices, GPU 1 whole, GPU 2 lost; see fake_nvml.c). The vendor fixtures build a source
 * file without defines or environment, so the switch is made here.
 */
#define FAKE_NVML_MIG 1
#include "../../FakeNVML/fake_nvml.c"
