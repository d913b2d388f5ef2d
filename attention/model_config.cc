#include "attention/model_config.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace blockkv {

namespace {

using nlohmann::json;

// Reads fields of one JSON object, turning every problem into a Status that names the file and
// field.
class FieldReader {
 public:
  FieldReader(const json& obj, std::string label, std::string prefix = "")
      : obj_(obj), label_(std::move(label)), prefix_(std::move(prefix)) {}

  bool Has(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  Status Error(const char* key, const std::string& what) const {
    return Status::InvalidArgument(label_ + ": field '" + prefix_ + key + "' " + what);
  }
  StatusOr<int64_t> Int(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const json& v = obj_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
    }
    return Error(key, "is not an integer");
  }
  StatusOr<int64_t> Int(const char* key, int64_t dflt) const {
    if (!Has(key)) return dflt;
    return Int(key);
  }
  StatusOr<int> PositiveInt(const char* key) const {
    ASSIGN_OR_RETURN(int64_t v, Int(key));
    if (v <= 0 || v > (1 << 30))
      return Error(key, "must be a positive integer, got " + std::to_string(v));
    return static_cast<int>(v);
  }
  StatusOr<double> Number(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const json& v = obj_.at(key);
    if (!v.is_number()) return Error(key, "is not a number");
    return v.get<double>();
  }
  StatusOr<double> Number(const char* key, double dflt) const {
    if (!Has(key)) return dflt;
    return Number(key);
  }
  StatusOr<bool> Bool(const char* key, bool dflt) const {
    if (!Has(key)) return dflt;
    const json& v = obj_.at(key);
    if (!v.is_boolean()) return Error(key, "is not a boolean");
    return v.get<bool>();
  }
  StatusOr<std::string> String(const char* key, const std::string& dflt) const {
    if (!Has(key)) return dflt;
    const json& v = obj_.at(key);
    if (!v.is_string()) return Error(key, "is not a string");
    return v.get<std::string>();
  }

 private:
  const json& obj_;
  std::string label_;
  std::string prefix_;
};

StatusOr<std::vector<int32_t>> TokenIdList(const json& v, const std::string& label,
                                           const char* key) {
  std::vector<int32_t> out;
  auto one = [&](const json& x) -> Status {
    if (!x.is_number_integer()) {
      return Status::InvalidArgument(label + ": field '" + key +
                                     "' is not a token id or list of them");
    }
    out.push_back(static_cast<int32_t>(x.get<int64_t>()));
    return Status::OK();
  };
  if (v.is_null()) return out;
  if (v.is_array()) {
    for (const json& x : v) RETURN_IF_ERROR(one(x));
  } else {
    RETURN_IF_ERROR(one(v));
  }
  return out;
}

// Reads the rope type and its parameters from `params` (rope_scaling or rope_parameters).
Status ReadRopeScaling(const json& params, const std::string& label, const std::string& prefix,
                       RopeConfig* rope) {
  FieldReader r(params, label, prefix);
  std::string type = "default";
  if (r.Has("rope_type")) {
    ASSIGN_OR_RETURN(type, r.String("rope_type", "default"));
  } else if (r.Has("type")) {
    ASSIGN_OR_RETURN(type, r.String("type", "default"));
  }
  if (type == "default") {
    rope->type = RopeConfig::Type::kDefault;
  } else if (type == "linear") {
    rope->type = RopeConfig::Type::kLinear;
    ASSIGN_OR_RETURN(rope->factor, r.Number("factor"));
  } else if (type == "llama3") {
    rope->type = RopeConfig::Type::kLlama3;
    ASSIGN_OR_RETURN(rope->factor, r.Number("factor"));
    ASSIGN_OR_RETURN(rope->low_freq_factor, r.Number("low_freq_factor"));
    ASSIGN_OR_RETURN(rope->high_freq_factor, r.Number("high_freq_factor"));
    ASSIGN_OR_RETURN(rope->original_max_position_embeddings,
                     r.Int("original_max_position_embeddings"));
    if (rope->original_max_position_embeddings <= 0) {
      return r.Error("original_max_position_embeddings", "must be positive");
    }
    if (!(rope->high_freq_factor > rope->low_freq_factor) || rope->low_freq_factor <= 0) {
      return Status::InvalidArgument(label + ": field '" + prefix +
                                     "high_freq_factor' must exceed low_freq_factor > 0");
    }
  } else {
    return Status::NotSupported(label + ": field '" + prefix + "rope_type' is '" + type +
                                "'; supported: default, linear, llama3");
  }
  if ((rope->type != RopeConfig::Type::kDefault) && !(rope->factor > 0)) {
    return r.Error("factor", "must be positive");
  }
  return Status::OK();
}

}  // namespace

const char* ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama:
      return "LlamaForCausalLM";
    case Architecture::kMistral:
      return "MistralForCausalLM";
    case Architecture::kQwen2:
      return "Qwen2ForCausalLM";
  }
  return "?";
}

const char* RopeTypeName(RopeConfig::Type t) {
  switch (t) {
    case RopeConfig::Type::kDefault:
      return "default";
    case RopeConfig::Type::kLinear:
      return "linear";
    case RopeConfig::Type::kLlama3:
      return "llama3";
  }
  return "?";
}

std::string ModelConfig::CanonicalString() const {
  // Doubles are written with %.17g so that the text round-trips the exact value.
  auto num = [](double d) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.17g", d);
    return std::string(buf);
  };
  std::ostringstream s;
  s << "blockkv-model-config-v1\n"
    << "arch=" << ArchitectureName(arch) << "\n"
    << "layers=" << num_layers << "\nhidden=" << hidden_size << "\nheads=" << num_heads
    << "\nkv_heads=" << num_kv_heads << "\nhead_dim=" << head_dim
    << "\nintermediate=" << intermediate_size << "\nvocab=" << vocab_size
    << "\nrms_norm_eps=" << num(rms_norm_eps) << "\nrope_type=" << RopeTypeName(rope.type)
    << "\nrope_theta=" << num(rope.theta) << "\nrope_factor=" << num(rope.factor)
    << "\nrope_low_freq_factor=" << num(rope.low_freq_factor)
    << "\nrope_high_freq_factor=" << num(rope.high_freq_factor)
    << "\nrope_original_max_position_embeddings=" << rope.original_max_position_embeddings
    << "\nrotary_dim=" << rope.rotary_dim << "\nqkv_bias=" << qkv_bias << "\no_bias=" << o_bias
    << "\ntie_word_embeddings=" << tie_word_embeddings
    << "\nsliding_window=" << (sliding_window ? std::to_string(*sliding_window) : "none")
    << "\ntorch_dtype=" << (torch_dtype ? DTypeName(*torch_dtype) : "none") << "\n";
  return s.str();
}

StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& label) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(label + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(label + ": not a JSON object");
  FieldReader r(j, label);
  ModelConfig c;

  std::string arch_name;
  if (r.Has("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string()) {
      return r.Error("architectures", "is not a non-empty list of strings");
    }
    arch_name = a[0].get<std::string>();
  } else {
    ASSIGN_OR_RETURN(std::string model_type, r.String("model_type", ""));
    if (model_type == "llama") arch_name = "LlamaForCausalLM";
    if (model_type == "mistral") arch_name = "MistralForCausalLM";
    if (model_type == "qwen2") arch_name = "Qwen2ForCausalLM";
    if (arch_name.empty()) {
      return Status::NotSupported(label +
                                  ": neither 'architectures' nor a supported 'model_type' (got '" +
                                  model_type + "')");
    }
  }
  if (arch_name == "LlamaForCausalLM") {
    c.arch = Architecture::kLlama;
  } else if (arch_name == "MistralForCausalLM") {
    c.arch = Architecture::kMistral;
  } else if (arch_name == "Qwen2ForCausalLM") {
    c.arch = Architecture::kQwen2;
  } else {
    return Status::NotSupported(label + ": architecture '" + arch_name +
                                "' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                                "Qwen2ForCausalLM)");
  }

  ASSIGN_OR_RETURN(c.num_layers, r.PositiveInt("num_hidden_layers"));
  ASSIGN_OR_RETURN(c.hidden_size, r.PositiveInt("hidden_size"));
  ASSIGN_OR_RETURN(c.num_heads, r.PositiveInt("num_attention_heads"));
  if (r.Has("num_key_value_heads")) {
    ASSIGN_OR_RETURN(c.num_kv_heads, r.PositiveInt("num_key_value_heads"));
  } else {
    c.num_kv_heads = c.num_heads;
  }
  ASSIGN_OR_RETURN(c.intermediate_size, r.PositiveInt("intermediate_size"));
  ASSIGN_OR_RETURN(c.vocab_size, r.PositiveInt("vocab_size"));
  if (c.num_heads % c.num_kv_heads != 0) {
    return Status::InvalidArgument(label + ": num_attention_heads (" + std::to_string(c.num_heads) +
                                   ") is not a multiple of num_key_value_heads (" +
                                   std::to_string(c.num_kv_heads) + ")");
  }
  if (r.Has("head_dim")) {
    ASSIGN_OR_RETURN(c.head_dim, r.PositiveInt("head_dim"));
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      return Status::InvalidArgument(label + ": hidden_size (" + std::to_string(c.hidden_size) +
                                     ") is not a multiple of num_attention_heads (" +
                                     std::to_string(c.num_heads) + ") and no head_dim is given");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) return r.Error("head_dim", "must be even for rotary embeddings");
  ASSIGN_OR_RETURN(c.rms_norm_eps, r.Number("rms_norm_eps", 1e-6));
  if (!(c.rms_norm_eps > 0)) return r.Error("rms_norm_eps", "must be positive");
  ASSIGN_OR_RETURN(c.max_position_embeddings, r.Int("max_position_embeddings", 2048));

  ASSIGN_OR_RETURN(std::string act, r.String("hidden_act", "silu"));
  if (act != "silu") {
    return Status::NotSupported(label + ": field 'hidden_act' is '" + act +
                                "'; only silu is supported");
  }
  ASSIGN_OR_RETURN(bool mlp_bias, r.Bool("mlp_bias", false));
  if (mlp_bias)
    return Status::NotSupported(label + ": field 'mlp_bias' is true; MLP biases are not supported");
  ASSIGN_OR_RETURN(bool attention_bias, r.Bool("attention_bias", false));
  if (c.arch == Architecture::kQwen2) {
    // Qwen2Attention hard-codes bias=True for q/k/v and bias=False for o_proj.
    c.qkv_bias = true;
    c.o_bias = false;
  } else {
    c.qkv_bias = attention_bias;
    c.o_bias = attention_bias;
  }
  ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));

  // Sliding window: Mistral applies it whenever set; Qwen2 only with use_sliding_window.
  ASSIGN_OR_RETURN(bool use_sliding_window, r.Bool("use_sliding_window", false));
  if ((c.arch == Architecture::kMistral ||
       (c.arch == Architecture::kQwen2 && use_sliding_window)) &&
      r.Has("sliding_window")) {
    ASSIGN_OR_RETURN(int64_t w, r.Int("sliding_window"));
    if (w <= 0) return r.Error("sliding_window", "must be positive");
    c.sliding_window = w;
  }

  std::string dtype_name;
  if (r.Has("torch_dtype")) {
    ASSIGN_OR_RETURN(dtype_name, r.String("torch_dtype", ""));
  } else if (r.Has("dtype")) {
    ASSIGN_OR_RETURN(dtype_name, r.String("dtype", ""));
  }
  if (!dtype_name.empty()) c.torch_dtype = ParseDType(dtype_name);

  if (r.Has("bos_token_id")) {
    ASSIGN_OR_RETURN(std::vector<int32_t> bos,
                     TokenIdList(j["bos_token_id"], label, "bos_token_id"));
    if (!bos.empty()) c.bos_token_id = bos[0];
  }
  if (r.Has("eos_token_id")) {
    ASSIGN_OR_RETURN(c.eos_token_ids, TokenIdList(j["eos_token_id"], label, "eos_token_id"));
  }

  // RoPE: transformers-5 rope_parameters, else rope_theta + rope_scaling.
  double partial_rotary_factor = 1.0;
  if (r.Has("rope_parameters")) {
    const json* p = &j["rope_parameters"];
    std::string prefix = "rope_parameters.";
    // Models with several attention types nest one dict per type; these architectures use full
    // attention.
    if (p->is_object() && !p->contains("rope_type") && !p->contains("rope_theta") &&
        p->contains("full_attention")) {
      p = &(*p)["full_attention"];
      prefix += "full_attention.";
    }
    if (!p->is_object()) return r.Error("rope_parameters", "is not an object");
    FieldReader rp(*p, label, prefix);
    if (rp.Has("rope_theta")) {
      ASSIGN_OR_RETURN(c.rope.theta, rp.Number("rope_theta"));
    } else {
      ASSIGN_OR_RETURN(c.rope.theta, r.Number("rope_theta", 10000.0));
    }
    RETURN_IF_ERROR(ReadRopeScaling(*p, label, prefix, &c.rope));
    ASSIGN_OR_RETURN(partial_rotary_factor, rp.Number("partial_rotary_factor", 1.0));
  } else {
    ASSIGN_OR_RETURN(c.rope.theta, r.Number("rope_theta", 10000.0));
    if (r.Has("rope_scaling")) {
      if (!j["rope_scaling"].is_object()) return r.Error("rope_scaling", "is not an object");
      RETURN_IF_ERROR(ReadRopeScaling(j["rope_scaling"], label, "rope_scaling.", &c.rope));
    }
  }
  if (r.Has("partial_rotary_factor")) {
    ASSIGN_OR_RETURN(partial_rotary_factor, r.Number("partial_rotary_factor"));
  }
  if (!(c.rope.theta > 0)) return r.Error("rope_theta", "must be positive");
  if (!(partial_rotary_factor > 0 && partial_rotary_factor <= 1)) {
    return r.Error("partial_rotary_factor", "must be in (0, 1]");
  }
  // HF: dim = int(head_dim * partial_rotary_factor).
  c.rope.rotary_dim = static_cast<int>(c.head_dim * partial_rotary_factor);
  if (c.rope.rotary_dim <= 0 || c.rope.rotary_dim % 2 != 0) {
    return r.Error("partial_rotary_factor", "gives rotary dimension " +
                                                std::to_string(c.rope.rotary_dim) +
                                                ", not a positive even number");
  }
  return c;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IOError(path + ": read error");
  return ParseModelConfig(ss.str(), path);
}

}  // namespace blockkv
