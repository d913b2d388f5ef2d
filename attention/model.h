// A loaded model: its config, its fingerprint and its weights in float32 for the CPU backend.
//
// Model::Load reads config.json and the safetensors weights (bf16, fp16 or fp32, single file or
// sharded) of a Hugging Face model directory and converts every tensor to float32. A Model is
// immutable once loaded and safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "attention/model_config.h"
#include "attention/weight_files.h"
#include "db/block_key.h"
#include "db/status.h"

namespace blockkv {

// HF nn.Linear layout: weight (out_features, in_features), row-major; y = x W^T + b.
struct LayerWeights {
  std::vector<float> input_norm;      // (hidden)
  std::vector<float> wq, wk, wv, wo;  // (q_dim, hidden), (kv_dim, hidden) ×2, (hidden, q_dim)
  std::vector<float> bq, bk, bv, bo;  // empty unless config.qkv_bias / config.o_bias
  std::vector<float> post_norm;       // (hidden)
  std::vector<float> w_gate, w_up, w_down;  // (inter, hidden) ×2, (hidden, inter)
};

// Model fingerprint (DESIGN §4): XXH3-128 over config.CanonicalString() followed, for every tensor
// of ExpectedTensors(config) in sorted name order, by its name, dtype name, shape and raw bytes as
// stored. Converting a model to another dtype changes its fingerprint; renaming files or resharding
// does not.
StatusOr<ModelFingerprint> ComputeModelFingerprint(const ModelConfig& config,
                                                   const WeightFiles& files);

// Reads config.json and the weights' headers of `dir` and computes the fingerprint without
// converting the weights (streams them through the hash once). Errors as Model::Load.
StatusOr<ModelFingerprint> FingerprintModelDir(const std::string& dir);

class Model {
 public:
  // Loads `dir`. Errors name the file and the field or tensor: those of LoadModelConfig
  // (config.json), WeightFiles::Open and WeightFiles::Validate (missing shard, missing tensor,
  // shape mismatch, truncated file).
  static StatusOr<std::unique_ptr<Model>> Load(const std::string& dir);

  const ModelConfig& config() const { return config_; }
  const ModelFingerprint& fingerprint() const { return fingerprint_; }
  const std::string& dir() const { return dir_; }

  const std::vector<float>& embed() const { return embed_; }  // (vocab, hidden)
  const LayerWeights& layer(int i) const { return layers_[i]; }
  const std::vector<float>& final_norm() const { return final_norm_; }  // (hidden)
  // (vocab, hidden): lm_head.weight, or the embedding matrix when tie_word_embeddings.
  const std::vector<float>& lm_head() const {
    return config_.tie_word_embeddings ? embed_ : lm_head_;
  }

 private:
  Model() = default;
  ModelConfig config_;
  ModelFingerprint fingerprint_;
  std::string dir_;
  std::vector<float> embed_;
  std::vector<LayerWeights> layers_;
  std::vector<float> final_norm_;
  std::vector<float> lm_head_;
};

}  // namespace blockkv
