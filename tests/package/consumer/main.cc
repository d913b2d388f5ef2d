// Uses the installed library's public API end to end: writes a small synthetic model, opens a store,
// answers a prompt twice through one Engine with a host tier (passages encoded, stored, then served from the
// tier), and checks the answers agree. Prints one line; exits non-zero on any failure.
#include <cstdio>
#include <filesystem>
#include <string>

#include "attention/engine.h"
#include "attention/runtime.h"
#include "attention/synthetic_model.h"
#include "db/block_store.h"
#include "db/version.h"

namespace {

int Die(const std::string& what, const blockkv::Status& s) {
  std::fprintf(stderr, "consumer: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer WORKDIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  auto spec = blockkv::SyntheticPreset("tiny");
  if (!spec.ok()) return Die("preset", spec.status());
  if (auto s = blockkv::WriteSyntheticModel(*spec, dir + "/model"); !s.ok()) return Die("model", s);
  auto runtime = blockkv::Runtime::Open(dir + "/model");
  if (!runtime.ok()) return Die("runtime", runtime.status());
  auto store = blockkv::BlockStore::Open(dir + "/store", {});
  if (!store.ok()) return Die("store", store.status());

  blockkv::EngineOptions options;
  options.host_tier_bytes = 16 << 20;
  blockkv::Engine engine(runtime->get(), store->get(), options);
  blockkv::EngineRequest request;
  request.blocks.push_back({{5, 6, 7, 8, 9}, "alpha"});
  request.blocks.push_back({{20, 21, 22}, "beta"});
  request.final_tokens = {30, 31};
  request.decode.max_new_tokens = 4;
  auto first = engine.Run(request);
  if (!first.ok()) return Die("first run", first.status());
  auto second = engine.Run(request);
  if (!second.ok()) return Die("second run", second.status());
  const bool same = first->tokens == second->tokens && first->logits == second->logits;
  const bool tiered = second->block_source[0] == blockkv::BlockSource::kHost;
  std::printf("blockkv %s: %zu tokens, first run %d misses, second run from the %s tier, answers %s\n",
              blockkv::Version(), second->tokens.size(), first->timing.misses,
              blockkv::BlockSourceName(second->block_source[0]), same ? "equal" : "DIFFERENT");
  return same && tiered && first->timing.misses == 2 ? 0 : 1;
}
