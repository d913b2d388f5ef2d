// CachePolicy: which KV blocks a cache tier (GPU memory, pinned host memory) keeps, under a byte
// budget.
//
// A pure data structure: it holds keys, byte costs and access history, never the blocks. The tier
// that owns the memory asks it on every access (Touch), offers it every block it had to fetch from
// below (Admit), frees what Admit reports as displaced, and pins the blocks a request is using
// (Pin/Unpin).
//
// Blocks differ in size (one passage's KV: 100-500 tokens x up to 128 KiB per token), so every
// decision is size-aware: the budget is in bytes and a newcomer is charged its bytes. Three
// policies:
//
//  - kLru: plain least-recently-used; admits everything that fits. The baseline.
//  - kTinyLfu: W-TinyLFU in the manner of Caffeine. New blocks enter a small LRU admission
//    window; blocks leaving the window become candidates for the main region (a segmented LRU:
//    probation, protected). A candidate enters main only if its estimated access frequency is
//    higher than that of every block it would displace there; otherwise the candidate itself is
//    dropped. Frequencies come from a count-min sketch (4-bit counters) behind a doorkeeper Bloom
//    filter, both halved/cleared periodically (aging), so one-off passages cannot flush the
//    popular ones. The default, chosen by the simulation in docs/cache_policy.md.
//    Adaptive (CachePolicyOptions::adaptive, the default): W-TinyLFU keeps stale popularity when
//    the hot set moves abruptly, so the policy also replays every access against two key-only
//    shadow caches of the same budget, a plain LRU and a plain W-TinyLFU. When the cache falls
//    behind the LRU shadow (a CUSUM test) while long frequency history has not been paying off
//    (the plain W-TinyLFU shadow trails the LRU shadow on average), the popularity is taken to have
//    moved: the frequency sketch is reset, and until it first ages again, protected blocks not seen
//    since the reset are displaced before probation blocks that were. Recurring popularity, one-off
//    streams and scans keep the history (there frequency beats recency, so the test never fires).
//  - kTwoQ: the full 2Q of Johnson and Shasha: a FIFO for first-time blocks (A1in), an LRU for
//    blocks seen again (Am) and a ghost list of keys recently dropped from A1in (A1out); a block
//    whose key is a ghost goes straight to Am.
//
// Pins: a block in use by a request is pinned; a pinned block is never displaced (pins nest: Pin
// twice, Unpin twice). Pinned bytes count against the budget, so when pins leave too little room a
// newcomer is refused rather than the budget exceeded.
//
// Invariants after every call: used_bytes() <= capacity_bytes; no pinned key was displaced.
//
// Cost: O(1) per Touch/Pin/Unpin/Erase and O(1 + blocks displaced) per Admit (expected: a hash map;
// amortized: the sketch's aging touches its whole table once per 5 accesses per entry it is sized
// for, a reset after a detected shift at most once per access per entry). No call scans the
// resident set. About 100 bytes per resident block for kLru, 130 for kTinyLfu; adaptive kTinyLfu
// adds its two shadows, about 100 bytes each per block they remember (keys and sizes, never
// blocks), 335 bytes per block in all, and takes 2-3 times as long per call (each access is
// replayed against both shadows).
//
// Sizes the policy cares about are the caller's: bytes may be raw or stored bytes, as long as the
// budget is in the same unit.
//
// Thread safety: not internally synchronized. The tier that owns a CachePolicy serializes every
// call (including the const ones) with its own mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "db/block_key.h"
#include "db/status.h"

namespace blockkv {

// The identity of a cached block: its 128-bit BlockId as two integers.
struct CacheKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  // The BlockId's bytes are big-endian: hi is bytes 0-7, lo bytes 8-15.
  static CacheKey FromBlockId(const BlockId& id) {
    CacheKey k;
    for (int i = 0; i < 8; ++i) k.hi = (k.hi << 8) | id.bytes[i];
    for (int i = 8; i < 16; ++i) k.lo = (k.lo << 8) | id.bytes[i];
    return k;
  }

  friend bool operator==(const CacheKey&, const CacheKey&) = default;
};

// A well-mixed 64-bit hash of a key (good even for keys that are small consecutive integers).
inline uint64_t HashCacheKey(const CacheKey& k) {
  uint64_t x = k.hi * 0x9e3779b97f4a7c15ull ^ (k.lo + 0x632be59bd9b4e019ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct CacheKeyHasher {
  size_t operator()(const CacheKey& k) const { return static_cast<size_t>(HashCacheKey(k)); }
};

enum class CachePolicyKind {
  kLru,
  kTinyLfu,  // W-TinyLFU: window LRU + segmented main + count-min sketch with doorkeeper and aging
  kTwoQ,     // full 2Q: A1in FIFO + Am LRU + A1out ghost keys
};

// "lru", "tinylfu", "2q".
const char* CachePolicyKindName(CachePolicyKind kind);
// Accepts the names above; nullopt otherwise.
std::optional<CachePolicyKind> ParseCachePolicyKind(std::string_view name);

struct CachePolicyOptions {
  // The policy. Default: kTinyLfu (the simulation in docs/cache_policy.md: at least LRU's block and
  // byte hit rate on every trace of the documented grid, abrupt popularity shifts included, and far
  // above it once one-off passages flow through).
  CachePolicyKind kind = CachePolicyKind::kTinyLfu;

  // The budget: resident blocks never add up to more bytes than this. Default: 0 (admits nothing).
  uint64_t capacity_bytes = 0;

  // kTinyLfu: share of the budget for the admission window, in [0, 1]. A block larger than the
  // window passes through it at once and faces admission on arrival. Default: 0.01 (Caffeine's
  // initial value).
  double window_fraction = 0.01;

  // kTinyLfu: share of the main region (budget minus window) for its protected segment, in [0, 1].
  // Default: 0.8.
  double protected_fraction = 0.8;

  // kTinyLfu: the number of distinct blocks the frequency sketch is sized for, rounded up to a
  // power of two and at least 256 (8 bytes of counters and 16 of doorkeeper each; it ages after 10x
  // this many accesses, then every 5x). 0: 256 at first, doubled (keeping the history) whenever
  // more blocks are resident than it is sized for. Default: 0.
  uint64_t sketch_entries = 0;

  // kTinyLfu: detect abrupt popularity shifts against an LRU shadow and a plain W-TinyLFU shadow of
  // the same budget, and reset the frequency sketch when one is detected (see the header comment
  // and docs/cache_policy.md). false: plain W-TinyLFU, as the shadow is. Default: true (at least
  // LRU's hit rate on every trace of the documented grid, shifts included).
  bool adaptive = true;

  // kTwoQ: share of the budget for A1in (first-time blocks), in [0, 1]. Default: 0.25 (the paper's
  // Kin).
  double two_q_in_fraction = 0.25;

  // kTwoQ: the ghost list A1out remembers dropped keys whose blocks add up to at most this share of
  // the budget, in [0, 10]. Default: 0.5 (the paper's Kout).
  double two_q_out_fraction = 0.5;
};

// InvalidArgument naming the field if a fraction is out of range or not a number; OK otherwise.
Status ValidateCachePolicyOptions(const CachePolicyOptions& options);

class CachePolicy {
 public:
  // Options out of range are clamped into range (check them first with ValidateCachePolicyOptions).
  // A moved-from CachePolicy may only be destroyed or assigned to.
  explicit CachePolicy(const CachePolicyOptions& options);
  ~CachePolicy();
  CachePolicy(CachePolicy&&) noexcept;
  CachePolicy& operator=(CachePolicy&&) noexcept;
  CachePolicy(const CachePolicy&) = delete;
  CachePolicy& operator=(const CachePolicy&) = delete;

  // Records one access to `key`; call it for every access, hit or miss, before Admit. Returns true
  // if the key is resident (a hit: its recency is updated; a pinned key's too, taking effect when
  // unpinned).
  bool Touch(const CacheKey& key);

  // Offers a key that is not resident, of `bytes`, after a miss was served from below. Returns true
  // if it is now resident (the caller keeps the block in the tier), false if it was refused (the
  // caller frees or hands back its copy). Either way *evicted (if not null) is cleared and then
  // receives the resident keys displaced to make room, which the caller must free; the offered key
  // is never among them. Refused: a block larger than the budget, a block that does not fit beside
  // the pinned bytes, or (kTinyLfu) one that lost the frequency comparison. Offering a resident key
  // changes nothing (and counts nothing) and returns true.
  bool Admit(const CacheKey& key, uint64_t bytes, std::vector<CacheKey>* evicted);

  // Pins a resident key (a request holds its block): it is not displaced until unpinned as many
  // times as it was pinned. Returns false, and records nothing, if the key is not resident.
  bool Pin(const CacheKey& key);
  // Undoes one Pin. When the last pin goes, the key counts as just used (it was in use until now).
  // Returns false, and changes nothing, if the key is not resident or not pinned.
  bool Unpin(const CacheKey& key);

  // Removes a resident, unpinned key (its block was deleted or the tier gave its memory back); the
  // caller frees the block. Returns false, and changes nothing, if the key is not resident or is
  // pinned. (kTwoQ also forgets a ghost of the key; adaptive kTinyLfu forgets the key in its
  // shadows unless it is pinned.)
  bool Erase(const CacheKey& key);

  bool Contains(const CacheKey& key) const;
  bool IsPinned(const CacheKey& key) const;
  uint64_t used_bytes() const;    // bytes of all resident blocks, pinned included
  uint64_t pinned_bytes() const;  // bytes of the pinned ones
  size_t size() const;            // resident blocks
  const CachePolicyOptions& options() const;

  struct Stats {
    uint64_t hits = 0;           // Touch calls that returned true
    uint64_t misses = 0;         // Touch calls that returned false
    uint64_t admitted = 0;       // Admit calls that made a key resident
    uint64_t rejected = 0;       // Admit calls that returned false
    uint64_t evictions = 0;      // keys Admit reported displaced
    uint64_t evicted_bytes = 0;  // their bytes
    uint64_t erased = 0;         // Erase calls that returned true
    // kTinyLfu: candidates dropped for losing the frequency comparison: the offered key (then also
    // counted in rejected) or a block leaving the admission window (then also in evictions).
    uint64_t filtered = 0;
    // Adaptive kTinyLfu: popularity shifts detected, each followed by a reset of the sketch.
    uint64_t sketch_resets = 0;
  };
  // At any time: size() == admitted - evictions - erased.
  Stats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace blockkv
