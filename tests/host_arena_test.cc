// HostArena (the host tier's pinned memory, carved into blocks) and Tier<Block> (the tiers' shared logic):
// allocation, merging of freed neighbours, exhaustion; admission built only when admitted, undone when the
// block cannot be built, pinning, budgets.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>
#include <vector>

#include "attention/engine/host_arena.h"
#include "attention/engine/tier.h"

namespace blockkv {
namespace {

BOOST_AUTO_TEST_SUITE(host_arena)

BOOST_AUTO_TEST_CASE(allocates_merges_and_refuses) {
  std::vector<char> region(1 << 16);
  bool released = false;
  {
    HostArena a(region.data(), region.size(), [&](void* p) { released = p == region.data(); });
    BOOST_TEST(a.capacity() == region.size());
    void* x = a.Allocate(1000);  // rounded to 1024
    void* y = a.Allocate(3000);  // 3008
    void* z = a.Allocate(100);   // 128
    BOOST_REQUIRE(x != nullptr);
    BOOST_REQUIRE(y != nullptr);
    BOOST_REQUIRE(z != nullptr);
    for (void* p : {x, y, z}) BOOST_TEST(reinterpret_cast<uintptr_t>(p) % 64 == (reinterpret_cast<uintptr_t>(region.data()) % 64));
    BOOST_TEST(a.free_bytes() == region.size() - 1024 - 3008 - 128);
    BOOST_TEST(a.Allocate(region.size()) == nullptr);  // larger than any free run
    // Freeing the middle piece leaves a hole; a piece that fits it goes there (best fit).
    a.Free(y);
    void* w = a.Allocate(2000);
    BOOST_TEST(w == y);
    a.Free(w);
    a.Free(x);
    a.Free(z);
    // Everything merged back into one run.
    BOOST_TEST(a.free_bytes() == region.size());
    BOOST_TEST(a.largest_free() == region.size());
    a.Free(nullptr);
  }
  BOOST_TEST(released);
}

BOOST_AUTO_TEST_CASE(random_churn_keeps_pieces_disjoint) {
  std::vector<char> region(1 << 20);
  HostArena a(region.data(), region.size(), nullptr);
  std::mt19937 rng(7);
  std::vector<std::pair<char*, size_t>> live;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      const size_t n = 1 + rng() % 20000;
      char* p = static_cast<char*>(a.Allocate(n));
      if (p == nullptr) {
        BOOST_TEST(a.largest_free() < (n + 63) / 64 * 64);  // refused only when no run fits
        continue;
      }
      BOOST_TEST((p >= region.data() && p + n <= region.data() + region.size()));
      live.emplace_back(p, n);
    } else {
      const size_t i = rng() % live.size();
      a.Free(live[i].first);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  std::sort(live.begin(), live.end());
  for (size_t i = 1; i < live.size(); ++i) BOOST_TEST((live[i - 1].first + live[i - 1].second <= live[i].first));
  for (auto& [p, n] : live) a.Free(p);
  BOOST_TEST(a.largest_free() == region.size());
}

struct FakeBlock {
  int value = 0;
};

BlockId Id(int i) {
  BlockId id;
  id.bytes[0] = static_cast<uint8_t>(i);
  id.bytes[1] = static_cast<uint8_t>(i >> 8);
  return id;
}

BOOST_AUTO_TEST_CASE(tier_builds_only_admitted_blocks) {
  EngineMetrics::TierCounters counters;
  Tier<FakeBlock> tier(300, CachePolicyKind::kLru, &counters);
  int built = 0;
  auto make = [&](int v) {
    return [&built, v] {
      ++built;
      auto b = std::make_shared<FakeBlock>();
      b->value = v;
      return b;
    };
  };
  BOOST_TEST(tier.Acquire(Id(1)) == nullptr);
  BOOST_TEST(tier.Offer(Id(1), 100, make(1)));
  BOOST_TEST(tier.Offer(Id(2), 100, make(2)));
  BOOST_TEST(built == 2);
  BOOST_TEST(!tier.Offer(Id(3), 400, make(3)));  // larger than the budget: refused, never built
  BOOST_TEST(built == 2);
  BOOST_TEST(counters.rejected.load() == 1u);
  // A block that cannot be built (e.g. no memory): the admission is undone.
  BOOST_TEST(!tier.Offer(Id(4), 100, [] { return std::shared_ptr<FakeBlock>(); }));
  BOOST_TEST(!tier.Contains(Id(4)));
  BOOST_TEST(counters.failed.load() == 1u);
  BOOST_TEST(tier.used_bytes() == 200u);
  {
    // A pinned block is never evicted: filling the tier displaces the other one.
    auto held = tier.Acquire(Id(1));
    BOOST_REQUIRE(held != nullptr);
    BOOST_TEST(held->value == 1);
    BOOST_TEST(tier.Offer(Id(5), 200, make(5)));
    BOOST_TEST(tier.Contains(Id(1)));
    BOOST_TEST(!tier.Contains(Id(2)));
    BOOST_TEST(tier.used_bytes() <= 300u);
  }
  BOOST_TEST(counters.evictions.load() == 1u);
  BOOST_TEST(counters.resident_bytes.load() == tier.used_bytes());
  Tier<FakeBlock> off(0, CachePolicyKind::kLru, nullptr);
  BOOST_TEST(!off.enabled());
  BOOST_TEST(!off.Offer(Id(1), 1, make(1)));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace blockkv
