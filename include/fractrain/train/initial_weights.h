#pragma once
// Starting a run from another run's weights (train.init_from): the pretraining step of the adaptation and
// fine-tuning settings (DESIGN.md 4.10), and of any user's transfer learning.
#include <string>
#include <vector>

#include "fractrain/models/quantized_model.h"

namespace fractrain {

struct InitialWeightsReport {
  std::string checkpoint;             // the file the weights came from
  std::string source_model;           // the model name stored in it
  std::vector<std::string> loaded;    // parameter and buffer names copied
  std::vector<std::string> kept;      // names the checkpoint lacks, left at their initialisation (DFQ gates)
};

// `from` is a checkpoint file or a run's output dir (then OUTPUT_DIR/checkpoints/last.ckpt). Copies every
// parameter and buffer of `model` that the checkpoint's model state holds under the same name. Only the
// weights: the optimizer, schedule, precision controller and cost of the source run are not carried over.
// Throws fractrain::Error naming the file when it is missing or damaged, when it holds another model
// architecture, when a matched tensor has another shape (e.g. a head for another number of classes), or when
// no parameter matches at all.
InitialWeightsReport load_initial_weights(const std::string& from, QuantizedModel& model);

}  // namespace fractrain
