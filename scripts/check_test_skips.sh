#!/usr/bin/env bash
# Fails when a CTest log with every test's output (build/Testing/Temporary/LastTest.log; each CTest test runs a
# GoogleTest suite, which prints "[  SKIPPED ] Suite.Test" for each test it skips) shows a test that skipped for a
# reason other than the machine lacking what it exercises: a GPU, /dev/full, the right to mount a tmpfs or to
# create network namespaces, exact int8 products (oneDNN's int8 kernels, on a CPU with neither AVX2 nor VNNI), and with
# --without-gloo (a build against a pip LibTorch) Gloo, whose headers the wheel lacks (tests/gloo_support.h), and
# integer execution, which its own oneDNN turns off. Any other skip (a real-data test, say) means CI checked less
# than it reports.
#   scripts/check_test_skips.sh LOG [--without-gloo]
set -euo pipefail
log="$1"
environment_skips='Device\.QuantizedTrainingStepOnCudaMatchesCpuForward|AtomicFile\.ShortWriteToAFullDeviceThrows'
environment_skips+='|GpuQuantize\.[A-Za-z0-9]+|GpuTraining\.[A-Za-z0-9]+'  # CUDA kernels and a GPU (docs/gpu.md)
environment_skips+='|FaultInjection\.FullDiskFailsTheSaveLoudlyAndKeepsThePreviousCheckpoint'
environment_skips+='|RunDirectory\.AnOutputDirOnAReadOnlyFileSystemEndsWithItsPathAndExitCode2'
environment_skips+='|DataParallelTwoNodes\.TwoMachinesOnAVethPairTrainLikeTwoRanksOnOne'
# Integer execution's passes run on every CPU in the tests (plain loops stand in for oneDNN's products); what needs
# oneDNN's exact int8 kernels (docs/integer.md: 8-bit dot products, or AVX2 up to 7 bits) is the comparison with
# those loops and a real training run.
integer_kernel_skips='|IntegerConv\.OneDnnProductsEqualThePlainLoops|TrainEndToEnd\.IntegerExecutionLearnsFashionMnist'
if ! grep -qwE 'avx512_vnni|avx_vnni|amx_int8|avx2' /proc/cpuinfo; then
  environment_skips+="$integer_kernel_skips"
fi
if ! grep -qw avx512f /proc/cpuinfo; then  # the corrections' AVX-512 form on the hardware (SIMDe's test runs it too)
  environment_skips+='|IntegerCorrections\.VectorisedEqualsPortableBitForBit'
fi
if ! grep -qw avx2 /proc/cpuinfo; then  # the corrections' AVX2 form
  environment_skips+='|IntegerCorrections\.Avx2FormEqualsPortableBitForBit'
fi
if ! grep -qw avx512_vnni /proc/cpuinfo; then  # the own weight-gradient kernel's vector form (docs/integer.md)
  environment_skips+='|IntegerWeightKernel\.Avx512VnniFormEqualsThePortableForm'
fi
if [[ "${2:-}" == --without-gloo ]]; then
  environment_skips+='|DataParallel[A-Za-z]*\.[A-Za-z0-9]+|DistProcessGroup\.[A-Za-z0-9]+'
  # The same pip LibTorch carries its own oneDNN, whose internals interpose on libdnnl's: integer execution is off
  # there (src/integer/integer_support.cpp says why).
  environment_skips+="$integer_kernel_skips"
fi
[[ -s "$log" ]] || { echo "error: $log is missing or empty: run ctest first" >&2; exit 1; }
skipped=$(sed -nE 's/^\[  SKIPPED \] ([A-Za-z0-9_/]+\.[A-Za-z0-9_/]+).*/\1/p' "$log" | sort -u)
unexpected_skips=$(grep -Evx "${environment_skips}" <<< "$skipped" || true)
if [[ -n "$unexpected_skips" ]]; then
  echo "error: these tests skipped ($log), and only the environment-dependent ones may:" >&2
  echo "$unexpected_skips" >&2
  exit 1
fi
