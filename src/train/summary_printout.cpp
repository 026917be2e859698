#include "fractrain/train/summary_printout.h"

#include <fmt/format.h>

#include <cstdio>

#include "fractrain/cost/cost_report.h"
#include "fractrain/train/progress.h"

namespace fractrain {
namespace {

// "test  accuracy ..." or, for a language model, "valid  perplexity ...".
std::string evaluation_line(const RunSummary& s) {
  if (s.language_model) {
    const LanguageModelSummary& lm = *s.language_model;
    if (!lm.final_test_perplexity || !lm.best_test_perplexity) return "valid        not evaluated in this session\n";
    return fmt::format("valid        perplexity {:.2f}  loss {:.4f}  token accuracy {:.2f}%   (best perplexity {:.2f} at "
                       "step {})\n",
                       *lm.final_test_perplexity, s.final_test_loss, 100.0 * s.final_test_accuracy,
                       *lm.best_test_perplexity, s.best_step);
  }
  return fmt::format("test         accuracy {:.2f}%  loss {:.4f}   (best {:.2f}% at step {})\n",
                     100.0 * s.final_test_accuracy, s.final_test_loss, 100.0 * s.best_test_accuracy, s.best_step);
}

}  // namespace

void print_run_summary(const RunSummary& s, const CostMeter& meter) {
  std::printf(
      "\n== fractrain run summary ==\n"
      "model        %s on %s (%lld train / %lld test samples, %lld parameters)\n"
      "precision    %s\n"
      "steps        %lld of %lld (%.2f epochs)%s\n"
      "%s"
      "time         %s training, %.0f images/s on %s with %d threads\n"
      "output       %s/{summary.json,metrics.csv,metrics.jsonl,training_curves.png,checkpoints/}\n",
      s.model.c_str(), s.dataset.c_str(), (long long)s.train_samples, (long long)s.test_samples,
      (long long)s.parameters, s.precision.c_str(), (long long)s.steps, (long long)s.total_steps, s.epochs,
      s.interrupted ? " INTERRUPTED (resume with --resume)" : "", evaluation_line(s).c_str(),
      ProgressLine::format_duration(s.train_seconds).c_str(), s.images_per_second, s.device.c_str(), s.threads,
      s.output_dir.c_str());
  if (const auto folder = s.image_folder())
    std::printf("data         %s: %zu classes; corrupt files skipped: %lld train, %lld test\n", folder->dir.c_str(),
                folder->classes, (long long)folder->skipped_corrupt_train, (long long)folder->skipped_corrupt_test);
  std::printf("cost         bit-weighted MACs, energy and latency on %s (docs/cost.md)\n%s",
              meter.hardware().name.c_str(), format_cost_comparison(run_comparison(meter)).c_str());
  const std::vector<StageSummary> stages = s.stage_summaries();
  if (stages.size() < 2) return;
  std::printf("stages       %s: cost spent in each stage\n", s.precision.c_str());
  for (const auto& stage : stages)
    std::printf("  stage %d  %-9s steps %lld..%lld  cp %.2f%%  bit-MACs %.3e\n", stage.stage, stage.precision.c_str(),
                (long long)stage.first_step, (long long)(stage.first_step + stage.steps), stage.cost.cp_percent,
                stage.cost.bit_macs);
}

}  // namespace fractrain
