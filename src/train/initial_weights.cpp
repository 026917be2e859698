#include "fractrain/train/initial_weights.h"

#include <torch/serialize/input-archive.h>
#include <torch/torch.h>

#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "fractrain/train/checkpoint_file.h"
#include "fractrain/train/trainer.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;

std::string resolve_checkpoint(const std::string& from) {
  if (from.empty()) throw Error("train.init_from is empty: name a checkpoint file or a run's output dir");
  if (fs::is_directory(from)) {
    const std::string last = last_checkpoint_path(from);
    if (!fs::exists(last))
      throw Error("train.init_from = '" + from + "' is a directory without " + last +
                  ": name a finished run's output dir or a .ckpt file");
    return last;
  }
  if (!fs::exists(from))
    throw Error("train.init_from = '" + from + "' does not exist: name a checkpoint file or a run's output dir");
  return from;
}

// Walks the module tree as torch::nn::Module::load does (one nested archive per child module), but tolerates
// names the archive lacks: the target may have more modules than the source (a gated model from a plain one).
void load_matching(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& prefix,
                   const std::string& file, InitialWeightsReport& report) {
  auto copy = [&](const std::string& name, at::Tensor& target, bool is_buffer) {
    at::Tensor stored;
    if (!archive.try_read(name, stored, is_buffer)) {
      report.kept.push_back(prefix + name);
      return;
    }
    if (stored.sizes() != target.sizes())
      throw Error(fmt::format("{}: {} has shape [{}] there but [{}] in this model (another number of classes or "
                              "another architecture?); train.init_from needs the same model and data shape",
                              file, prefix + name, fmt::join(stored.sizes(), ", "), fmt::join(target.sizes(), ", ")));
    torch::NoGradGuard no_grad;
    target.copy_(stored);
    report.loaded.push_back(prefix + name);
  };
  for (auto& p : module.named_parameters(/*recurse=*/false)) copy(p.key(), p.value(), false);
  for (auto& b : module.named_buffers(/*recurse=*/false)) copy(b.key(), b.value(), true);
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    if (archive.try_read(child.key(), child_archive)) {
      load_matching(*child.value(), child_archive, prefix + child.key() + ".", file, report);
    } else {
      for (const auto& p : child.value()->named_parameters()) report.kept.push_back(prefix + child.key() + "." + p.key());
      for (const auto& b : child.value()->named_buffers()) report.kept.push_back(prefix + child.key() + "." + b.key());
    }
  }
}

}  // namespace

InitialWeightsReport load_initial_weights(const std::string& from, QuantizedModel& model) {
  InitialWeightsReport report;
  report.checkpoint = resolve_checkpoint(from);
  const std::string device = model.parameters().empty() ? "" : model.parameters()[0].device().str();
  const CheckpointMeta meta = load_checkpoint(
      report.checkpoint, model.model_name(),
      [&](torch::serialize::InputArchive& archive) {
        torch::serialize::InputArchive model_archive;
        archive.read("model", model_archive);
        load_matching(model, model_archive, "", report.checkpoint, report);
      },
      device);
  report.source_model = meta.model_name;
  if (report.loaded.empty())
    throw Error(report.checkpoint + ": no parameter of this model is in the checkpoint; train.init_from needs a "
                "checkpoint of the same architecture");
  return report;
}

}  // namespace fractrain
