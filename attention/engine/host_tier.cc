#include "attention/engine/host_tier.h"

namespace blockkv {

namespace {

CachePolicyOptions PolicyOptions(uint64_t budget, CachePolicyKind kind) {
  CachePolicyOptions o;
  o.kind = kind;
  o.capacity_bytes = budget;
  return o;
}

}  // namespace

HostTier::HostTier(uint64_t budget_bytes, CachePolicyKind policy, EngineMetrics::TierCounters* counters)
    : budget_(budget_bytes), counters_(counters), policy_(PolicyOptions(budget_bytes, policy)) {
  if (counters_) counters_->budget_bytes = budget_;
}

HostTier::~HostTier() = default;

std::shared_ptr<const HostBlock> HostTier::Acquire(const BlockId& id) {
  if (!enabled()) return nullptr;
  const CacheKey key = CacheKey::FromBlockId(id);
  std::lock_guard<std::mutex> l(mu_);
  if (!policy_.Touch(key)) return nullptr;
  auto it = blocks_.find(key);
  if (it == blocks_.end()) return nullptr;  // cannot happen: the policy and the map agree
  policy_.Pin(key);
  std::shared_ptr<const HostBlock> block = it->second;
  // The reference the caller holds unpins the block when the last copy of it is dropped.
  return std::shared_ptr<const HostBlock>(block.get(), [this, key, keep = block](const HostBlock*) { Release(key); });
}

void HostTier::Release(const CacheKey& key) {
  std::lock_guard<std::mutex> l(mu_);
  policy_.Unpin(key);
}

bool HostTier::Offer(std::shared_ptr<HostBlock> block) {
  if (!enabled() || block == nullptr) return false;
  const CacheKey key = CacheKey::FromBlockId(block->id);
  std::lock_guard<std::mutex> l(mu_);
  if (blocks_.count(key)) return true;
  std::vector<CacheKey> evicted;
  const bool admitted = policy_.Admit(key, block->bytes(), &evicted);
  for (const CacheKey& e : evicted) {
    auto it = blocks_.find(e);
    if (it == blocks_.end()) continue;
    if (counters_) {
      counters_->evictions += 1;
      counters_->evicted_bytes += it->second->bytes();
    }
    blocks_.erase(it);
  }
  if (admitted) {
    blocks_.emplace(key, std::move(block));
    if (counters_) counters_->admitted += 1;
  } else if (counters_) {
    counters_->rejected += 1;
  }
  if (counters_) counters_->resident_bytes = policy_.used_bytes();
  return admitted;
}

uint64_t HostTier::used_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return policy_.used_bytes();
}

size_t HostTier::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return blocks_.size();
}

}  // namespace blockkv
