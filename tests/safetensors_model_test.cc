// Loading HF model directories: single and sharded safetensors, dtypes, the fingerprint, and errors
// that name the tensor and the file.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

#include "attention/model.h"
#include "tests/attention_test_util.h"

namespace blockkv::testing {
namespace {

namespace bdata = boost::unit_test::data;
namespace fs = std::filesystem;

Status WriteModel(const SyntheticModelSpec& spec, const std::string& dir) {
  return WriteSyntheticModel(spec, dir);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

BOOST_AUTO_TEST_SUITE(safetensors_model)

BOOST_DATA_TEST_CASE(weights_load_as_stored_in_every_dtype,
                     bdata::make({DType::kF32, DType::kF16, DType::kBF16}), dtype) {
  TempDir tmp;
  const SyntheticModelSpec spec = TinySpec("qwen2", dtype, 3);
  BOOST_REQUIRE(WriteModel(spec, tmp.str("m")).ok());
  auto model = Model::Load(tmp.str("m"));
  BOOST_REQUIRE_MESSAGE(model.ok(), model.status().ToString());
  auto reader = SafetensorsReader::Open(tmp.str("m/model.safetensors"));
  BOOST_REQUIRE(reader.ok());
  // Every loaded float equals the stored element converted exactly.
  auto check = [&](const std::string& name, const std::vector<float>& loaded) {
    auto v = (*reader)->Get(name);
    BOOST_REQUIRE_MESSAGE(v.ok(), name);
    BOOST_REQUIRE(((*v)->dtype == dtype));
    std::vector<float> want((*v)->numel());
    ToFloat(dtype, (*v)->data, want.data(), want.size());
    BOOST_TEST(loaded == want, name);
  };
  check("model.embed_tokens.weight", (*model)->embed());
  check("model.layers.1.self_attn.k_proj.bias", (*model)->layer(1).bk);
  check("model.layers.0.mlp.down_proj.weight", (*model)->layer(0).w_down);
  check("model.norm.weight", (*model)->final_norm());
  // Qwen2 tiny ties the LM head to the embeddings: no lm_head tensor is stored.
  BOOST_TEST(!(*reader)->Get("lm_head.weight").ok());
  BOOST_TEST((*model)->lm_head() == (*model)->embed());
}

BOOST_AUTO_TEST_CASE(sharded_equals_single_file) {
  TempDir tmp;
  SyntheticModelSpec spec = TinySpec("llama3", DType::kBF16, 5);
  BOOST_REQUIRE(WriteModel(spec, tmp.str("single")).ok());
  spec.max_shard_bytes = 40000;
  BOOST_REQUIRE(WriteModel(spec, tmp.str("sharded")).ok());
  BOOST_TEST(!fs::exists(tmp.str("sharded/model.safetensors")));
  BOOST_TEST(fs::exists(tmp.str("sharded/model.safetensors.index.json")));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(tmp.str("sharded"))) {
    shards += e.path().filename().string().ends_with(".safetensors");
  }
  BOOST_TEST(shards > 2);
  auto a = Runtime::Open(tmp.str("single"));
  auto b = Runtime::Open(tmp.str("sharded"));
  BOOST_REQUIRE_MESSAGE(a.ok(), a.status().ToString());
  BOOST_REQUIRE_MESSAGE(b.ok(), b.status().ToString());
  BOOST_TEST((*a)->fingerprint() == (*b)->fingerprint());
  TestRng rng(1);
  const std::vector<int32_t> tokens = rng.Tokens(10, 256);
  BOOST_TEST((*a)->PrefillFull(tokens)->logits == (*b)->PrefillFull(tokens)->logits);
  auto fp = FingerprintModelDir(tmp.str("sharded"));
  BOOST_REQUIRE(fp.ok());
  BOOST_TEST(*fp == (*a)->fingerprint());
}

BOOST_AUTO_TEST_CASE(fingerprint_tracks_weights_dtype_and_config) {
  TempDir tmp;
  auto fp = [&](const SyntheticModelSpec& spec, const std::string& name) {
    BOOST_REQUIRE(WriteModel(spec, tmp.str(name)).ok());
    auto f = FingerprintModelDir(tmp.str(name));
    BOOST_REQUIRE_MESSAGE(f.ok(), f.status().ToString());
    return *f;
  };
  const SyntheticModelSpec base = TinySpec("llama3", DType::kBF16, 1);
  const ModelFingerprint f0 = fp(base, "a");
  BOOST_TEST(fp(base, "a2") == f0);  // deterministic generator, path-independent hash
  SyntheticModelSpec other_seed = base;
  other_seed.seed = 2;
  BOOST_TEST(!(fp(other_seed, "b") == f0));
  SyntheticModelSpec f16 = base;
  f16.dtype = DType::kF16;
  BOOST_TEST(!(fp(f16, "c") == f0));
  SyntheticModelSpec theta = base;
  theta.rope.theta = 400000.0;
  BOOST_TEST(!(fp(theta, "d") == f0));
  // One flipped bit in one weight changes it.
  const std::string path = tmp.str("a/model.safetensors");
  std::string bytes = ReadFile(path);
  bytes[bytes.size() - 3] ^= 1;
  WriteFile(path, bytes);
  auto flipped = FingerprintModelDir(tmp.str("a"));
  BOOST_REQUIRE(flipped.ok());
  BOOST_TEST(!(*flipped == f0));
  BOOST_TEST(!f0.IsZero());
}

BOOST_AUTO_TEST_CASE(errors_name_the_tensor_and_the_file) {
  TempDir tmp;
  SyntheticModelSpec spec = TinySpec("llama2", DType::kBF16, 1);
  auto expect = [](const Status& st, bool (Status::*is)() const, std::vector<std::string> needles) {
    BOOST_TEST((st.*is)(), st.ToString());
    for (const std::string& n : needles)
      BOOST_TEST(st.message().find(n) != std::string::npos, st.message() << " lacks " << n);
  };
  // No weights at all.
  BOOST_REQUIRE(WriteModel(spec, tmp.str("m")).ok());
  fs::remove(tmp.str("m/model.safetensors"));
  expect(Model::Load(tmp.str("m")).status(), &Status::IsNotFound, {"model.safetensors"});
  // A shape that config.json does not imply.
  BOOST_REQUIRE(WriteModel(spec, tmp.str("m")).ok());
  std::string config = ReadFile(tmp.str("m/config.json"));
  config.replace(config.find("\"intermediate_size\": 172"), 24, "\"intermediate_size\": 170");
  WriteFile(tmp.str("m/config.json"), config);
  expect(Model::Load(tmp.str("m")).status(), &Status::IsInvalidArgument,
         {"model.layers.0.mlp.gate_proj.weight", "model.safetensors", "[172, 64]", "[170, 64]"});
  // A missing tensor: a Llama config with attention_bias expects biases the file lacks.
  BOOST_REQUIRE(WriteModel(spec, tmp.str("m")).ok());
  config = ReadFile(tmp.str("m/config.json"));
  config.replace(config.find("\"attention_bias\": false"), 23, "\"attention_bias\": true ");
  WriteFile(tmp.str("m/config.json"), config);
  expect(Model::Load(tmp.str("m")).status(), &Status::IsNotFound,
         {"model.layers.0.self_attn.q_proj.bias", tmp.str("m")});
  // A truncated file.
  BOOST_REQUIRE(WriteModel(spec, tmp.str("m")).ok());
  std::string bytes = ReadFile(tmp.str("m/model.safetensors"));
  WriteFile(tmp.str("m/model.safetensors"), bytes.substr(0, bytes.size() - 100));
  expect(Model::Load(tmp.str("m")).status(), &Status::IsCorruption, {"model.safetensors"});
  // A missing shard, and an index pointing a tensor at a shard that lacks it.
  spec.max_shard_bytes = 40000;
  BOOST_REQUIRE(WriteModel(spec, tmp.str("s")).ok());
  std::string index = ReadFile(tmp.str("s/model.safetensors.index.json"));
  const std::string last_shard = "model-00004-of-";
  BOOST_REQUIRE(index.find(last_shard) != std::string::npos);
  std::string shard_name;
  for (const auto& e : fs::directory_iterator(tmp.str("s"))) {
    if (e.path().filename().string().starts_with(last_shard))
      shard_name = e.path().filename().string();
  }
  fs::rename(tmp.str("s/" + shard_name), tmp.str("s/moved"));
  expect(Model::Load(tmp.str("s")).status(), &Status::IsNotFound, {shard_name});
  fs::rename(tmp.str("s/moved"), tmp.str("s/" + shard_name));
  BOOST_REQUIRE(Model::Load(tmp.str("s")).ok());
  const size_t at = index.find("\"model.norm.weight\": \"");
  BOOST_REQUIRE(at != std::string::npos);
  index.replace(index.find("model-", at), 5 + 6, "model-00001");
  WriteFile(tmp.str("s/model.safetensors.index.json"), index);
  expect(Model::Load(tmp.str("s")).status(), &Status::IsCorruption,
         {"model.norm.weight", "model-00001"});
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv::testing
