#include "attention/weight_files.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace blockkv {

namespace {
std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "input_layernorm.weight", {h}});
    t.push_back({p + "self_attn.q_proj.weight", {q, h}});
    t.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    t.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (c.qkv_bias) {
      t.push_back({p + "self_attn.q_proj.bias", {q}});
      t.push_back({p + "self_attn.k_proj.bias", {kv}});
      t.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    t.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (c.o_bias) t.push_back({p + "self_attn.o_proj.bias", {h}});
    t.push_back({p + "post_attention_layernorm.weight", {h}});
    t.push_back({p + "mlp.gate_proj.weight", {inter, h}});
    t.push_back({p + "mlp.up_proj.weight", {inter, h}});
    t.push_back({p + "mlp.down_proj.weight", {h, inter}});
  }
  t.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, h}});
  return t;
}

StatusOr<std::unique_ptr<WeightFiles>> WeightFiles::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  std::unique_ptr<WeightFiles> w(new WeightFiles());
  w->dir_ = dir;
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  std::error_code ec;
  if (fs::exists(single, ec)) {
    ASSIGN_OR_RETURN(auto r, SafetensorsReader::Open(single));
    for (const auto& [name, view] : r->tensors()) w->tensors_[name] = {&view, r.get()};
    w->files_.push_back(std::move(r));
    return w;
  }
  if (!fs::exists(index, ec)) {
    return Status::NotFound(dir +
                            ": neither model.safetensors nor model.safetensors.index.json exists");
  }
  std::ifstream in(index, std::ios::binary);
  if (!in) return Status::IOError(index + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument(index + ": not valid JSON");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) {
    return Status::InvalidArgument(index + ": field 'weight_map' is missing or not an object");
  }
  std::map<std::string, SafetensorsReader*> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) {
      return Status::InvalidArgument(index + ": weight_map entry '" + it.key() +
                                     "' is not a file name");
    }
    const std::string file = it.value().get<std::string>();
    if (file.find('/') != std::string::npos || file == "..") {
      return Status::InvalidArgument(index + ": weight_map entry '" + it.key() + "' names '" +
                                     file + "', not a file in the model directory");
    }
    auto s = shards.find(file);
    if (s == shards.end()) {
      const std::string path = (fs::path(dir) / file).string();
      if (!fs::exists(path, ec)) {
        return Status::NotFound(index + ": shard " + file + " (holding " + it.key() +
                                ") does not exist");
      }
      ASSIGN_OR_RETURN(auto r, SafetensorsReader::Open(path));
      s = shards.emplace(file, r.get()).first;
      w->files_.push_back(std::move(r));
    }
    auto t = s->second->tensors().find(it.key());
    if (t == s->second->tensors().end()) {
      return Status::Corruption(index + ": maps tensor " + it.key() + " to " + s->second->path() +
                                ", which does not contain it");
    }
    w->tensors_[it.key()] = {&t->second, s->second};
  }
  return w;
}

StatusOr<const TensorView*> WeightFiles::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    return Status::NotFound("tensor " + name + " is missing from the weights in " + dir_);
  return it->second.view;
}

std::string WeightFiles::FileOf(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? std::string() : it->second.file->path();
}

Status WeightFiles::Validate(const ModelConfig& config) const {
  for (const TensorSpec& spec : ExpectedTensors(config)) {
    ASSIGN_OR_RETURN(const TensorView* v, Get(spec.name));
    if (!v->dtype) {
      return Status::InvalidArgument("tensor " + spec.name + " in " + FileOf(spec.name) +
                                     " has dtype " + v->dtype_name + "; expected F32, F16 or BF16");
    }
    if (v->shape != spec.shape) {
      return Status::InvalidArgument("tensor " + spec.name + " in " + FileOf(spec.name) +
                                     " has shape " + ShapeText(v->shape) +
                                     "; config.json implies " + ShapeText(spec.shape));
    }
  }
  return Status::OK();
}

}  // namespace blockkv
