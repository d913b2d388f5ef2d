// libFuzzer target: config.json (attention/model_config.h). Accepted configs must be self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "attention/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = blockkv::ParseModelConfig(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!c.ok()) return 0;
  if (c->num_layers <= 0 || c->num_heads <= 0 || c->num_kv_heads <= 0 || c->head_dim <= 0 ||
      c->vocab_size <= 0 || c->num_heads % c->num_kv_heads != 0)
    abort();
  (void)c->CanonicalString();
  return 0;
}
