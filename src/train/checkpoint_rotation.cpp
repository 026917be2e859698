#include "fractrain/train/checkpoint_rotation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "fractrain/train/trainer.h"

namespace fractrain {

namespace fs = std::filesystem;

void keep_step_checkpoints(const std::string& output_dir, int64_t step, int64_t keep) {
  if (keep <= 1) return;
  const std::string last = last_checkpoint_path(output_dir);
  const fs::path dir = fs::path(output_dir) / "checkpoints";
  const fs::path kept = dir / fmt::format("step-{:08d}.ckpt", step);
  std::error_code error;
  fs::remove(kept, error);
  fs::create_hard_link(last, kept, error);
  if (error) std::printf("note: cannot keep %s: %s\n", kept.c_str(), error.message().c_str());
  std::vector<fs::path> steps;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind("step-", 0) == 0) steps.push_back(entry.path());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i) fs::remove(steps[i], error);
}

}  // namespace fractrain
