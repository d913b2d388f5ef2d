// The weight files of a Hugging Face model directory, and the tensors each architecture needs.
//
// A directory holds either `model.safetensors` or `model.safetensors.index.json` (whose
// `weight_map` names the shard of every tensor). Shards are memory-mapped by SafetensorsReader and
// stay mapped while the WeightFiles lives; TensorViews point into the mappings.
//
// Ownership and threads: WeightFiles owns its mappings; after Open it is read-only and may be read from any
// number of threads. Errors: IOError, InvalidArgument/Corruption naming the tensor or shard.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attention/model_config.h"
#include "db/safetensors.h"
#include "db/status.h"

namespace blockkv {

// The name and shape of every tensor an architecture uses, in HF naming:
// model.embed_tokens.weight, model.layers.{i}.self_attn.{q,k,v,o}_proj.{weight,bias},
// model.layers.{i}.mlp.{gate,up,down}_proj.weight,
// model.layers.{i}.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight
// (absent when tie_word_embeddings).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

class WeightFiles {
 public:
  // Opens dir/model.safetensors, or dir/model.safetensors.index.json and every shard it names.
  // Errors: NotFound (neither file exists), IOError / Corruption from the shards (naming the file),
  // InvalidArgument (an index that is not valid JSON or lacks weight_map) naming the index,
  // NotFound for a shard the index names that does not exist, Corruption when the index maps a
  // tensor to a shard that lacks it.
  static StatusOr<std::unique_ptr<WeightFiles>> Open(const std::string& dir);

  // The tensor, or NotFound naming the tensor and the directory.
  StatusOr<const TensorView*> Get(const std::string& name) const;
  // The path of the file that holds `name` ("" if absent).
  std::string FileOf(const std::string& name) const;

  // Checks that every tensor of ExpectedTensors(config) exists, is F32/F16/BF16 and has the
  // expected shape. Errors (NotFound, InvalidArgument) name the tensor and its file.
  Status Validate(const ModelConfig& config) const;

  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    const TensorView* view;
    const SafetensorsReader* file;
  };
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsReader>> files_;
  std::map<std::string, Entry> tensors_;
};

}  // namespace blockkv
