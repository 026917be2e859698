#pragma once
// What a quantized layer reports about its operands so that the cost model can size them. These are plain values
// the cost module defines and the layers fill in: cost learns sizes from what layers report, never by knowing
// (or casting to) layer classes, and the layers need nothing of cost beyond these structs and the observer hook.
#include <cstdint>
#include <vector>

namespace fractrain {

// A layer with weights (a convolution of any groups, a linear layer). Its MACs per sample, measured by running
// it, equal weight elements x output positions; together with this geometry they size every operand.
struct WeightedLayerGeometry {
  std::vector<int64_t> weight_shape;
  int64_t output_channels = 0;
  // Input elements read per output position: in_channels x stride^2 for a convolution (exact whenever the input's
  // height and width are multiples of the stride), in_features for a linear layer.
  int64_t input_elements_per_position = 0;
};

// An activation-by-activation matmul (attention): no weights; both operands are activations of the sample,
// sized by the layer's last forward pass.
struct ActivationMatmulSizes {
  int64_t operand_elements = 0;  // per sample, the two operands together
  int64_t output_elements = 0;   // per sample
};

}  // namespace fractrain
