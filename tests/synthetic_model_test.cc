// Synthetic models: presets, determinism, and weights that make a well-conditioned forward pass.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

#include "tests/attention_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

BOOST_AUTO_TEST_SUITE(synthetic_model)

// The residual stream keeps an RMS of order 1 through every layer, and the logits are spread: not
// NaN, not constant, and the softmax is neither one-hot nor flat.
BOOST_DATA_TEST_CASE(forward_is_well_conditioned,
                     bdata::make(std::vector<std::string>{"tiny", "small"}) *
                         bdata::make(SyntheticArchNames()),
                     preset, arch) {
  auto spec = SyntheticPreset(preset, arch);
  BOOST_REQUIRE(spec.ok());
  spec->seed = 42;
  auto m = MakeModel(*spec);
  const Runtime& rt = *m->runtime;
  TestRng rng(8);
  const int64_t T = 24;
  const std::vector<int32_t> tokens = rng.Tokens(T, rt.vocab_size());
  std::vector<double> rms;
  auto logits = ReferenceForward(rt.model(), tokens, Iota(T), CausalMask(T), &rms);
  BOOST_REQUIRE(logits.ok());
  BOOST_REQUIRE_EQUAL(rms.size(), static_cast<size_t>(rt.num_layers() + 1));
  for (size_t l = 0; l < rms.size(); ++l) {
    BOOST_TEST_MESSAGE(preset << "/" << arch << " residual RMS after layer " << l << ": "
                              << rms[l]);
    BOOST_TEST(rms[l] > 0.05, "layer " << l);
    BOOST_TEST(rms[l] < 10.0, "layer " << l);
  }
  const int V = rt.vocab_size();
  int one_hot_rows = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* row = logits->data() + t * V;
    double mx = -1e30, mn = 1e30, sum = 0;
    for (int i = 0; i < V; ++i) {
      BOOST_REQUIRE(std::isfinite(row[i]));
      mx = std::max<double>(mx, row[i]);
      mn = std::min<double>(mn, row[i]);
    }
    for (int i = 0; i < V; ++i) sum += std::exp(row[i] - mx);
    const double p_max = 1.0 / sum;
    BOOST_TEST(mx - mn > 1.0);    // not all equal
    BOOST_TEST(p_max > 2.0 / V);  // not flat
    one_hot_rows += p_max > 0.99;
  }
  BOOST_TEST(one_hot_rows < T / 2);
}

BOOST_AUTO_TEST_CASE(presets_and_determinism) {
  TempDir tmp;
  auto spec = SyntheticPreset("tiny", "mistral");
  BOOST_REQUIRE(spec.ok());
  BOOST_REQUIRE(WriteSyntheticModel(*spec, tmp.str("a")).ok());
  BOOST_REQUIRE(WriteSyntheticModel(*spec, tmp.str("b")).ok());
  BOOST_TEST(ReadFile(tmp.str("a/model.safetensors")) == ReadFile(tmp.str("b/model.safetensors")));
  BOOST_TEST(ReadFile(tmp.str("a/config.json")) == ReadFile(tmp.str("b/config.json")));
  BOOST_TEST(std::filesystem::exists(tmp.str("a/generation_config.json")));

  auto llama = SyntheticPreset("llama-3.1-8b");
  BOOST_REQUIRE(llama.ok());
  auto c = ParseModelConfig(SyntheticConfigJson(*llama), "llama");
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->num_layers == 32);
  BOOST_TEST(c->num_kv_heads == 8);
  BOOST_TEST(c->vocab_size == 128256);
  BOOST_TEST((c->rope.type == RopeConfig::Type::kLlama3));
  auto qwen = SyntheticPreset("qwen2-7b", "qwen2");
  BOOST_REQUIRE(qwen.ok());
  BOOST_TEST(qwen->hidden_size == 3584);
  BOOST_TEST(SyntheticPreset("llama-2-7b", "qwen2").status().IsInvalidArgument());
  BOOST_TEST(SyntheticPreset("huge").status().IsInvalidArgument());
  BOOST_TEST(SyntheticPreset("tiny", "gpt2").status().IsInvalidArgument());
  for (const std::string& p : SyntheticPresetNames()) BOOST_TEST(SyntheticPreset(p).ok(), p);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
