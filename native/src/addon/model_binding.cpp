// Node-API binding of the model, context and sampler (filled in as the engine's model API lands).
#include <napi.h>

#include "addon/bindings.h"

namespace hcattn::addon {

void register_model(Napi::Env env, Napi::Object exports) {}

}  // namespace hcattn::addon
