#include "attention/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>

namespace blockkv {

namespace {
using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
// One layer of a host-tier block into `dtype` (a copy when the dtypes agree, as a store read would give).
void CopyHostLayer(const HostBlock& b, uint32_t layer, DType dtype, void* k, void* v, size_t n) {
  if (b.dtype == dtype) {
    std::memcpy(k, b.k(layer), b.tensor_bytes);
    std::memcpy(v, b.v(layer), b.tensor_bytes);
    return;
  }
  std::vector<float> f(n);
  ToFloat(b.dtype, b.k(layer), f.data(), n);
  FromFloat(dtype, f.data(), k, n);
  ToFloat(b.dtype, b.v(layer), f.data(), n);
  FromFloat(dtype, f.data(), v, n);
}

// A prompt's blocks as a BlockLayerSource: hits read from the store (one GetLayers call per layer, parallel
// on the store's pool; converted when stored in another dtype), misses converted from their fresh encodes.
class LayerSource final : public BlockLayerSource {
 public:
  LayerSource(BlockStore* store, const ModelConfig& config, const std::vector<PromptBlock>& blocks,
              const std::vector<BlockId>& ids, const std::vector<bool>& hit, const std::vector<BlockMeta>& metas,
              const std::vector<BlockKV>& kvs, const std::vector<std::shared_ptr<const HostBlock>>& host)
      : store_(store), row_(static_cast<size_t>(config.num_kv_heads) * config.head_dim), ids_(ids), hit_(hit),
        metas_(metas), kvs_(kvs), host_(host) {
    for (const auto& b : blocks) {
      sizes_.push_back(b.tokens.size());
      tokens_ += static_cast<int64_t>(b.tokens.size());
    }
  }

  int64_t tokens() const override { return tokens_; }
  // Raw bytes of the hits' keys and values read so far.
  uint64_t bytes() const { return bytes_.load(); }
  // Milliseconds spent copying host-tier blocks, summed over the reader threads.
  double host_ms() const { return host_us_.load() / 1e3; }

  Status ReadLayer(uint32_t layer, DType dtype, void* k_out, void* v_out) override {
    const size_t es = DTypeSize(dtype);
    std::vector<LayerRequest> reqs;
    std::vector<size_t> converted;                // blocks read into tmp (stored in another dtype)
    std::vector<std::vector<uint8_t>> tmp;        // 2 per converted block
    tmp.reserve(2 * sizes_.size());               // reqs point into its elements
    size_t row_offset = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < sizes_.size(); ++i) {
      const size_t n = sizes_[i] * row_;
      char* k = static_cast<char*>(k_out) + row_offset * row_ * es;
      char* v = static_cast<char*>(v_out) + row_offset * row_ * es;
      row_offset += sizes_[i];
      if (!hit_[i]) {
        FromFloat(dtype, kvs_[i].k[layer].data(), k, n);
        FromFloat(dtype, kvs_[i].v[layer].data(), v, n);
        continue;
      }
      if (host_[i] != nullptr) {
        const auto h0 = Clock::now();
        CopyHostLayer(*host_[i], layer, dtype, k, v, n);
        bytes += 2 * host_[i]->tensor_bytes;
        host_us_ += static_cast<uint64_t>(Ms(h0, Clock::now()) * 1e3);
        continue;
      }
      const BlockMeta& m = metas_[i];
      const uint64_t tb = m.tensor_bytes();
      bytes += 2 * tb;
      if (m.dtype == dtype) {
        reqs.push_back({ids_[i], layer, k, v, tb});
      } else {
        converted.push_back(i);
        tmp.emplace_back(tb);
        tmp.emplace_back(tb);
        reqs.push_back({ids_[i], layer, tmp[tmp.size() - 2].data(), tmp.back().data(), tb});
      }
    }
    RETURN_IF_ERROR(store_->GetLayers(reqs));
    if (!converted.empty()) {
      std::vector<float> f;
      size_t c = 0;
      row_offset = 0;
      for (size_t i = 0; i < sizes_.size(); ++i) {
        const size_t n = sizes_[i] * row_;
        if (c < converted.size() && converted[c] == i) {
          f.resize(n);
          for (int kind = 0; kind < 2; ++kind) {
            ToFloat(metas_[i].dtype, tmp[2 * c + kind].data(), f.data(), n);
            FromFloat(dtype, f.data(), static_cast<char*>(kind == 0 ? k_out : v_out) + row_offset * row_ * es, n);
          }
          ++c;
        }
        row_offset += sizes_[i];
      }
    }
    bytes_ += bytes;
    return Status::OK();
  }

 private:
  BlockStore* store_;
  size_t row_;
  const std::vector<BlockId>& ids_;
  const std::vector<bool>& hit_;
  const std::vector<BlockMeta>& metas_;
  const std::vector<BlockKV>& kvs_;
  const std::vector<std::shared_ptr<const HostBlock>>& host_;
  std::vector<size_t> sizes_;
  int64_t tokens_ = 0;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> host_us_{0};
};

}  // namespace

std::vector<int32_t> FlattenPrompt(const EngineRequest& request, std::vector<int64_t>* block_sizes) {
  std::vector<int32_t> all;
  if (block_sizes) block_sizes->clear();
  for (const auto& b : request.blocks) {
    all.insert(all.end(), b.tokens.begin(), b.tokens.end());
    if (block_sizes) block_sizes->push_back(static_cast<int64_t>(b.tokens.size()));
  }
  all.insert(all.end(), request.final_tokens.begin(), request.final_tokens.end());
  if (block_sizes) block_sizes->push_back(static_cast<int64_t>(request.final_tokens.size()));
  return all;
}

Engine::Engine(const Runtime* runtime, BlockStore* store, const EngineOptions& options)
    : owned_backend_(std::make_unique<CpuBackend>(runtime)),
      backend_(owned_backend_.get()),
      store_(store),
      options_(options),
      host_tier_(options.host_tier_bytes, options.tier_policy, &metrics_.tier(BlockSource::kHost)) {}

Engine::Engine(ModelBackend* backend, BlockStore* store, const EngineOptions& options)
    : backend_(backend),
      store_(store),
      options_(options),
      host_tier_(options.host_tier_bytes, options.tier_policy, &metrics_.tier(BlockSource::kHost)) {}

Engine::~Engine() = default;

StatusOr<BlockKV> Engine::Encode(std::span<const int32_t> tokens) {
  ASSIGN_OR_RETURN(BlockKV kv, backend_->EncodeBlock(tokens));
  if (options_.kv_dtype != DType::kF32) {
    // Round exactly as a store round trip would, so fresh and stored blocks are interchangeable.
    std::vector<uint16_t> tmp;
    for (auto* layers : {&kv.k, &kv.v})
      for (auto& t : *layers) {
        tmp.resize(t.size());
        FromFloat(options_.kv_dtype, t.data(), tmp.data(), t.size());
        ToFloat(options_.kv_dtype, tmp.data(), t.data(), t.size());
      }
  }
  return kv;
}

Status Engine::Store(const BlockKV& kv, std::span<const int32_t> tokens, const std::string& name) {
  BlockToPut p;
  p.model = backend_->fingerprint();
  p.tokens.assign(tokens.begin(), tokens.end());
  p.num_layers = backend_->config().num_layers;
  p.kv_heads = backend_->config().num_kv_heads;
  p.head_dim = backend_->config().head_dim;
  p.dtype = options_.kv_dtype;
  p.name = name;
  std::vector<std::vector<uint8_t>> conv;
  if (options_.kv_dtype == DType::kF32) {
    for (uint32_t l = 0; l < p.num_layers; ++l) {
      p.k.push_back(kv.k[l].data());
      p.v.push_back(kv.v[l].data());
    }
  } else {
    conv.resize(2 * p.num_layers);
    for (uint32_t l = 0; l < p.num_layers; ++l) {
      for (int kind = 0; kind < 2; ++kind) {
        const auto& src = kind == 0 ? kv.k[l] : kv.v[l];
        auto& dst = conv[2 * l + kind];
        dst.resize(src.size() * DTypeSize(options_.kv_dtype));
        FromFloat(options_.kv_dtype, src.data(), dst.data(), src.size());
      }
      p.k.push_back(conv[2 * l].data());
      p.v.push_back(conv[2 * l + 1].data());
    }
  }
  return store_->Put(p).status();
}

Status Engine::CheckMeta(const BlockId& id, const BlockMeta& m) const {
  const std::string what = "block " + id.ToHex();
  if (m.model != backend_->fingerprint())
    return Status::InvalidArgument(what + " belongs to another model");
  if (m.num_layers != static_cast<uint32_t>(backend_->config().num_layers) ||
      m.kv_heads != static_cast<uint32_t>(backend_->config().num_kv_heads) ||
      m.head_dim != static_cast<uint32_t>(backend_->config().head_dim))
    return Status::InvalidArgument(what + " has a shape that does not match the model");
  return Status::OK();
}

Status Engine::Load(const BlockId& id, BlockKV* out, uint64_t* bytes) {
  ASSIGN_OR_RETURN(BlockMeta m, store_->GetMeta(id));
  RETURN_IF_ERROR(CheckMeta(id, m));
  return LoadLayers(id, m, out, bytes);
}

Status Engine::LoadLayers(const BlockId& id, const BlockMeta& m, BlockKV* out, uint64_t* bytes) {
  const uint64_t tb = m.tensor_bytes();
  const size_t n = size_t{m.num_tokens()} * m.kv_heads * m.head_dim;
  out->tokens = m.num_tokens();
  out->k.assign(m.num_layers, std::vector<float>(n));
  out->v.assign(m.num_layers, std::vector<float>(n));
  std::vector<std::vector<uint8_t>> raw;
  std::vector<LayerRequest> reqs;
  if (m.dtype == DType::kF32) {
    for (uint32_t l = 0; l < m.num_layers; ++l)
      reqs.push_back({id, l, out->k[l].data(), out->v[l].data(), tb});
  } else {
    raw.assign(2 * m.num_layers, std::vector<uint8_t>(tb));
    for (uint32_t l = 0; l < m.num_layers; ++l)
      reqs.push_back({id, l, raw[2 * l].data(), raw[2 * l + 1].data(), tb});
  }
  RETURN_IF_ERROR(store_->GetLayers(reqs));
  if (m.dtype != DType::kF32)
    for (uint32_t l = 0; l < m.num_layers; ++l) {
      ToFloat(m.dtype, raw[2 * l].data(), out->k[l].data(), n);
      ToFloat(m.dtype, raw[2 * l + 1].data(), out->v[l].data(), n);
    }
  if (bytes) *bytes = 2 * tb * m.num_layers;
  return Status::OK();
}

StatusOr<BlockId> Engine::Precompute(std::span<const int32_t> tokens, const std::string& name,
                                     bool* was_present) {
  std::lock_guard<std::mutex> lock(run_mu_);
  if (store_ == nullptr) return Status::InvalidArgument("precompute needs a store");
  const BlockId id = ComputeBlockId(backend_->fingerprint(), tokens);
  ASSIGN_OR_RETURN(bool present, store_->Contains(id));
  if (was_present) *was_present = present;
  if (present) {
    if (!name.empty()) RETURN_IF_ERROR(store_->SetName(id, name));
    return id;
  }
  ASSIGN_OR_RETURN(BlockKV kv, Encode(tokens));
  RETURN_IF_ERROR(Store(kv, tokens, name));
  return id;
}

StatusOr<EngineResult> Engine::Run(const EngineRequest& req) {
  const auto start = Clock::now();
  std::lock_guard<std::mutex> lock(run_mu_);
  StatusOr<EngineResult> r = RunLocked(req);
  metrics_.requests += 1;
  if (!r.ok()) {
    metrics_.failed_requests += 1;
    return r;
  }
  const EngineTiming& t = r->timing;
  metrics_.prompt_tokens += t.prompt_tokens;
  metrics_.generated_tokens += t.generated_tokens;
  metrics_.ttft_ms.Record(t.ttft_ms);
  if (t.generated_tokens > 0) metrics_.decode_ms_per_token.Record(t.decode_ms / t.generated_tokens);
  metrics_.request_ms.Record(Ms(start, Clock::now()));
  return r;
}

void Engine::AdmitToHostTier(const EngineRequest& req, const EngineResult& r, const std::vector<BlockMeta>& metas,
                             const std::vector<BlockKV>& kvs) {
  const ModelConfig& c = backend_->config();
  for (size_t i = 0; i < req.blocks.size(); ++i) {
    const BlockSource src = r.block_source[i];
    if (src == BlockSource::kHost || src == BlockSource::kGpu) continue;
    auto b = std::make_shared<HostBlock>();
    b->id = r.block_ids[i];
    b->tokens = static_cast<uint32_t>(req.blocks[i].tokens.size());
    b->layers = static_cast<uint32_t>(c.num_layers);
    const size_t n = size_t{b->tokens} * c.num_kv_heads * c.head_dim;
    if (src == BlockSource::kStore) {
      // The store's bytes, read again (the page cache has them): the tier then holds exactly what a
      // store read gives. A read that fails (evicted meanwhile) just leaves the block out.
      const BlockMeta& m = metas[i];
      b->dtype = m.dtype;
      b->tensor_bytes = m.tensor_bytes();
      b->Allocate();
      std::vector<LayerRequest> reqs;
      for (uint32_t l = 0; l < b->layers; ++l) reqs.push_back({b->id, l, b->k(l), b->v(l), b->tensor_bytes});
      if (!store_->GetLayers(reqs).ok()) continue;
    } else {
      // A fresh encode, already rounded through kv_dtype: converting it gives the bytes the store holds.
      b->dtype = options_.kv_dtype;
      b->tensor_bytes = n * DTypeSize(b->dtype);
      b->Allocate();
      for (uint32_t l = 0; l < b->layers; ++l) {
        FromFloat(b->dtype, kvs[i].k[l].data(), b->k(l), n);
        FromFloat(b->dtype, kvs[i].v[l].data(), b->v(l), n);
      }
    }
    host_tier_.Offer(std::move(b));
  }
}

StatusOr<EngineResult> Engine::RunLocked(const EngineRequest& req) {
  EngineResult r;
  EngineTiming& t = r.timing;
  const auto start = Clock::now();
  std::vector<size_t> to_store;
  std::vector<BlockKV> kvs(req.blocks.size());
  int prompt_tokens = static_cast<int>(req.final_tokens.size());
  for (const auto& b : req.blocks) prompt_tokens += static_cast<int>(b.tokens.size());
  t.prompt_tokens = prompt_tokens;
  std::vector<BlockMeta> metas(req.blocks.size());
  std::vector<std::shared_ptr<const HostBlock>> host(req.blocks.size());  // pinned until the request ends

  if (req.mode == AttentionMode::kFull) {
    const std::vector<int32_t> all = FlattenPrompt(req);
    const auto p0 = Clock::now();
    ASSIGN_OR_RETURN(r.logits, backend_->PrefillFull(all, req.prefill));
    t.prefill_ms = Ms(p0, Clock::now());
    if (req.prefill.all_logits) {
      // Like block mode, return the final block's positions only.
      const size_t keep = req.final_tokens.size() * static_cast<size_t>(backend_->config().vocab_size);
      r.logits.erase(r.logits.begin(), r.logits.end() - static_cast<std::ptrdiff_t>(keep));
    }
  } else {
    // Resolve every block: the host tier, else the store (hits by their metadata, read below), else
    // encoded now.
    for (size_t i = 0; i < req.blocks.size(); ++i) {
      const auto& b = req.blocks[i];
      if (b.tokens.empty())
        return Status::InvalidArgument("block " + std::to_string(i) + " has no tokens");
      auto l0 = Clock::now();
      const BlockId id = ComputeBlockId(backend_->fingerprint(), b.tokens);
      r.block_ids.push_back(id);
      bool hit = false;
      host[i] = host_tier_.Acquire(id);
      if (host[i] != nullptr) {
        hit = true;
        r.block_source.push_back(BlockSource::kHost);
      } else if (store_ != nullptr) {
        StatusOr<BlockMeta> m = store_->GetMeta(id);
        if (m.ok()) {
          RETURN_IF_ERROR(CheckMeta(id, *m));
          metas[i] = *m;
          hit = true;
          r.block_source.push_back(BlockSource::kStore);
        } else if (!m.status().IsNotFound()) {
          return m.status();
        }
      }
      if (!hit) r.block_source.push_back(BlockSource::kEncoded);
      t.lookup_ms += Ms(l0, Clock::now());
      if (!hit) {
        auto e0 = Clock::now();
        ASSIGN_OR_RETURN(kvs[i], Encode(b.tokens));
        t.encode_ms += Ms(e0, Clock::now());
        to_store.push_back(i);
      }
      r.block_hit.push_back(hit);
    }
    bool done = false;
    const bool any_hit = std::find(r.block_hit.begin(), r.block_hit.end(), true) != r.block_hit.end();
    if (any_hit && options_.stream_layers && backend_->streams()) {
      // Hits stream from the store layer by layer during the prefill; misses come from memory.
      LayerSource source(store_, backend_->config(), req.blocks, r.block_ids, r.block_hit, metas, kvs, host);
      StreamTiming st;
      const auto p0 = Clock::now();
      StatusOr<std::vector<float>> logits = backend_->PrefillStreamed(source, req.final_tokens, req.prefill, &st);
      if (logits.ok()) {
        r.logits = std::move(logits).value();
        t.prefill_ms = Ms(p0, Clock::now());
        t.host_ms = source.host_ms();
        t.load_ms = std::max(0.0, st.read_ms - t.host_ms);
        t.stream_wait_ms = st.wait_ms;
        t.streamed = true;
        t.bytes_loaded = source.bytes();
        done = true;
      } else if (!logits.status().IsNotFound()) {
        return logits.status();
      }
      // NotFound: a block was evicted since its lookup; load block by block below (re-encoding it).
    }
    if (!done) {
      for (size_t i = 0; i < req.blocks.size(); ++i) {
        if (!r.block_hit[i]) continue;
        if (host[i] != nullptr) {
          const auto h0 = Clock::now();
          const HostBlock& hb = *host[i];
          const size_t n = hb.tensor_bytes / DTypeSize(hb.dtype);
          kvs[i].tokens = hb.tokens;
          kvs[i].k.assign(hb.layers, std::vector<float>(n));
          kvs[i].v.assign(hb.layers, std::vector<float>(n));
          for (uint32_t l = 0; l < hb.layers; ++l) {
            ToFloat(hb.dtype, hb.k(l), kvs[i].k[l].data(), n);
            ToFloat(hb.dtype, hb.v(l), kvs[i].v[l].data(), n);
          }
          t.bytes_loaded += hb.bytes();
          t.host_ms += Ms(h0, Clock::now());
          continue;
        }
        const auto l1 = Clock::now();
        uint64_t bytes = 0;
        Status s = LoadLayers(r.block_ids[i], metas[i], &kvs[i], &bytes);  // metadata checked at lookup
        t.load_ms += Ms(l1, Clock::now());
        if (s.IsNotFound()) {  // evicted between the lookup and the read
          r.block_hit[i] = false;
          r.block_source[i] = BlockSource::kEncoded;
          auto e0 = Clock::now();
          ASSIGN_OR_RETURN(kvs[i], Encode(req.blocks[i].tokens));
          t.encode_ms += Ms(e0, Clock::now());
          to_store.push_back(i);
        } else {
          RETURN_IF_ERROR(s);
          t.bytes_loaded += bytes;
        }
      }
      std::vector<const BlockKV*> ptrs;
      for (const auto& kv : kvs) ptrs.push_back(&kv);
      const auto p0 = Clock::now();
      ASSIGN_OR_RETURN(r.logits, backend_->Prefill(ptrs, req.final_tokens, req.prefill));
      t.prefill_ms = Ms(p0, Clock::now());
    }
    for (bool h : r.block_hit) h ? ++t.hits : ++t.misses;
    for (size_t i = 0; i < r.block_source.size(); ++i) {
      EngineMetrics::TierCounters& tc = metrics_.tier(r.block_source[i]);
      tc.blocks += 1;
      if (r.block_source[i] == BlockSource::kHost) {
        ++t.host_hits;
        tc.bytes += host[i]->bytes();
      } else if (r.block_source[i] == BlockSource::kStore) {
        tc.bytes += 2 * metas[i].tensor_bytes() * metas[i].num_layers;
      }
    }
  }

  // The first token is picked from these logits (microseconds): they mark the time to first token.
  t.ttft_ms = Ms(start, Clock::now());
  if (req.decode.max_new_tokens > 0) {
    const int vocab = backend_->config().vocab_size;
    std::span<const float> last(r.logits.data() + r.logits.size() - vocab, vocab);
    const auto d0 = Clock::now();
    ASSIGN_OR_RETURN(r.tokens, backend_->Decode(last, req.decode));
    t.decode_ms = Ms(d0, Clock::now());
  }
  t.generated_tokens = static_cast<int>(r.tokens.size());

  if (store_ != nullptr && options_.store_misses && req.mode == AttentionMode::kBlock) {
    const auto s0 = Clock::now();
    for (size_t i : to_store)
      RETURN_IF_ERROR(Store(kvs[i], req.blocks[i].tokens, req.blocks[i].name));
    t.store_ms = Ms(s0, Clock::now());
  }
  if (host_tier_.enabled() && req.mode == AttentionMode::kBlock) {
    const auto a0 = Clock::now();
    AdmitToHostTier(req, r, metas, kvs);
    t.admit_ms = Ms(a0, Clock::now());
  }
  return r;
}

}  // namespace blockkv
