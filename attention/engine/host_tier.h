// HostTier: blocks kept in host memory across requests, under a byte budget, with a scan-resistant
// admission policy in front of recency eviction (attention/engine/cache_policy.h).
//
// A block is kept as the store holds it (its dtype; K and V of each layer contiguous), so a hit is
// copied (or converted) into a prompt's KV layer by layer exactly as a store read would be, and the
// logits are bitwise the same whichever source served it.
//
// Ownership and threads: the tier owns its blocks; Acquire hands out a shared reference that keeps the
// block pinned (never evicted, its bytes counted) until the last reference is dropped. Every method may
// be called from several threads at once (one internal mutex); references must not outlive the tier.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "attention/engine/cache_policy.h"
#include "attention/engine/metrics.h"
#include "db/block_key.h"
#include "db/dtype.h"

namespace blockkv {

struct HostBlock {
  BlockId id;
  DType dtype = DType::kF32;
  uint32_t tokens = 0;
  uint32_t layers = 0;
  uint64_t tensor_bytes = 0;  // one layer's K (or V): tokens × kv_heads × head_dim × dtype size
  std::vector<uint8_t> data;  // per layer: K then V

  void Allocate() { data.resize(2 * tensor_bytes * layers); }
  uint8_t* k(uint32_t l) { return data.data() + 2 * l * tensor_bytes; }
  uint8_t* v(uint32_t l) { return data.data() + (2 * l + 1) * tensor_bytes; }
  const uint8_t* k(uint32_t l) const { return data.data() + 2 * l * tensor_bytes; }
  const uint8_t* v(uint32_t l) const { return data.data() + (2 * l + 1) * tensor_bytes; }
  uint64_t bytes() const { return data.size(); }
};

class HostTier {
 public:
  // budget_bytes 0 disables the tier. `counters` (may be null) receives admissions, evictions and the
  // resident bytes; it must outlive the tier.
  HostTier(uint64_t budget_bytes, CachePolicyKind policy, EngineMetrics::TierCounters* counters);
  ~HostTier();
  HostTier(const HostTier&) = delete;
  HostTier& operator=(const HostTier&) = delete;

  bool enabled() const { return budget_ > 0; }
  uint64_t budget_bytes() const { return budget_; }

  // Records an access to `id` (resident or not: admission weighs how often a block is asked for) and
  // returns the block if resident, pinned while the reference lives; nullptr on a miss.
  std::shared_ptr<const HostBlock> Acquire(const BlockId& id);
  // Offers a block served from below; the policy decides. Returns true if it was admitted.
  bool Offer(std::shared_ptr<HostBlock> block);
  // Resident bytes, pinned ones included. Never above the budget.
  uint64_t used_bytes() const;
  size_t size() const;

 private:
  void Release(const CacheKey& key);

  const uint64_t budget_;
  EngineMetrics::TierCounters* counters_;
  mutable std::mutex mu_;
  CachePolicy policy_;
  std::unordered_map<CacheKey, std::shared_ptr<const HostBlock>, CacheKeyHasher> blocks_;
};

}  // namespace blockkv
