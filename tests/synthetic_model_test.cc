// Synthetic models: presets, determinism, and weights that make a well-conditioned forward pass.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

#include "db/safetensors.h"
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

// A tensor of many 1M-element random streams, generated a group of streams at a time: every stream
// is present (none zero or repeated) and standard normal.
BOOST_AUTO_TEST_CASE(large_tensors_are_streamed_in_chunks) {
  TempDir tmp;
  SyntheticModelSpec spec = TinySpec("llama2", DType::kF32, 3);
  spec.num_layers = 1;
  spec.vocab_size = 40000;  // embed: 2.56M elements, 3 streams; lm_head the same
  spec.hidden_size = 64;
  BOOST_REQUIRE(WriteSyntheticModel(spec, tmp.str("m")).ok());
  spec.vocab_size = 160000;  // 10.24M elements: 10 streams, more than one group on <= 2 threads
  BOOST_REQUIRE(WriteSyntheticModel(spec, tmp.str("big")).ok());
  auto reader = SafetensorsReader::Open(tmp.str("big/model.safetensors"));
  BOOST_REQUIRE(reader.ok());
  auto embed = (*reader)->Get("model.embed_tokens.weight");
  BOOST_REQUIRE(embed.ok());
  const float* e = reinterpret_cast<const float*>((*embed)->data);
  const int64_t n = (*embed)->numel(), chunk = 1 << 20;
  BOOST_REQUIRE_EQUAL(n, 160000 * 64);
  for (int64_t c = 0; c * chunk < n; ++c) {
    const int64_t len = std::min(chunk, n - c * chunk);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < len; ++i) {
      sum += e[c * chunk + i];
      sq += double(e[c * chunk + i]) * e[c * chunk + i];
    }
    const double mean = sum / len, sd = std::sqrt(sq / len - mean * mean);
    BOOST_TEST(std::fabs(mean) < 0.01, "stream " << c);
    BOOST_TEST(std::fabs(sd - 1.0) < 0.01, "stream " << c);
    if (c > 0) BOOST_TEST(e[c * chunk] != e[(c - 1) * chunk], "stream " << c);
  }
  // The first streams do not depend on the tensor's size.
  auto small = SafetensorsReader::Open(tmp.str("m/model.safetensors"));
  BOOST_REQUIRE(small.ok());
  const float* s =
      reinterpret_cast<const float*>((*(*small)->Get("model.embed_tokens.weight"))->data);
  BOOST_TEST(std::equal(s, s + 2 * chunk, e));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
