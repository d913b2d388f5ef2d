#include "db/block_exchange.h"

#include <nlohmann/json.hpp>

namespace blockkv {

namespace {

StatusOr<BlockFile> FromReader(std::unique_ptr<SafetensorsReader> r) {
  const std::string& path = r->path();
  auto bad = [&](const std::string& what) { return Status::InvalidArgument(path + ": " + what); };
  BlockFile bf;
  BlockToPut& p = bf.put;
  const auto& md = r->metadata();
  auto fp = md.find("model_fingerprint");
  if (fp == md.end()) return bad("metadata has no model_fingerprint");
  auto h = Hash128::FromHex(fp->second);
  if (!h) return bad("model_fingerprint must be 32 hex digits, got '" + fp->second + "'");
  p.model = ModelFingerprint(*h);
  auto tk = md.find("tokens");
  if (tk == md.end()) return bad("metadata has no tokens");
  nlohmann::json tokens = nlohmann::json::parse(tk->second, nullptr, false);
  if (tokens.is_discarded() || !tokens.is_array())
    return bad("metadata tokens must be a JSON list of ints");
  for (const auto& t : tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < INT32_MIN || t.get<int64_t>() > INT32_MAX)
      return bad("metadata tokens must be a JSON list of 32-bit ints");
    p.tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  if (p.tokens.empty()) return bad("block has no tokens");
  if (auto nm = md.find("name"); nm != md.end()) p.name = nm->second;

  // Layers must be k.0..k.{L-1} and v.0..v.{L-1}, nothing else.
  uint32_t layers = 0;
  while (r->tensors().count("k." + std::to_string(layers))) ++layers;
  if (layers == 0) return bad("no tensor k.0");
  if (r->tensors().size() != 2u * layers)
    return bad("expected exactly tensors k.0..k." + std::to_string(layers - 1) + " and v.0..v." +
               std::to_string(layers - 1) + ", found " + std::to_string(r->tensors().size()) +
               " tensors");
  p.num_layers = layers;
  const TensorView* first = nullptr;
  for (uint32_t l = 0; l < layers; ++l) {
    for (const char* kind : {"k.", "v."}) {
      const std::string name = kind + std::to_string(l);
      auto it = r->tensors().find(name);
      if (it == r->tensors().end()) return bad("missing tensor " + name);
      const TensorView& t = it->second;
      if (!t.dtype) return bad("tensor " + name + " has dtype " + t.dtype_name + " (need BF16, F16 or F32)");
      if (t.shape.size() != 3) return bad("tensor " + name + " must have shape [tokens, kv_heads, head_dim]");
      if (first == nullptr) {
        first = &t;
        if (t.shape[0] != static_cast<int64_t>(p.tokens.size()))
          return bad("tensor " + name + " has " + std::to_string(t.shape[0]) +
                     " tokens, metadata lists " + std::to_string(p.tokens.size()));
        if (t.shape[1] <= 0 || t.shape[2] <= 0 || t.shape[1] > 65535 || t.shape[2] > 65535)
          return bad("tensor " + name + " has a bad shape");
        p.dtype = *t.dtype;
        p.kv_heads = static_cast<uint32_t>(t.shape[1]);
        p.head_dim = static_cast<uint32_t>(t.shape[2]);
      } else if (t.shape != first->shape || *t.dtype != p.dtype) {
        return bad("tensor " + name + " differs in shape or dtype from " + first->name);
      }
      (kind[0] == 'k' ? p.k : p.v).push_back(t.data);
    }
  }
  bf.file = std::move(r);
  return bf;
}

}  // namespace

StatusOr<BlockFile> ReadBlockFile(const std::string& path) {
  ASSIGN_OR_RETURN(auto r, SafetensorsReader::Open(path));
  return FromReader(std::move(r));
}

StatusOr<BlockFile> ParseBlockFile(std::string image, const std::string& label) {
  ASSIGN_OR_RETURN(auto r, SafetensorsReader::FromBuffer(std::move(image), label));
  return FromReader(std::move(r));
}

Status WriteBlockFile(BlockStore* store, const BlockId& id, const std::string& path) {
  ASSIGN_OR_RETURN(BlockMeta m, store->GetMeta(id));
  const uint64_t tb = m.tensor_bytes();
  std::vector<std::vector<uint8_t>> k(m.num_layers), v(m.num_layers);
  std::vector<LayerRequest> reqs;
  for (uint32_t l = 0; l < m.num_layers; ++l) {
    k[l].resize(tb);
    v[l].resize(tb);
    reqs.push_back({id, l, k[l].data(), v[l].data(), tb});
  }
  RETURN_IF_ERROR(store->GetLayers(reqs));
  std::vector<TensorToWrite> ts;
  const std::vector<int64_t> shape = {m.num_tokens(), m.kv_heads, m.head_dim};
  for (uint32_t l = 0; l < m.num_layers; ++l) {
    ts.push_back({"k." + std::to_string(l), m.dtype, shape, k[l].data()});
    ts.push_back({"v." + std::to_string(l), m.dtype, shape, v[l].data()});
  }
  std::map<std::string, std::string> md = {{"model_fingerprint", m.model.ToHex()},
                                           {"tokens", nlohmann::json(m.tokens).dump()},
                                           {"format", "blockkv-block 1"}};
  if (!m.name.empty()) md["name"] = m.name;
  return WriteSafetensors(path, ts, md);
}

}  // namespace blockkv
