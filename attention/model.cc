#include "attention/model.h"

#include <xxhash.h>

#include <algorithm>
#include <filesystem>

namespace blockkv {

namespace {

void HashU64(XXH3_state_t* st, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  XXH3_128bits_update(st, b, 8);
}

void HashString(XXH3_state_t* st, const std::string& s) {
  HashU64(st, s.size());
  XXH3_128bits_update(st, s.data(), s.size());
}

struct XXH3StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

StatusOr<std::vector<float>> ToF32(const WeightFiles& files, const std::string& name) {
  ASSIGN_OR_RETURN(const TensorView* v, files.Get(name));
  std::vector<float> out(static_cast<size_t>(v->numel()));
  ToFloat(*v->dtype, v->data, out.data(), out.size());
  return out;
}

}  // namespace

StatusOr<ModelFingerprint> ComputeModelFingerprint(const ModelConfig& config,
                                                   const WeightFiles& files) {
  RETURN_IF_ERROR(files.Validate(config));
  std::unique_ptr<XXH3_state_t, XXH3StateDeleter> st(XXH3_createState());
  if (!st || XXH3_128bits_reset(st.get()) != XXH_OK)
    return Status::Internal("XXH3 state allocation failed");
  HashString(st.get(), config.CanonicalString());
  std::vector<TensorSpec> specs = ExpectedTensors(config);
  std::sort(specs.begin(), specs.end(),
            [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(const TensorView* v, files.Get(spec.name));
    HashString(st.get(), spec.name);
    HashString(st.get(), v->dtype_name);
    HashU64(st.get(), v->shape.size());
    for (int64_t d : v->shape) HashU64(st.get(), static_cast<uint64_t>(d));
    HashU64(st.get(), v->nbytes);
    XXH3_128bits_update(st.get(), v->data, v->nbytes);
  }
  XXH128_hash_t h = XXH3_128bits_digest(st.get());
  return ModelFingerprint(Hash128::FromXXH128(h.high64, h.low64));
}

StatusOr<ModelFingerprint> FingerprintModelDir(const std::string& dir) {
  ASSIGN_OR_RETURN(ModelConfig config,
                   LoadModelConfig((std::filesystem::path(dir) / "config.json").string()));
  ASSIGN_OR_RETURN(auto files, WeightFiles::Open(dir));
  return ComputeModelFingerprint(config, *files);
}

StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(ModelConfig config,
                   LoadModelConfig((std::filesystem::path(dir) / "config.json").string()));
  ASSIGN_OR_RETURN(auto files, WeightFiles::Open(dir));
  ASSIGN_OR_RETURN(ModelFingerprint fp, ComputeModelFingerprint(config, *files));
  std::unique_ptr<Model> m(new Model());
  m->config_ = config;
  m->fingerprint_ = fp;
  m->dir_ = dir;
  const WeightFiles& f = *files;
  ASSIGN_OR_RETURN(m->embed_, ToF32(f, "model.embed_tokens.weight"));
  for (int i = 0; i < config.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    ASSIGN_OR_RETURN(l.input_norm, ToF32(f, p + "input_layernorm.weight"));
    ASSIGN_OR_RETURN(l.wq, ToF32(f, p + "self_attn.q_proj.weight"));
    ASSIGN_OR_RETURN(l.wk, ToF32(f, p + "self_attn.k_proj.weight"));
    ASSIGN_OR_RETURN(l.wv, ToF32(f, p + "self_attn.v_proj.weight"));
    if (config.qkv_bias) {
      ASSIGN_OR_RETURN(l.bq, ToF32(f, p + "self_attn.q_proj.bias"));
      ASSIGN_OR_RETURN(l.bk, ToF32(f, p + "self_attn.k_proj.bias"));
      ASSIGN_OR_RETURN(l.bv, ToF32(f, p + "self_attn.v_proj.bias"));
    }
    ASSIGN_OR_RETURN(l.wo, ToF32(f, p + "self_attn.o_proj.weight"));
    if (config.o_bias) {
      ASSIGN_OR_RETURN(l.bo, ToF32(f, p + "self_attn.o_proj.bias"));
    }
    ASSIGN_OR_RETURN(l.post_norm, ToF32(f, p + "post_attention_layernorm.weight"));
    ASSIGN_OR_RETURN(l.w_gate, ToF32(f, p + "mlp.gate_proj.weight"));
    ASSIGN_OR_RETURN(l.w_up, ToF32(f, p + "mlp.up_proj.weight"));
    ASSIGN_OR_RETURN(l.w_down, ToF32(f, p + "mlp.down_proj.weight"));
    m->layers_.push_back(std::move(l));
  }
  ASSIGN_OR_RETURN(m->final_norm_, ToF32(f, "model.norm.weight"));
  if (!config.tie_word_embeddings) {
    ASSIGN_OR_RETURN(m->lm_head_, ToF32(f, "lm_head.weight"));
  }
  return m;
}

}  // namespace blockkv
