#pragma once
// Tests whose ranks run as processes over Gloo skip, naming why, in a build that has no Gloo: one against a pip
// LibTorch 2.x, whose wheel ships no Gloo headers (its data parallelism is NCCL only, docs/distributed.md).
// scripts/torch2_test.sh accepts exactly these skips in that build.
#include <gtest/gtest.h>

#include "fractrain/dist/process_group.h"

#define SKIP_WITHOUT_GLOO()                                                                                       \
  if (!fractrain::process_group_backend_available("gloo"))                                                        \
  GTEST_SKIP() << "this build has no Gloo (its LibTorch ships no Gloo headers, e.g. a pip wheel): ranks cannot "  \
                  "connect on CPUs"
