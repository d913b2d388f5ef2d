// libFuzzer target: block exchange files (db/block_exchange.h), the path of `blockkv import`.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "db/block_exchange.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bf = blockkv::ParseBlockFile(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!bf.ok()) return 0;
  const auto& p = bf->put;
  const size_t bytes = p.tokens.size() * p.kv_heads * p.head_dim * blockkv::DTypeSize(p.dtype);
  if (p.k.size() != p.num_layers || p.v.size() != p.num_layers) abort();
  unsigned sum = 0;
  for (uint32_t l = 0; l < p.num_layers; ++l)
    for (size_t i = 0; i < bytes; ++i)
      sum += static_cast<const uint8_t*>(p.k[l])[i] + static_cast<const uint8_t*>(p.v[l])[i];
  if (sum == 0xFFFFFFFFu) abort();
  return 0;
}
