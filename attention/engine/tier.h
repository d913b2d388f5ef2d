// Tier<Block>: blocks kept across requests under a byte budget, with a scan-resistant admission policy in
// front of recency eviction (attention/engine/cache_policy.h). The engine has two: the host tier (HostBlock,
// attention/engine/host_tier.h) and the GPU tier (ResidentBlock, attention/model_backend.h).
//
// A block is offered after it was served from below. The policy decides first; only an admitted block is
// built (read, converted, uploaded), so a refused one costs nothing. Blocks the policy displaces are freed
// before the new one is built, so its memory is there to take.
//
// Ownership and threads: the tier owns its blocks; Acquire hands out a shared reference that keeps the block
// pinned (never evicted, its bytes still counted) until the last copy of the reference is dropped. Every
// method may be called from several threads at once (one internal mutex, held while an admitted block is
// built); references must not outlive the tier.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "attention/engine/cache_policy.h"
#include "attention/engine/metrics.h"
#include "db/block_key.h"

namespace blockkv {

template <class Block>
class Tier {
 public:
  // budget_bytes 0 disables the tier. `counters` (may be null) receives admissions, evictions and the
  // resident bytes; it must outlive the tier.
  Tier(uint64_t budget_bytes, CachePolicyKind policy, EngineMetrics::TierCounters* counters)
      : budget_(budget_bytes), counters_(counters), policy_(Options(budget_bytes, policy)) {
    if (counters_) counters_->budget_bytes = budget_;
  }
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;

  bool enabled() const { return budget_ > 0; }
  uint64_t budget_bytes() const { return budget_; }

  // Records an access to `id` (resident or not: admission weighs how often a block is asked for) and
  // returns the block if resident, pinned while the reference lives; nullptr on a miss.
  std::shared_ptr<const Block> Acquire(const BlockId& id) {
    if (!enabled()) return nullptr;
    const CacheKey key = CacheKey::FromBlockId(id);
    std::lock_guard<std::mutex> l(mu_);
    if (!policy_.Touch(key)) return nullptr;
    auto it = blocks_.find(key);
    if (it == blocks_.end()) return nullptr;  // cannot happen: the policy and the map agree
    policy_.Pin(key);
    std::shared_ptr<const Block> block = it->second;
    // The caller's reference unpins the block when its last copy is dropped.
    return std::shared_ptr<const Block>(block.get(), [this, key, keep = block](const Block*) { Release(key); });
  }

  // Whether `id` is resident (no access is recorded).
  bool Contains(const BlockId& id) const {
    std::lock_guard<std::mutex> l(mu_);
    return blocks_.count(CacheKey::FromBlockId(id)) > 0;
  }

  // Offers block `id` of `bytes`, served from below. If the policy admits it, `make` is called (under the
  // tier's lock) to build it; a null result (it could not be built: out of memory, a failed read) undoes the
  // admission. Returns true if the block is resident afterwards.
  bool Offer(const BlockId& id, uint64_t bytes, const std::function<std::shared_ptr<Block>()>& make) {
    if (!enabled()) return false;
    const CacheKey key = CacheKey::FromBlockId(id);
    std::lock_guard<std::mutex> l(mu_);
    if (blocks_.count(key)) return true;
    std::vector<CacheKey> evicted;
    const bool admitted = policy_.Admit(key, bytes, &evicted);
    for (const CacheKey& e : evicted) {
      auto it = blocks_.find(e);
      if (it == blocks_.end()) continue;
      if (counters_) {
        counters_->evictions += 1;
        counters_->evicted_bytes += bytes_.at(e);
      }
      blocks_.erase(it);  // frees the block (no reference is out: pinned blocks are never displaced)
      bytes_.erase(e);
    }
    std::shared_ptr<Block> block = admitted ? make() : nullptr;
    if (admitted && block == nullptr) {
      policy_.Erase(key);
      if (counters_) counters_->failed += 1;
    } else if (admitted) {
      blocks_.emplace(key, std::move(block));
      bytes_.emplace(key, bytes);
      if (counters_) counters_->admitted += 1;
    } else if (counters_) {
      counters_->rejected += 1;
    }
    if (counters_) counters_->resident_bytes = policy_.used_bytes();
    return admitted && blocks_.count(key) > 0;
  }

  // Resident bytes, pinned ones included. Never above the budget.
  uint64_t used_bytes() const {
    std::lock_guard<std::mutex> l(mu_);
    return policy_.used_bytes();
  }
  size_t size() const {
    std::lock_guard<std::mutex> l(mu_);
    return blocks_.size();
  }

 private:
  static CachePolicyOptions Options(uint64_t budget, CachePolicyKind kind) {
    CachePolicyOptions o;
    o.kind = kind;
    o.capacity_bytes = budget;
    return o;
  }
  void Release(const CacheKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    policy_.Unpin(key);
  }

  const uint64_t budget_;
  EngineMetrics::TierCounters* counters_;
  mutable std::mutex mu_;
  CachePolicy policy_;
  std::unordered_map<CacheKey, std::shared_ptr<const Block>, CacheKeyHasher> blocks_;
  std::unordered_map<CacheKey, uint64_t, CacheKeyHasher> bytes_;
};

}  // namespace blockkv
