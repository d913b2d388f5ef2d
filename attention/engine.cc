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

// The blocks of a prompt that must be read as a BlockLayerSource: store hits (one GetLayers call per layer,
// parallel on the store's pool; converted when stored in another dtype), host-tier hits not in pinned memory,
// and misses converted from their fresh encodes. Blocks not in `read` (GPU-tier hits, pinned host hits) are
// left to the backend.
class LayerSource final : public BlockLayerSource {
 public:
  LayerSource(BlockStore* store, const ModelConfig& config, const std::vector<PromptBlock>& blocks,
              const std::vector<BlockId>& ids, const std::vector<bool>& hit, const std::vector<BlockMeta>& metas,
              const std::vector<BlockKV>& kvs, const std::vector<std::shared_ptr<const HostBlock>>& host,
              const std::vector<bool>& read)
      : store_(store), row_(static_cast<size_t>(config.num_kv_heads) * config.head_dim), ids_(ids), hit_(hit),
        metas_(metas), kvs_(kvs), host_(host), read_(read) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      sizes_.push_back(read[i] ? blocks[i].tokens.size() : 0);
      tokens_ += static_cast<int64_t>(sizes_.back());
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
      if (!read_[i]) continue;
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
    if (!reqs.empty()) RETURN_IF_ERROR(store_->GetLayers(reqs));
    if (!converted.empty()) {
      std::vector<float> f;
      size_t c = 0;
      row_offset = 0;
      for (size_t i = 0; i < sizes_.size(); ++i) {
        if (!read_[i]) continue;
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
  const std::vector<bool>& read_;
  std::vector<size_t> sizes_;
  int64_t tokens_ = 0;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> host_us_{0};
};

}  // namespace

nlohmann::json TimingToJson(const EngineTiming& t) {
  return {{"lookup_ms", t.lookup_ms},       {"load_ms", t.load_ms},
          {"encode_ms", t.encode_ms},       {"prefill_ms", t.prefill_ms},
          {"ttft_ms", t.ttft_ms},           {"decode_ms", t.decode_ms},
          {"store_ms", t.store_ms},         {"hits", t.hits},
          {"misses", t.misses},             {"host_ms", t.host_ms},
          {"host_hits", t.host_hits},       {"gpu_ms", t.gpu_ms},
          {"gpu_hits", t.gpu_hits},         {"admit_ms", t.admit_ms},
          {"bytes_loaded", t.bytes_loaded}, {"prompt_tokens", t.prompt_tokens},
          {"generated_tokens", t.generated_tokens}, {"streamed", t.streamed},
          {"stream_wait_ms", t.stream_wait_ms}};
}

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

namespace {

// The host tier's arena: the whole budget pinned once, where the backend copies from it directly.
std::unique_ptr<HostArena> NewHostArena(ModelBackend* backend, uint64_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = backend->AllocateHostMemory(bytes);
  if (p == nullptr) return nullptr;
  return std::make_unique<HostArena>(p, bytes, [backend](void* q) { backend->FreeHostMemory(q); });
}

}  // namespace

Engine::Engine(const Runtime* runtime, BlockStore* store, const EngineOptions& options)
    : Engine(static_cast<ModelBackend*>(nullptr), store, options, std::make_unique<CpuBackend>(runtime)) {}

Engine::Engine(ModelBackend* backend, BlockStore* store, const EngineOptions& options)
    : Engine(backend, store, options, nullptr) {}

Engine::Engine(ModelBackend* backend, BlockStore* store, const EngineOptions& options,
               std::unique_ptr<ModelBackend> owned)
    : owned_backend_(std::move(owned)),
      backend_(owned_backend_ != nullptr ? owned_backend_.get() : backend),
      store_(store),
      options_(options),
      host_arena_(NewHostArena(backend_, options.host_tier_bytes)),
      host_dtype_(host_arena_ != nullptr ? backend_->stream_dtype() : options.kv_dtype),
      host_tier_(options.host_tier_bytes, options.tier_policy, &metrics_.tier(BlockSource::kHost)),
      gpu_tier_(backend_->device_tier() && options.stream_layers ? options.gpu_tier_bytes : 0, options.tier_policy,
                &metrics_.tier(BlockSource::kGpu)) {}

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

struct Engine::Request {
  const EngineRequest& req;
  EngineResult& r;
  std::vector<BlockMeta> metas;  // store hits
  std::vector<BlockKV> kvs;      // misses' fresh encodes (and, unstreamed, every block's layers)
  std::vector<std::shared_ptr<const HostBlock>> host;     // host-tier hits, pinned until the request ends
  std::vector<std::shared_ptr<const ResidentBlock>> gpu;  // GPU-tier hits, likewise
  std::vector<size_t> to_store;
  Request(const EngineRequest& q, EngineResult& res)
      : req(q), r(res), metas(q.blocks.size()), kvs(q.blocks.size()), host(q.blocks.size()), gpu(q.blocks.size()) {}
};

Status Engine::BlockLayer(const Request& q, size_t i, uint32_t layer, DType dtype, void* k, void* v) {
  const ModelConfig& c = backend_->config();
  const size_t n = q.req.blocks[i].tokens.size() * static_cast<size_t>(c.num_kv_heads) * c.head_dim;
  if (q.host[i] != nullptr) {
    CopyHostLayer(*q.host[i], layer, dtype, k, v, n);
    return Status::OK();
  }
  if (!q.kvs[i].k.empty()) {  // a fresh encode, already rounded through kv_dtype
    FromFloat(dtype, q.kvs[i].k[layer].data(), k, n);
    FromFloat(dtype, q.kvs[i].v[layer].data(), v, n);
    return Status::OK();
  }
  // A store hit, read again (the page cache has it): the tier then holds exactly what a store read gives.
  const BlockMeta& m = q.metas[i];
  const uint64_t tb = m.tensor_bytes();
  if (m.dtype == dtype) {
    LayerRequest one{q.r.block_ids[i], layer, k, v, tb};
    return store_->GetLayers(std::span<const LayerRequest>(&one, 1));
  }
  std::vector<uint8_t> rk(tb), rv(tb);
  LayerRequest one{q.r.block_ids[i], layer, rk.data(), rv.data(), tb};
  RETURN_IF_ERROR(store_->GetLayers(std::span<const LayerRequest>(&one, 1)));
  std::vector<float> f(n);
  ToFloat(m.dtype, rk.data(), f.data(), n);
  FromFloat(dtype, f.data(), k, n);
  ToFloat(m.dtype, rv.data(), f.data(), n);
  FromFloat(dtype, f.data(), v, n);
  return Status::OK();
}

void Engine::Admit(Request& q) {
  const ModelConfig& c = backend_->config();
  for (size_t i = 0; i < q.req.blocks.size(); ++i) {
    const BlockSource src = q.r.block_source[i];
    if (src == BlockSource::kGpu) continue;  // already in the fastest tier
    const BlockId& id = q.r.block_ids[i];
    const uint32_t tokens = static_cast<uint32_t>(q.req.blocks[i].tokens.size());
    const uint64_t n = uint64_t{tokens} * c.num_kv_heads * c.head_dim;
    if (host_tier_.enabled() && src != BlockSource::kHost) {
      const uint64_t tb = n * DTypeSize(host_dtype_);
      host_tier_.Offer(id, 2 * tb * c.num_layers, [&]() -> std::shared_ptr<HostBlock> {
        auto b = std::make_shared<HostBlock>();
        b->id = id;
        b->dtype = host_dtype_;
        b->tokens = tokens;
        b->layers = static_cast<uint32_t>(c.num_layers);
        b->tensor_bytes = tb;
        if (!b->Allocate(host_arena_.get())) return nullptr;  // no free run that large in the arena
        for (uint32_t l = 0; l < b->layers; ++l)
          if (!BlockLayer(q, i, l, b->dtype, b->k(l), b->v(l)).ok()) return nullptr;  // e.g. evicted meanwhile
        q.host[i] = b;  // the GPU tier's offer below copies from it instead of reading the store again
        return b;
      });
    }
    if (gpu_tier_.enabled()) {
      const DType dt = backend_->stream_dtype();
      gpu_tier_.Offer(id, 2 * n * DTypeSize(dt) * c.num_layers, [&]() -> std::shared_ptr<ResidentBlock> {
        StatusOr<std::unique_ptr<ResidentBlock>> b = backend_->MakeResident(
            tokens, [&](uint32_t l, void* k, void* v) { return BlockLayer(q, i, l, dt, k, v); });
        if (!b.ok()) return nullptr;  // out of device memory, or the block's data could not be read
        return std::shared_ptr<ResidentBlock>(std::move(b).value());
      });
    }
  }
}

StatusOr<EngineResult> Engine::RunLocked(const EngineRequest& req) {
  EngineResult r;
  EngineTiming& t = r.timing;
  const auto start = Clock::now();
  Request q(req, r);
  int prompt_tokens = static_cast<int>(req.final_tokens.size());
  for (const auto& b : req.blocks) prompt_tokens += static_cast<int>(b.tokens.size());
  t.prompt_tokens = prompt_tokens;
  const bool stream = options_.stream_layers && backend_->streams();

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
    // Resolve every block: the GPU tier, else the host tier, else the store (hits by their metadata, read
    // below), else encoded now.
    for (size_t i = 0; i < req.blocks.size(); ++i) {
      const auto& b = req.blocks[i];
      if (b.tokens.empty())
        return Status::InvalidArgument("block " + std::to_string(i) + " has no tokens");
      auto l0 = Clock::now();
      const BlockId id = ComputeBlockId(backend_->fingerprint(), b.tokens);
      r.block_ids.push_back(id);
      BlockSource src = BlockSource::kEncoded;
      if ((q.gpu[i] = gpu_tier_.Acquire(id)) != nullptr) {
        src = BlockSource::kGpu;
      } else if ((q.host[i] = host_tier_.Acquire(id)) != nullptr) {
        src = BlockSource::kHost;
      } else if (store_ != nullptr) {
        StatusOr<BlockMeta> m = store_->GetMeta(id);
        if (m.ok()) {
          RETURN_IF_ERROR(CheckMeta(id, *m));
          q.metas[i] = *m;
          src = BlockSource::kStore;
        } else if (!m.status().IsNotFound()) {
          return m.status();
        }
      }
      r.block_source.push_back(src);
      t.lookup_ms += Ms(l0, Clock::now());
      if (src == BlockSource::kEncoded) {
        auto e0 = Clock::now();
        ASSIGN_OR_RETURN(q.kvs[i], Encode(b.tokens));
        t.encode_ms += Ms(e0, Clock::now());
        q.to_store.push_back(i);
      }
      r.block_hit.push_back(src != BlockSource::kEncoded);
    }
    // A store hit evicted since its lookup is encoded instead (and stored again after the first token).
    auto encode_instead = [&](size_t i) -> Status {
      r.block_hit[i] = false;
      r.block_source[i] = BlockSource::kEncoded;
      auto e0 = Clock::now();
      ASSIGN_OR_RETURN(q.kvs[i], Encode(req.blocks[i].tokens));
      t.encode_ms += Ms(e0, Clock::now());
      q.to_store.push_back(i);
      return Status::OK();
    };
    bool done = false;
    const bool any_hit = std::find(r.block_hit.begin(), r.block_hit.end(), true) != r.block_hit.end();
    for (int attempt = 0; any_hit && stream && !done; ++attempt) {
      // Hits stream in layer by layer during the prefill; GPU-tier hits are re-encoded in place and pinned
      // host-tier hits copied straight to the device; misses come from memory.
      std::vector<BlockPlacement> placement(req.blocks.size());
      std::vector<bool> read(req.blocks.size(), true);
      for (size_t i = 0; i < req.blocks.size(); ++i) {
        placement[i].tokens = static_cast<uint32_t>(req.blocks[i].tokens.size());
        if (q.gpu[i] != nullptr) {
          placement[i].resident = q.gpu[i].get();
          read[i] = false;
        } else if (q.host[i] != nullptr && q.host[i]->in_arena() && q.host[i]->dtype == backend_->stream_dtype()) {
          placement[i].host = q.host[i]->data();
          placement[i].tensor_bytes = q.host[i]->tensor_bytes;
          read[i] = false;
        }
      }
      LayerSource source(store_, backend_->config(), req.blocks, r.block_ids, r.block_hit, q.metas, q.kvs, q.host,
                         read);
      StreamTiming st;
      const auto p0 = Clock::now();
      StatusOr<std::vector<float>> logits = backend_->PrefillStreamed(source, placement, req.final_tokens, req.prefill, &st);
      if (logits.ok()) {
        r.logits = std::move(logits).value();
        t.prefill_ms = Ms(p0, Clock::now());
        t.host_ms = source.host_ms();
        t.load_ms = std::max(0.0, st.read_ms - t.host_ms);
        t.gpu_ms = st.resident_ms;
        t.stream_wait_ms = st.wait_ms;
        t.streamed = true;
        t.bytes_loaded = source.bytes() + st.host_bytes;
        done = true;
      } else if (!logits.status().IsNotFound() || attempt > 0) {
        return logits.status();
      } else {
        // NotFound: a store hit was evicted since its lookup. Encode what is gone, then stream again.
        for (size_t i = 0; i < req.blocks.size(); ++i) {
          if (r.block_source[i] != BlockSource::kStore) continue;
          ASSIGN_OR_RETURN(bool present, store_->Contains(r.block_ids[i]));
          if (!present) RETURN_IF_ERROR(encode_instead(i));
        }
      }
    }
    if (!done) {  // not streamed: every block's layers in host memory first (no GPU-tier hits here)
      for (size_t i = 0; i < req.blocks.size(); ++i) {
        if (!r.block_hit[i]) continue;
        if (q.host[i] != nullptr) {
          const auto h0 = Clock::now();
          const HostBlock& hb = *q.host[i];
          const size_t n = hb.tensor_bytes / DTypeSize(hb.dtype);
          q.kvs[i].tokens = hb.tokens;
          q.kvs[i].k.assign(hb.layers, std::vector<float>(n));
          q.kvs[i].v.assign(hb.layers, std::vector<float>(n));
          for (uint32_t l = 0; l < hb.layers; ++l) {
            ToFloat(hb.dtype, hb.k(l), q.kvs[i].k[l].data(), n);
            ToFloat(hb.dtype, hb.v(l), q.kvs[i].v[l].data(), n);
          }
          t.bytes_loaded += hb.bytes();
          t.host_ms += Ms(h0, Clock::now());
          continue;
        }
        const auto l1 = Clock::now();
        uint64_t bytes = 0;
        Status s = LoadLayers(r.block_ids[i], q.metas[i], &q.kvs[i], &bytes);  // metadata checked at lookup
        t.load_ms += Ms(l1, Clock::now());
        if (s.IsNotFound()) {  // evicted between the lookup and the read
          RETURN_IF_ERROR(encode_instead(i));
        } else {
          RETURN_IF_ERROR(s);
          t.bytes_loaded += bytes;
        }
      }
      std::vector<const BlockKV*> ptrs;
      for (const auto& kv : q.kvs) ptrs.push_back(&kv);
      const auto p0 = Clock::now();
      ASSIGN_OR_RETURN(r.logits, backend_->Prefill(ptrs, req.final_tokens, req.prefill));
      t.prefill_ms = Ms(p0, Clock::now());
    }
    for (bool h : r.block_hit) h ? ++t.hits : ++t.misses;
    for (size_t i = 0; i < r.block_source.size(); ++i) {
      EngineMetrics::TierCounters& tc = metrics_.tier(r.block_source[i]);
      tc.blocks += 1;
      switch (r.block_source[i]) {
        case BlockSource::kGpu:
          ++t.gpu_hits;
          tc.bytes += q.gpu[i]->bytes();
          break;
        case BlockSource::kHost:
          ++t.host_hits;
          tc.bytes += q.host[i]->bytes();
          break;
        case BlockSource::kStore:
          tc.bytes += 2 * q.metas[i].tensor_bytes() * q.metas[i].num_layers;
          break;
        case BlockSource::kEncoded:
          break;
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
    for (size_t i : q.to_store)
      RETURN_IF_ERROR(Store(q.kvs[i], req.blocks[i].tokens, req.blocks[i].name));
    t.store_ms = Ms(s0, Clock::now());
  }
  if ((host_tier_.enabled() || gpu_tier_.enabled()) && req.mode == AttentionMode::kBlock) {
    const auto a0 = Clock::now();
    Admit(q);
    t.admit_ms = Ms(a0, Clock::now());
  }
  return r;
}

}  // namespace blockkv
