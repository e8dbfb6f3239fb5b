// libFuzzer target for the plan loader: any bytes must give a plan or
// diagnostics, never a crash, a hang or a sanitizer report; and a plan that
// loads must survive `plan show` (its YAML loads back to the same plan).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "plan/load.h"
#include "plan/render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = lifeboat::plan::LoadPlanText(text, "fuzz.yaml");
  if (!r.plan) {
    if (!lifeboat::plan::HasErrors(r.diagnostics)) std::abort();  // rejected without saying why
    return 0;
  }
  std::string shown = lifeboat::plan::ToYaml(*r.plan);
  auto again = lifeboat::plan::LoadPlanText(shown, "shown.yaml");
  if (!again.plan || lifeboat::plan::ToJson(*again.plan) != lifeboat::plan::ToJson(*r.plan)) std::abort();
  return 0;
}
