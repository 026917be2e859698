#include "fractrain/precision/precision_mode.h"

namespace fractrain {

const NameTable<PrecisionMode>& precision_mode_names() {
  static const NameTable<PrecisionMode> table("precision mode", {{PrecisionMode::Static, "static"},
                                                                 {PrecisionMode::PfqManual, "pfq-manual"},
                                                                 {PrecisionMode::PfqAuto, "pfq-auto"},
                                                                 {PrecisionMode::Dfq, "dfq"},
                                                                 {PrecisionMode::FracTrain, "fractrain"}});
  return table;
}

}  // namespace fractrain
