// The architecture of a causal language model, read from a Hugging Face config.json.
//
// Supported: LlamaForCausalLM (Llama 2, 3, 3.1, 3.2), MistralForCausalLM, Qwen2ForCausalLM. Both
// config styles are read (DESIGN §5): the Hub's `rope_theta` + `rope_scaling` (keyed `type` or
// `rope_type`) and transformers 5's `rope_parameters`. An explicit `head_dim` wins over hidden_size
// / num_attention_heads. Anything that would change the arithmetic and that the runtime does not
// implement (another activation, MLP biases, dynamic/yarn RoPE) is refused with NotSupported rather
// than silently ignored.
//
// Threads: parsing is a pure function; a ModelConfig is a plain value. Errors: InvalidArgument naming the
// field, NotSupported for arithmetic the runtime does not implement.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "db/dtype.h"
#include "db/status.h"

namespace blockkv {

enum class Architecture { kLlama, kMistral, kQwen2 };

// "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM".
const char* ArchitectureName(Architecture a);

// Rotary position embedding parameters, exactly those HF transformers uses to build inv_freq.
struct RopeConfig {
  enum class Type { kDefault, kLinear, kLlama3 };
  Type type = Type::kDefault;
  double theta = 10000.0;  // `rope_theta`
  double factor = 1.0;     // linear and llama3
  // llama3 only:
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // Dimensions of each head that are rotated: head_dim × partial_rotary_factor (even). The rotation
  // pairs dimension i with i + rotary_dim/2 (HF's rotate_half); dimensions at and past rotary_dim
  // pass through.
  int rotary_dim = 0;
};

const char* RopeTypeName(RopeConfig::Type t);  // "default", "linear", "llama3"

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int num_layers = 0;  // num_hidden_layers
  int hidden_size = 0;
  int num_heads = 0;     // num_attention_heads
  int num_kv_heads = 0;  // num_key_value_heads (defaults to num_heads)
  int head_dim = 0;      // explicit `head_dim`, else hidden_size / num_heads
  int intermediate_size = 0;
  int vocab_size = 0;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;  // informational; the runtime does not refuse longer prompts
  RopeConfig rope;
  bool qkv_bias =
      false;            // q/k/v projections carry a bias (Qwen2 always; Llama when attention_bias)
  bool o_bias = false;  // o_proj carries a bias (Llama with attention_bias)
  bool tie_word_embeddings = false;  // lm_head shares model.embed_tokens.weight
  // Attention window: token i attends to j only if i - j < sliding_window. The runtime implements
  // only the case where a whole sequence fits in the window and refuses longer ones with
  // NotSupported.
  std::optional<int64_t> sliding_window;
  std::optional<DType> torch_dtype;  // `torch_dtype` or `dtype`, if given and one of f32/f16/bf16
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // `eos_token_id`, a number or a list

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }

  // A canonical, versioned text of every field that affects the arithmetic (not the token ids or
  // max_position_embeddings). Part of the model fingerprint (DESIGN §4); never change it for an
  // existing version tag.
  std::string CanonicalString() const;
};

// Parses config.json text. `label` (the file's path) starts every error message. Errors:
// InvalidArgument (bad JSON, a missing or ill-typed field, inconsistent shapes), NotSupported
// (another architecture or a feature the runtime does not implement).
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& label);

// Reads and parses `path` (a config.json). IOError if it cannot be read.
StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace blockkv
