#pragma once
// How a quantized layer computes its three passes (DESIGN.md 6: "execution is a choice, semantics are not"), and
// the one quantization choice an execution can need that the paper's granularity does not provide.
#include <string>

#include "fractrain/util/name_table.h"

namespace fractrain {

// simulated: the float op on fake-quantized FP32 values (the reference). integer: exact 32-bit integer sums on
// the integer codes (int8 oneDNN primitives on a CPU with VNNI or AMX; src/integer), then scales and zero-point
// corrections; a pass with an operand wider than 8 bits, or a layer kind without an integer kernel, runs
// simulated. Integer execution needs snapped zero points and ErrorWeightRanges::PerInputChannel.
enum class ExecutionMode { Simulated, Integer };

// The weight that the error backward (dX = Q(dY) * Q(W)) multiplies. per_output_channel: the forward's quantized
// weight, one range per output channel (the paper's). per_input_channel: the same FP32 weight quantized with one
// range per input channel, whose scale is constant along dX's sum over output channels and so factors out of an
// integer sum (as int8 training systems do). The forward and the weight gradient are not affected.
enum class ErrorWeightRanges { PerOutputChannel, PerInputChannel };

const NameTable<ExecutionMode>& execution_mode_names();        // simulated, integer
const NameTable<ErrorWeightRanges>& error_weight_ranges_names();  // per_output_channel, per_input_channel
inline const std::string& to_string(ExecutionMode e) { return execution_mode_names().name(e); }
inline const std::string& to_string(ErrorWeightRanges r) { return error_weight_ranges_names().name(r); }

}  // namespace fractrain
