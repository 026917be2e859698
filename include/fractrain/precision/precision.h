#pragma once
// A precision is data: every quantized layer executes whatever precision it is handed.
#include <string>

namespace fractrain {

// Bit widths of one layer execution. 0 bits means "full precision" (FP32, not quantized).
// `skip` means the block is not computed at all (its output is the shortcut); used by gated blocks.
struct Precision {
  int act = 0;
  int weight = 0;
  int grad = 0;
  bool skip = false;

  static Precision full() { return {}; }
  // The FW-n/BW-m notation of the paper: weights and activations at n bits, gradients at m bits.
  static Precision fw_bw(int fw, int bw) { return Precision{fw, fw, bw, false}; }

  bool is_full() const { return act == 0 && weight == 0 && grad == 0 && !skip; }
  bool operator==(const Precision& o) const {
    return act == o.act && weight == o.weight && grad == o.grad && skip == o.skip;
  }
  bool operator!=(const Precision& o) const { return !(*this == o); }
};

// "fp32", "fw8bw8", "a4w4g8", "skip".
std::string to_string(const Precision& p);

// Parses "fp32", "fw8bw16", "fw8/bw16", "FW-8/BW-16". Throws fractrain::Error naming the text otherwise.
Precision parse_precision(const std::string& text);

// Throws fractrain::Error unless bits is 0 (full precision) or 1..32. `what` names the field in the message.
void check_bits(int bits, const std::string& what);

}  // namespace fractrain
