#include "attention/synthetic_model.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "attention/cpu/parallel.h"
#include "attention/weight_files.h"

namespace blockkv {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kChunk = 1 << 20;  // elements per independent random stream

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

// Fills out[0, n) with mean + std * N(0, 1) for elements [begin, begin + n) of the tensor's stream.
void FillChunk(uint64_t tensor_seed, int64_t chunk, float mean, float std, float* out, int64_t n) {
  uint64_t state = tensor_seed ^ (0xd1b54a32d192ed03ull * static_cast<uint64_t>(chunk + 1));
  SplitMix64(state);
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(SplitMix64(state) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double u2 = static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = mean + std * static_cast<float>(r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < n) out[i + 1] = mean + std * static_cast<float>(r * std::sin(2.0 * M_PI * u2));
  }
}

// Mean and standard deviation of a tensor, from its name (see the header's comment).
std::pair<float, float> InitScale(const SyntheticModelSpec& s, const std::string& name) {
  const double h = s.hidden_size, layers = s.num_layers;
  auto ends = [&](const char* suffix) {
    const std::string_view n(name), x(suffix);
    return n.size() >= x.size() && n.substr(n.size() - x.size()) == x;
  };
  if (ends("norm.weight") || ends("layernorm.weight")) return {1.0f, 0.05f};
  if (ends(".bias")) return {0.0f, 0.2f};
  if (name == "model.embed_tokens.weight") {
    return {0.0f, s.tie_word_embeddings ? static_cast<float>(2.0 / std::sqrt(h)) : 1.0f};
  }
  if (name == "lm_head.weight") return {0.0f, static_cast<float>(2.0 / std::sqrt(h))};
  if (ends("q_proj.weight")) return {0.0f, static_cast<float>(2.0 / std::sqrt(h))};
  if (ends("o_proj.weight")) {
    return {0.0f, static_cast<float>(1.0 / std::sqrt(double(s.num_heads) * s.head_dim * layers))};
  }
  if (ends("down_proj.weight")) {
    return {0.0f, static_cast<float>(1.0 / std::sqrt(double(s.intermediate_size) * layers))};
  }
  return {0.0f, static_cast<float>(1.0 / std::sqrt(h))};  // k, v, gate, up
}

const char* TorchDTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "float32";
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
  }
  return "?";
}

// Writes one safetensors file tensor by tensor: the header first (every offset is known in
// advance), then each tensor generated, converted and appended, so that only one tensor is in
// memory at a time.
Status WriteShard(const SyntheticModelSpec& spec, const std::vector<TensorSpec>& tensors,
                  const std::string& path) {
  const size_t esize = DTypeSize(spec.dtype);
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", DTypeName(spec.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + numel * esize}}};
    offset += numel * esize;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IOError(tmp + ": cannot create");
  auto fail = [&](const std::string& what) {
    std::fclose(f);
    std::remove(tmp.c_str());
    return Status::IOError(tmp + ": " + what);
  };
  uint8_t len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  if (std::fwrite(len, 1, 8, f) != 8 ||
      std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
    return fail("write failed");
  }
  // Tensors are produced a group of chunks at a time (a few chunks per thread), so memory stays at
  // 4 × threads × kChunk elements however large the tensor.
  const int threads = cpu::DefaultThreads();
  const int64_t group_chunks = 4 * threads;
  std::vector<float> values(group_chunks * kChunk);
  std::vector<uint8_t> bytes(values.size() * esize);
  for (const TensorSpec& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    const uint64_t tensor_seed = spec.seed * 0x9e3779b97f4a7c15ull ^ Fnv1a(t.name);
    // Plain variables, not a structured binding: the lambda below captures them (clang 14 cannot
    // capture bindings).
    const auto scale = InitScale(spec, t.name);
    const auto mean = scale.first;
    const auto stddev = scale.second;
    const int64_t chunks = (numel + kChunk - 1) / kChunk;
    for (int64_t first = 0; first < chunks; first += group_chunks) {
      const int64_t count = std::min(group_chunks, chunks - first);
      cpu::ParallelFor(count, 1, threads, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const int64_t n = std::min(kChunk, numel - (first + c) * kChunk);
          FillChunk(tensor_seed, first + c, mean, stddev, values.data() + c * kChunk, n);
          FromFloat(spec.dtype, values.data() + c * kChunk, bytes.data() + c * kChunk * esize, n);
        }
      });
      const size_t group_bytes =
          static_cast<size_t>(std::min(numel - first * kChunk, count * kChunk)) * esize;
      if (std::fwrite(bytes.data(), 1, group_bytes, f) != group_bytes) return fail("write failed");
    }
  }
  if (std::fflush(f) != 0) return fail("flush failed");
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    return Status::IOError(tmp + ": close failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IOError(path + ": rename failed: " + ec.message());
  return Status::OK();
}

Status WriteText(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IOError(tmp + ": cannot create");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return Status::IOError(tmp + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IOError(path + ": rename failed: " + ec.message());
  return Status::OK();
}

SyntheticModelSpec SmallArch(std::string_view arch, bool small) {
  SyntheticModelSpec s;
  if (small) {
    s.num_layers = 4;
    s.hidden_size = 256;
    s.num_heads = 8;
    s.num_kv_heads = 2;
    s.head_dim = 32;
    s.intermediate_size = 688;
    s.vocab_size = 2048;
  }
  s.tokenizer_style = arch == "llama3"  ? SyntheticTokenizerStyle::kLlama3
                      : arch == "qwen2" ? SyntheticTokenizerStyle::kQwen2
                                        : SyntheticTokenizerStyle::kLlama2;
  if (arch == "llama3") {
    s.arch = Architecture::kLlama;
    s.rope.type = RopeConfig::Type::kLlama3;
    s.rope.theta = 500000.0;
    s.rope.factor = 8.0;
    s.rope.low_freq_factor = 1.0;
    s.rope.high_freq_factor = 4.0;
    s.rope.original_max_position_embeddings = 8192;
    s.max_position_embeddings = 131072;
  } else if (arch == "llama2") {
    s.arch = Architecture::kLlama;
    s.rope.theta = 10000.0;
    s.max_position_embeddings = 4096;
  } else if (arch == "mistral") {
    s.arch = Architecture::kMistral;
    s.rope.theta = 10000.0;
    s.max_position_embeddings = 32768;
    s.sliding_window = 4096;
  } else {  // qwen2
    s.arch = Architecture::kQwen2;
    s.rope.theta = 1000000.0;
    s.rms_norm_eps = 1e-6;
    s.max_position_embeddings = 32768;
    s.tie_word_embeddings = true;  // as Qwen2-0.5B/1.5B
    s.sliding_window = 32768;
    s.use_sliding_window = false;
  }
  return s;
}

}  // namespace

std::vector<std::string> SyntheticArchNames() { return {"llama3", "llama2", "mistral", "qwen2"}; }

std::vector<std::string> SyntheticPresetNames() {
  return {"tiny", "small", "llama-3.1-8b", "llama-2-7b", "mistral-7b", "qwen2-7b"};
}

StatusOr<SyntheticModelSpec> SyntheticPreset(std::string_view preset, std::string_view arch) {
  const std::vector<std::string> archs = SyntheticArchNames();
  if (!arch.empty() && std::find(archs.begin(), archs.end(), arch) == archs.end()) {
    return Status::InvalidArgument("unknown synthetic arch '" + std::string(arch) +
                                   "' (llama3, llama2, mistral, qwen2)");
  }
  if (preset == "tiny" || preset == "small") {
    SyntheticModelSpec s = SmallArch(arch.empty() ? "llama3" : arch, preset == "small");
    // The special tokens sit at the top of the small vocabularies (or at 0..2, SentencePiece-style).
    ASSIGN_OR_RETURN(SyntheticTokenizerLayout l, SyntheticTokenizerIds(s.tokenizer_style, s.vocab_size));
    s.bos_token_id = l.bos;
    s.eos_token_id = l.stop_ids.front();
    s.stop_token_ids = l.stop_ids;
    return s;
  }
  std::string_view fixed;
  SyntheticModelSpec s;
  if (preset == "llama-3.1-8b") {
    fixed = "llama3";
    s = SmallArch(fixed, false);
    s.num_layers = 32, s.hidden_size = 4096, s.num_heads = 32, s.num_kv_heads = 8, s.head_dim = 128;
    s.intermediate_size = 14336, s.vocab_size = 128256;
    s.bos_token_id = 128000, s.eos_token_id = 128001;
    s.tokenizer_special_base = 128000;
    s.stop_token_ids = {128001, 128004};  // <|end_of_text|>, <|eot_id|> of the synthetic tokenizer
  } else if (preset == "llama-2-7b") {
    fixed = "llama2";
    s = SmallArch(fixed, false);
    s.num_layers = 32, s.hidden_size = 4096, s.num_heads = 32, s.num_kv_heads = 32,
    s.head_dim = 128;
    s.intermediate_size = 11008, s.vocab_size = 32000;
    s.dtype = DType::kF16;  // Llama-2-7b-hf ships float16
  } else if (preset == "mistral-7b") {
    fixed = "mistral";
    s = SmallArch(fixed, false);
    s.num_layers = 32, s.hidden_size = 4096, s.num_heads = 32, s.num_kv_heads = 8, s.head_dim = 128;
    s.intermediate_size = 14336, s.vocab_size = 32000;
  } else if (preset == "qwen2-7b") {
    fixed = "qwen2";
    s = SmallArch(fixed, false);
    s.num_layers = 28, s.hidden_size = 3584, s.num_heads = 28, s.num_kv_heads = 4, s.head_dim = 128;
    s.intermediate_size = 18944, s.vocab_size = 152064;
    s.max_position_embeddings = 131072;
    s.sliding_window = 131072;
    s.tie_word_embeddings = false;
    s.bos_token_id = 151643, s.eos_token_id = 151643;
    s.tokenizer_special_base = 151643;
    s.stop_token_ids = {151643, 151645};  // <|endoftext|>, <|im_end|>
  } else {
    std::string names;
    for (const std::string& n : SyntheticPresetNames()) names += (names.empty() ? "" : ", ") + n;
    return Status::InvalidArgument("unknown synthetic preset '" + std::string(preset) + "' (" +
                                   names + ")");
  }
  if (!arch.empty() && arch != fixed) {
    return Status::InvalidArgument("preset '" + std::string(preset) + "' is a " +
                                   std::string(fixed) + " model; --arch " + std::string(arch) +
                                   " does not apply");
  }
  return s;
}

std::string SyntheticConfigJson(const SyntheticModelSpec& s) {
  json j;
  j["architectures"] = {ArchitectureName(s.arch)};
  j["model_type"] = s.arch == Architecture::kLlama     ? "llama"
                    : s.arch == Architecture::kMistral ? "mistral"
                                                       : "qwen2";
  j["hidden_size"] = s.hidden_size;
  j["intermediate_size"] = s.intermediate_size;
  j["num_hidden_layers"] = s.num_layers;
  j["num_attention_heads"] = s.num_heads;
  j["num_key_value_heads"] = s.num_kv_heads;
  j["head_dim"] = s.head_dim;
  j["vocab_size"] = s.vocab_size;
  j["max_position_embeddings"] = s.max_position_embeddings;
  j["rms_norm_eps"] = s.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["initializer_range"] = 0.02;
  j["attention_dropout"] = 0.0;
  j["tie_word_embeddings"] = s.tie_word_embeddings;
  j["torch_dtype"] = TorchDTypeName(s.dtype);
  j["bos_token_id"] = s.bos_token_id;
  j["eos_token_id"] = s.stop_token_ids.empty() ? json(s.eos_token_id) : json(s.stop_token_ids);
  j["use_cache"] = true;
  j["transformers_version"] = "4.46.0";
  if (s.arch == Architecture::kLlama) {
    j["attention_bias"] = s.attention_bias;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  if (s.arch == Architecture::kMistral) {
    j["sliding_window"] = s.sliding_window ? json(*s.sliding_window) : json(nullptr);
  }
  if (s.arch == Architecture::kQwen2) {
    j["use_sliding_window"] = s.use_sliding_window;
    j["sliding_window"] = s.sliding_window ? json(*s.sliding_window) : json(nullptr);
    j["max_window_layers"] = s.num_layers;
  }
  json scaling = nullptr;
  if (s.rope.type == RopeConfig::Type::kLinear) {
    scaling = {{"rope_type", "linear"}, {"factor", s.rope.factor}};
  } else if (s.rope.type == RopeConfig::Type::kLlama3) {
    scaling = {{"rope_type", "llama3"},
               {"factor", s.rope.factor},
               {"low_freq_factor", s.rope.low_freq_factor},
               {"high_freq_factor", s.rope.high_freq_factor},
               {"original_max_position_embeddings", s.rope.original_max_position_embeddings}};
  }
  if (s.rope_parameters_style) {
    json p = scaling.is_null() ? json{{"rope_type", "default"}} : scaling;
    p["rope_theta"] = s.rope.theta;
    if (s.partial_rotary_factor != 1.0) p["partial_rotary_factor"] = s.partial_rotary_factor;
    j["rope_parameters"] = p;
  } else {
    j["rope_theta"] = s.rope.theta;
    j["rope_scaling"] = scaling;
    if (s.partial_rotary_factor != 1.0) j["partial_rotary_factor"] = s.partial_rotary_factor;
  }
  return j.dump(2) + "\n";
}

Status WriteSyntheticModel(const SyntheticModelSpec& spec, const std::string& dir) {
  const std::string config_text = SyntheticConfigJson(spec);
  ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(config_text, "synthetic config.json"));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError(dir + ": cannot create directory: " + ec.message());
  // A previous model of another shard layout must not shadow this one.
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "model.safetensors.index.json" ||
        (name.starts_with("model") && name.ends_with(".safetensors"))) {
      fs::remove(entry.path(), ec);
    }
  }
  RETURN_IF_ERROR(WriteText((fs::path(dir) / "config.json").string(), config_text));
  if (spec.write_tokenizer)
    RETURN_IF_ERROR(WriteSyntheticTokenizer(spec.tokenizer_style, spec.vocab_size, spec.tokenizer_special_base, dir));
  json gen = {{"bos_token_id", spec.bos_token_id},
              {"eos_token_id", spec.stop_token_ids.empty() ? json(spec.eos_token_id) : json(spec.stop_token_ids)},
              {"do_sample", false},
              {"transformers_version", "4.46.0"}};
  RETURN_IF_ERROR(
      WriteText((fs::path(dir) / "generation_config.json").string(), gen.dump(2) + "\n"));

  const size_t esize = DTypeSize(spec.dtype);
  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (TensorSpec& t : ExpectedTensors(config)) {
    uint64_t bytes = esize;
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    if (!shards.back().empty() && shard_bytes + bytes > spec.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(std::move(t));
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  if (shards.size() == 1) {
    return WriteShard(spec, shards[0], (fs::path(dir) / "model.safetensors").string());
  }
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    RETURN_IF_ERROR(WriteShard(spec, shards[i], (fs::path(dir) / name).string()));
    for (const TensorSpec& t : shards[i]) weight_map[t.name] = name;
  }
  json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  return WriteText((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace blockkv
