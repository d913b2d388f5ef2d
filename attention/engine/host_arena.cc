#include "attention/engine/host_arena.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>

namespace blockkv {

namespace {
constexpr size_t kAlign = 64;
}  // namespace

HostArena::HostArena(void* base, size_t bytes, std::function<void(void*)> release)
    : base_(static_cast<char*>(base)), bytes_(bytes / kAlign * kAlign), release_(std::move(release)) {
  if (bytes_ > 0) free_.emplace(0, bytes_);
}

HostArena::~HostArena() {
  if (!used_.empty()) std::abort();  // a piece outlives the arena: its memory is about to be unmapped
  if (release_) release_(base_);
}

void* HostArena::Allocate(size_t bytes) {
  const size_t want = std::max<size_t>((bytes + kAlign - 1) / kAlign * kAlign, kAlign);
  std::lock_guard<std::mutex> l(mu_);
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second >= want && (best == free_.end() || it->second < best->second)) {
      best = it;
      if (best->second == want) break;
    }
  }
  if (best == free_.end()) return nullptr;
  const size_t off = best->first, len = best->second;
  free_.erase(best);
  if (len > want) free_.emplace(off + want, len - want);
  used_.emplace(off, want);
  return base_ + off;
}

void HostArena::Free(void* p) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> l(mu_);
  const auto u = used_.find(static_cast<size_t>(static_cast<char*>(p) - base_));
  if (u == used_.end()) std::abort();  // not a piece of this arena: memory corruption follows otherwise
  size_t off = u->first, len = u->second;
  used_.erase(u);
  // Merge with the free runs on either side.
  auto next = free_.lower_bound(off);
  if (next != free_.end() && off + len == next->first) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += len;
      return;
    }
  }
  free_.emplace(off, len);
}

size_t HostArena::free_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  size_t n = 0;
  for (const auto& [off, len] : free_) n += len;
  return n;
}

size_t HostArena::largest_free() const {
  std::lock_guard<std::mutex> l(mu_);
  size_t n = 0;
  for (const auto& [off, len] : free_) n = std::max(n, len);
  return n;
}

}  // namespace blockkv
