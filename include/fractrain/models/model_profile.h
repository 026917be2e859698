#pragma once
// Measuring a model's cost profile (cost/layer_profile.h): the model zoo runs the model once and records what each
// quantized layer executed and reports about its operands; the cost module only turns those reports into sizes.
// This walk lives here, not in cost/, so that cost depends on layers' reports and on no model.
#include "fractrain/cost/layer_profile.h"
#include "fractrain/models/quantized_model.h"

namespace fractrain {

// Runs one FP32 forward pass of a single zero input (example_input: an image or a token sequence; eval mode, no
// gradients) and records every quantized layer in execution order, with its role in the network (stem, block,
// head, classifier). Leaves the model's train/eval mode as it was and detaches any cost observer.
//
// A convolution's input size is taken as in_channels x (positions x stride^2): exact whenever the input's height
// and width are multiples of the stride (every model of the zoo at 32x32, 28x28 and 224x224).
ModelProfile profile_model(QuantizedModel& model, const ModelInputSpec& input);

}  // namespace fractrain
