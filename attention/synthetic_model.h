// Synthetic models: HF-format model directories (config.json, safetensors weights,
// generation_config.json) with deterministic random weights, for tests, demos and benchmarks.
//
// The weights depend only on the spec (including its seed), never on the machine or the library
// versions: normals come from splitmix64 streams through Box–Muller, one stream per (tensor,
// 1M-element chunk), so tensors can be generated in parallel and streamed to disk one at a time
// (memory stays bounded for the full-size presets). Scales keep the residual stream's RMS near 1
// over every layer and the logits spread but not one-hot: embeddings ~ N(0, 1) (2/sqrt(hidden) when
// tied to the LM head), q/k/v ~ N(0, 1/hidden) (q doubled to sharpen attention), o/down ~ N(0,
// 1/(fan_in × layers)), gate/up ~ N(0, 1/hidden), norm weights 1 + N(0, 0.05²), biases N(0, 0.2²),
// lm_head ~ N(0, 4/hidden).
//
// Threads: pure functions, safe from any thread on distinct directories. Errors: InvalidArgument for an
// unknown preset or shape, IOError when the directory cannot be written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attention/model/synthetic_tokenizer.h"
#include "attention/model_config.h"
#include "db/dtype.h"
#include "db/status.h"

namespace blockkv {

struct SyntheticModelSpec {
  Architecture arch = Architecture::kLlama;
  int num_layers = 2;
  int hidden_size = 64;
  int num_heads = 4;
  int num_kv_heads = 2;
  int head_dim = 16;
  int intermediate_size = 172;
  int vocab_size = 512;
  int64_t max_position_embeddings = 131072;
  double rms_norm_eps = 1e-5;
  RopeConfig rope;                     // rotary_dim is ignored; partial_rotary_factor sets it
  double partial_rotary_factor = 1.0;  // written only when != 1
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Llama only (Qwen2 always has q/k/v biases; Mistral never)
  // Mistral: written as `sliding_window` (null when unset). Qwen2: written with use_sliding_window,
  // which is true iff `use_sliding_window` below.
  std::optional<int64_t> sliding_window;
  bool use_sliding_window = false;  // Qwen2 only
  int32_t bos_token_id = 1;
  int32_t eos_token_id = 2;
  // Every id that ends generation (generation_config.json's eos_token_id); empty: eos_token_id alone.
  std::vector<int32_t> stop_token_ids;
  // Write a tokenizer.json and tokenizer_config.json (attention/model/synthetic_tokenizer.h) of this
  // family, its special tokens from `tokenizer_special_base` on (-1: the top of the vocabulary).
  // Default: true.
  bool write_tokenizer = true;
  SyntheticTokenizerStyle tokenizer_style = SyntheticTokenizerStyle::kLlama3;
  int32_t tokenizer_special_base = -1;
  // Write transformers-5 style `rope_parameters` instead of `rope_theta` + `rope_scaling`. Default:
  // false.
  bool rope_parameters_style = false;
  DType dtype = DType::kBF16;  // weights and `torch_dtype`. Default: bf16
  uint64_t seed = 0;
  // Shards of at most this many bytes (a tensor larger than this gets a shard of its own); one
  // shard is written as model.safetensors, several as model-0000i-of-0000n.safetensors +
  // model.safetensors.index.json. Default: 5 GB, as HF's save_pretrained.
  uint64_t max_shard_bytes = 5'000'000'000ull;
};

// Presets: "tiny" and "small" (test- and demo-sized) in each architecture of SyntheticArchNames(),
// and the full-size shapes of "llama-3.1-8b", "llama-2-7b", "mistral-7b" (v0.1, sliding window
// 4096) and "qwen2-7b", whose arch is fixed (`arch` must be empty or match). `arch` defaults to
// "llama3". InvalidArgument names the unknown preset or arch.
StatusOr<SyntheticModelSpec> SyntheticPreset(std::string_view preset, std::string_view arch = "");
std::vector<std::string> SyntheticPresetNames();
std::vector<std::string> SyntheticArchNames();  // "llama3", "llama2", "mistral", "qwen2"

// The config.json text for `spec` (loadable by HF transformers' from_pretrained and by
// LoadModelConfig).
std::string SyntheticConfigJson(const SyntheticModelSpec& spec);

// Writes the model into `dir` (created if needed; existing model files are replaced): config.json,
// generation_config.json, the weights, and (write_tokenizer) tokenizer.json and tokenizer_config.json. Each file is written to a temporary name and renamed.
// Errors: InvalidArgument (inconsistent spec), IOError (naming the file).
Status WriteSyntheticModel(const SyntheticModelSpec& spec, const std::string& dir);

}  // namespace blockkv
