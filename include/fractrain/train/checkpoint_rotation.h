#pragma once
// train.keep_checkpoints = N > 1: besides last.ckpt, the newest N step checkpoints stay in the run directory.
#include <cstdint>
#include <string>

namespace fractrain {

// Call right after last.ckpt of step `step` was written. Gives it a hard link checkpoints/step-NNNNNNNN.ckpt
// (no second write: the next atomic replacement of last.ckpt leaves the link holding this one) and removes all
// but the newest `keep` such links. Nothing for keep <= 1. A link that cannot be made is a printed note, not an
// error: last.ckpt is safe either way.
void keep_step_checkpoints(const std::string& output_dir, int64_t step, int64_t keep);

}  // namespace fractrain
