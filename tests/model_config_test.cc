// config.json parsing: both RoPE styles, head_dim, biases, sliding windows, and the errors.
#include "attention/model_config.h"

#include <boost/test/unit_test.hpp>

#include "attention/synthetic_model.h"

namespace blockkv {
namespace {

// Llama-3.1-8B's config.json as published on the Hub (abridged to the fields that matter).
const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": false,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
  "mlp_bias": false, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256})";

// The same model as transformers 5 writes it.
const char* kLlama31V5 = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "head_dim": 128, "dtype": "bfloat16",
  "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "vocab_size": 128256, "eos_token_id": 128001,
  "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}})";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, from);
  return s.replace(at, from.size(), to);
}

Status Parse(const std::string& text) { return ParseModelConfig(text, "m/config.json").status(); }

BOOST_AUTO_TEST_SUITE(model_config)

BOOST_AUTO_TEST_CASE(llama31_hub_config) {
  auto c = ParseModelConfig(kLlama31, "m/config.json");
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  BOOST_TEST((c->arch == Architecture::kLlama));
  BOOST_TEST(c->num_layers == 32);
  BOOST_TEST(c->num_heads == 32);
  BOOST_TEST(c->num_kv_heads == 8);
  BOOST_TEST(c->head_dim == 128);
  BOOST_TEST(c->vocab_size == 128256);
  BOOST_TEST(c->rms_norm_eps == 1e-5);
  BOOST_TEST((c->rope.type == RopeConfig::Type::kLlama3));
  BOOST_TEST(c->rope.theta == 500000.0);
  BOOST_TEST(c->rope.factor == 8.0);
  BOOST_TEST(c->rope.low_freq_factor == 1.0);
  BOOST_TEST(c->rope.high_freq_factor == 4.0);
  BOOST_TEST(c->rope.original_max_position_embeddings == 8192);
  BOOST_TEST(c->rope.rotary_dim == 128);
  BOOST_TEST(!c->qkv_bias);
  BOOST_TEST(!c->o_bias);
  BOOST_TEST(!c->tie_word_embeddings);
  BOOST_TEST(!c->sliding_window.has_value());
  BOOST_TEST((c->torch_dtype == DType::kBF16));
  BOOST_TEST((c->eos_token_ids == std::vector<int32_t>{128001, 128008, 128009}));
  BOOST_TEST(c->bos_token_id.value() == 128000);
}

BOOST_AUTO_TEST_CASE(transformers5_rope_parameters_match_the_hub_style) {
  auto old_style = ParseModelConfig(kLlama31, "a");
  auto new_style = ParseModelConfig(kLlama31V5, "b");
  BOOST_REQUIRE(old_style.ok() && new_style.ok());
  BOOST_TEST(old_style->CanonicalString() == new_style->CanonicalString());
  // `type` (older Hub configs) is read like `rope_type`.
  auto typed =
      ParseModelConfig(Replace(kLlama31, "\"rope_type\": \"llama3\"", "\"type\": \"llama3\""), "c");
  BOOST_REQUIRE(typed.ok());
  BOOST_TEST(typed->CanonicalString() == old_style->CanonicalString());
  // rope_theta is not silently defaulted when it lives in rope_parameters.
  auto theta = ParseModelConfig(
      Replace(kLlama31V5, "\"rope_theta\": 500000.0", "\"rope_theta\": 1000.0"), "d");
  BOOST_REQUIRE(theta.ok());
  BOOST_TEST(theta->rope.theta == 1000.0);
}

BOOST_AUTO_TEST_CASE(explicit_head_dim_wins) {
  auto c = ParseModelConfig(
      Replace(kLlama31, "\"hidden_size\": 4096", "\"hidden_size\": 4096, \"head_dim\": 64"), "m");
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->head_dim == 64);
  BOOST_TEST(c->q_dim() == 2048);
  BOOST_TEST(c->rope.rotary_dim == 64);
}

BOOST_AUTO_TEST_CASE(qwen2_mistral_and_linear_rope) {
  const std::string qwen = R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584,
    "intermediate_size": 18944, "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
    "vocab_size": 152064, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "sliding_window": 131072,
    "use_sliding_window": false, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";
  auto q = ParseModelConfig(qwen, "q");
  BOOST_REQUIRE(q.ok());
  BOOST_TEST(q->qkv_bias);
  BOOST_TEST(!q->o_bias);
  BOOST_TEST(q->head_dim == 128);
  BOOST_TEST(!q->sliding_window.has_value());  // use_sliding_window is false
  auto qw = ParseModelConfig(
      Replace(qwen, "\"use_sliding_window\": false", "\"use_sliding_window\": true"), "q");
  BOOST_REQUIRE(qw.ok());
  BOOST_TEST(qw->sliding_window.value() == 131072);

  const std::string mistral = R"({"architectures": ["MistralForCausalLM"], "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "vocab_size": 32000, "rope_theta": 10000.0, "sliding_window": 4096, "rope_scaling": null})";
  auto m = ParseModelConfig(mistral, "m");
  BOOST_REQUIRE(m.ok());
  BOOST_TEST(m->sliding_window.value() == 4096);
  BOOST_TEST((m->rope.type == RopeConfig::Type::kDefault));
  BOOST_TEST(!m->qkv_bias);
  auto m_null = ParseModelConfig(
      Replace(mistral, "\"sliding_window\": 4096", "\"sliding_window\": null"), "m");
  BOOST_REQUIRE(m_null.ok());
  BOOST_TEST(!m_null->sliding_window.has_value());

  auto linear =
      ParseModelConfig(Replace(mistral, "\"rope_scaling\": null",
                               "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}"),
                       "l");
  BOOST_REQUIRE(linear.ok());
  BOOST_TEST((linear->rope.type == RopeConfig::Type::kLinear));
  BOOST_TEST(linear->rope.factor == 4.0);

  auto llama_bias = ParseModelConfig(
      Replace(kLlama31, "\"attention_bias\": false", "\"attention_bias\": true"), "b");
  BOOST_REQUIRE(llama_bias.ok());
  BOOST_TEST(llama_bias->qkv_bias);
  BOOST_TEST(llama_bias->o_bias);
}

BOOST_AUTO_TEST_CASE(partial_rotary_factor) {
  auto c = ParseModelConfig(Replace(kLlama31, "\"rope_theta\": 500000.0",
                                    "\"rope_theta\": 500000.0, \"partial_rotary_factor\": 0.5"),
                            "p");
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->rope.rotary_dim == 64);
  BOOST_TEST(Parse(Replace(kLlama31, "\"rope_theta\": 500000.0",
                           "\"rope_theta\": 500000.0, \"partial_rotary_factor\": 0.0"))
                 .IsInvalidArgument());
}

BOOST_AUTO_TEST_CASE(errors_name_the_file_and_field) {
  auto expect = [](const Status& st, bool (Status::*is)() const, const std::string& needle) {
    BOOST_TEST((st.*is)(), st.ToString());
    BOOST_TEST(st.message().find("m/config.json") != std::string::npos, st.message());
    BOOST_TEST(st.message().find(needle) != std::string::npos, st.message() << " lacks " << needle);
  };
  expect(Parse("{not json"), &Status::IsInvalidArgument, "not valid JSON");
  expect(Parse(Replace(kLlama31, "LlamaForCausalLM", "GPT2LMHeadModel")), &Status::IsNotSupported,
         "GPT2LMHeadModel");
  expect(Parse(Replace(kLlama31, "\"num_hidden_layers\": 32,", "")), &Status::IsInvalidArgument,
         "num_hidden_layers");
  expect(Parse(Replace(kLlama31, "\"hidden_size\": 4096", "\"hidden_size\": \"big\"")),
         &Status::IsInvalidArgument, "hidden_size");
  expect(Parse(Replace(kLlama31, "\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5")),
         &Status::IsInvalidArgument, "num_key_value_heads");
  expect(Parse(Replace(kLlama31, "\"hidden_size\": 4096", "\"hidden_size\": 4095")),
         &Status::IsInvalidArgument, "hidden_size");
  expect(Parse(Replace(kLlama31, "\"mlp_bias\": false", "\"mlp_bias\": true")),
         &Status::IsNotSupported, "mlp_bias");
  expect(Parse(Replace(kLlama31, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"")),
         &Status::IsNotSupported, "hidden_act");
  expect(Parse(Replace(kLlama31, "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"")),
         &Status::IsNotSupported, "yarn");
  expect(Parse(Replace(kLlama31, "\"low_freq_factor\": 1.0,", "")), &Status::IsInvalidArgument,
         "rope_scaling.low_freq_factor");
  expect(Parse(Replace(kLlama31V5, "\"factor\": 8.0,", "")), &Status::IsInvalidArgument,
         "rope_parameters.factor");
  expect(Parse("[1, 2]"), &Status::IsInvalidArgument, "not a JSON object");
}

BOOST_AUTO_TEST_CASE(synthetic_configs_parse_in_both_styles) {
  for (const std::string& arch : SyntheticArchNames()) {
    auto spec = SyntheticPreset("small", arch);
    BOOST_REQUIRE(spec.ok());
    auto a = ParseModelConfig(SyntheticConfigJson(*spec), arch);
    BOOST_REQUIRE_MESSAGE(a.ok(), a.status().ToString());
    spec->rope_parameters_style = true;
    auto b = ParseModelConfig(SyntheticConfigJson(*spec), arch);
    BOOST_REQUIRE_MESSAGE(b.ok(), b.status().ToString());
    BOOST_TEST(a->CanonicalString() == b->CanonicalString());
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv
