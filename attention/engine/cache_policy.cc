#include "attention/engine/cache_policy.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>

namespace blockkv {

const char* CachePolicyKindName(CachePolicyKind kind) {
  switch (kind) {
    case CachePolicyKind::kLru:
      return "lru";
    case CachePolicyKind::kTinyLfu:
      return "tinylfu";
    case CachePolicyKind::kTwoQ:
      return "2q";
  }
  return "?";
}

std::optional<CachePolicyKind> ParseCachePolicyKind(std::string_view name) {
  for (CachePolicyKind k :
       {CachePolicyKind::kLru, CachePolicyKind::kTinyLfu, CachePolicyKind::kTwoQ})
    if (name == CachePolicyKindName(k)) return k;
  return std::nullopt;
}

Status ValidateCachePolicyOptions(const CachePolicyOptions& o) {
  struct Field {
    const char* name;
    double value, max;
  };
  for (const Field& f : {Field{"window_fraction", o.window_fraction, 1.0},
                         Field{"protected_fraction", o.protected_fraction, 1.0},
                         Field{"two_q_in_fraction", o.two_q_in_fraction, 1.0},
                         Field{"two_q_out_fraction", o.two_q_out_fraction, 10.0}}) {
    if (!(f.value >= 0.0 && f.value <= f.max))  // also false for NaN
      return Status::InvalidArgument("cache policy option " + std::string(f.name) + " = " +
                                     std::to_string(f.value) + " is outside [0, " +
                                     std::to_string(f.max) + "]");
  }
  return Status::OK();
}

namespace {

// floor(fraction * bytes), fraction clamped to [0, max_fraction], saturating at UINT64_MAX.
uint64_t Share(double fraction, double max_fraction, uint64_t bytes) {
  if (!(fraction > 0.0)) return 0;
  if (fraction > max_fraction) fraction = max_fraction;
  const double r = fraction * static_cast<double>(bytes);
  if (r >= 18446744073709551615.0) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(r);
}

uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t CeilPow2(uint64_t x) {
  uint64_t p = 1;
  while (p < x && p < (uint64_t{1} << 62)) p <<= 1;
  return p;
}

// Segments, by policy: kLru uses 0; kTinyLfu window, probation, protected; kTwoQ A1in, Am.
constexpr int kWindow = 0, kProbation = 1, kProtected = 2;
constexpr int kA1in = 0, kAm = 1;
constexpr int kSegments = 3;

struct Entry {
  CacheKey key;
  uint64_t hash = 0;  // HashCacheKey(key)
  uint64_t bytes = 0;
  Entry* prev = nullptr;  // in the list of its segment, unless pinned
  Entry* next = nullptr;
  uint32_t pins = 0;
  uint8_t segment = 0;
  bool pending = false;  // kTinyLfu: left the window in the Admit under way, not yet compared
};

// An intrusive doubly linked list of entries, through a sentinel. front() is the oldest (least
// recently used), the back the newest. Tracks the bytes of the entries it holds.
class EntryList {
 public:
  EntryList() { head_.prev = head_.next = &head_; }
  EntryList(const EntryList&) = delete;
  EntryList& operator=(const EntryList&) = delete;

  bool empty() const { return head_.next == &head_; }
  uint64_t bytes() const { return bytes_; }
  Entry* front() const { return empty() ? nullptr : head_.next; }
  // The entry after e (newer), or nullptr at the back.
  Entry* Next(const Entry* e) const { return e->next == &head_ ? nullptr : e->next; }

  void PushBack(Entry* e) {
    e->prev = head_.prev;
    e->next = &head_;
    head_.prev->next = e;
    head_.prev = e;
    bytes_ += e->bytes;
  }
  void Remove(Entry* e) {
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = nullptr;
    bytes_ -= e->bytes;
  }
  void MoveToBack(Entry* e) {
    Remove(e);
    PushBack(e);
  }

 private:
  Entry head_;
  uint64_t bytes_ = 0;
};

// A count-min sketch of access frequencies (TinyLFU, Einziger et al.): 4-bit counters, 16 per
// 64-bit word, four per key; behind it a doorkeeper Bloom filter that absorbs each key's first
// access, so the many keys seen once between two agings never reach the counters. After 10 accesses
// per entry sized for, every counter is halved and the doorkeeper cleared (aging), so that old
// popularity fades.
class FrequencySketch {
 public:
  // A floor on the size (6 KiB): with 10 x entries accesses between agings, and the doorkeeper
  // taking each key's first access after one, a sketch sized for a cache of ten blocks would age
  // every ~80 accesses and could not tell a block that recurs every 50 accesses from a one-off.
  static constexpr uint64_t kMinEntries = 256;

  uint64_t entries() const { return entries_; }
  // How many times the sketch has aged (or been reset) so far.
  uint64_t ages() const { return ages_; }

  // Sizes the sketch for `entries` distinct keys (rounded up to a power of two, at least
  // kMinEntries) and forgets all history.
  void Resize(uint64_t entries) {
    entries_ = CeilPow2(entries < kMinEntries ? kMinEntries : entries);
    table_.assign(entries_, 0);  // 16 counters per entry, as Caffeine
    table_mask_ = entries_ - 1;
    sample_size_ = 10 * entries_;
    // 128 bits per entry: at least 12 per key inserted between two agings, a false positive rate
    // below 1% with 3 probes.
    door_.assign(2 * entries_, 0);
    door_mask_ = 128 * entries_ - 1;
    additions_ = 0;
  }

  // Doubles the size, keeping every estimate: a key's counter in the new table (index h & (2n - 1))
  // starts as its counter in the old one (index h & (n - 1)) because the old table is copied into
  // both halves; the same holds for the doorkeeper's bits.
  void Grow() {
    table_.resize(2 * entries_);
    std::copy(table_.begin(), table_.begin() + entries_, table_.begin() + entries_);
    door_.resize(4 * entries_);
    std::copy(door_.begin(), door_.begin() + 2 * entries_, door_.begin() + 2 * entries_);
    entries_ *= 2;
    table_mask_ = entries_ - 1;
    door_mask_ = 128 * entries_ - 1;
    sample_size_ = 10 * entries_;
  }

  // Forgets every count and the doorkeeper, keeping the size; the next aging comes after a full
  // period (10 accesses per entry), as after Resize.
  void Reset() {
    std::fill(table_.begin(), table_.end(), 0);
    std::fill(door_.begin(), door_.end(), 0);
    additions_ = 0;
    ++ages_;
  }

  void Increment(uint64_t hash) {
    if (!DoorkeeperSet(hash)) {
      SetDoorkeeper(hash);
    } else {
      for (int i = 0; i < 4; ++i) {
        const uint64_t h = Row(hash, i);
        uint64_t& word = table_[h & table_mask_];
        const int shift = static_cast<int>(h >> 60) * 4;
        if (((word >> shift) & 0xf) != 0xf) word += uint64_t{1} << shift;
      }
    }
    if (++additions_ >= sample_size_) Age();
  }

  // The estimated number of accesses since aging (0-16): the smallest of the key's counters, plus
  // one if the doorkeeper has seen it.
  int Estimate(uint64_t hash) const {
    int m = 15;
    for (int i = 0; i < 4; ++i) {
      const uint64_t h = Row(hash, i);
      const int c = static_cast<int>((table_[h & table_mask_] >> ((h >> 60) * 4)) & 0xf);
      if (c < m) m = c;
    }
    return m + (DoorkeeperSet(hash) ? 1 : 0);
  }

 private:
  static uint64_t Row(uint64_t hash, int i) {
    return Mix64(hash + 0x9e3779b97f4a7c15ull * (i + 1));
  }
  static uint64_t Probe(uint64_t hash, int j) {
    return Mix64(hash ^ (0xc2b2ae3d27d4eb4full * (j + 1)));
  }

  bool DoorkeeperSet(uint64_t hash) const {
    for (int j = 0; j < 3; ++j) {
      const uint64_t bit = Probe(hash, j) & door_mask_;
      if (!((door_[bit >> 6] >> (bit & 63)) & 1)) return false;
    }
    return true;
  }
  void SetDoorkeeper(uint64_t hash) {
    for (int j = 0; j < 3; ++j) {
      const uint64_t bit = Probe(hash, j) & door_mask_;
      door_[bit >> 6] |= uint64_t{1} << (bit & 63);
    }
  }
  void Age() {
    for (uint64_t& w : table_) w = (w >> 1) & 0x7777777777777777ull;
    std::fill(door_.begin(), door_.end(), 0);
    additions_ /= 2;
    ++ages_;
  }

  std::vector<uint64_t> table_;
  std::vector<uint64_t> door_;
  uint64_t table_mask_ = 0;
  uint64_t door_mask_ = 0;
  uint64_t entries_ = 0;
  uint64_t sample_size_ = 0;
  uint64_t additions_ = 0;
  uint64_t ages_ = 0;
};

// Decides when adaptive W-TinyLFU should forget its frequency history. Fed, for every access,
// whether it hit in the cache, in a shadow LRU and in a shadow plain W-TinyLFU of the same budget.
//
// The test (a one-sided CUSUM, Page 1954): lag = max(0, lag + lru_hit - hit - kDrift) grows while
// the LRU shadow hits what the cache misses, by more than kDrift per access on average; it fires at
// kThreshold. Two conditions guard it, both measured, not assumed:
//  - memory gain: an exponential average (time constant 20 sample periods) of plain_hit - lru_hit
//    must be negative: frequency history has not been paying off lately. It is positive wherever
//    W-TinyLFU is the better policy (stationary popularity, one-off streams, scans, and popularity
//    that comes back within the sketch's memory), so there the cache never forgets.
//  - armed: after a reset the cache must first catch up with the LRU shadow (an exponential
//    average, time constant a quarter of a sample period, of hit - lru_hit back at 0 or above), so
//    that the lag of its own re-warming does not trigger another reset.
// Resets are also at least a sample period apart, which bounds their amortized cost. A sample
// period is as many accesses as the sketch has entries (about the resident blocks).
// kDrift and kThreshold were chosen by the simulation in docs/cache_policy.md: detection comes a
// few hundred accesses after a shift on its traces, and never fires on the traces without shifts.
class ShiftDetector {
 public:
  static constexpr double kDrift = 0.02;
  static constexpr double kThreshold = 10.0;

  // Returns true when the cache should reset its sketch. `period`: the sample period in accesses.
  bool Observe(bool hit, bool lru_hit, bool plain_hit, uint64_t period) {
    const double p = static_cast<double>(period);
    const double h = hit ? 1.0 : 0.0, l = lru_hit ? 1.0 : 0.0, t = plain_hit ? 1.0 : 0.0;
    catch_up_ += (h - l - catch_up_) * (4.0 / p);
    memory_gain_ += (t - l - memory_gain_) / (20.0 * p);
    if (!armed_ && catch_up_ >= 0.0) armed_ = true;
    if (quiet_ > 0) --quiet_;
    lag_ = std::max(0.0, lag_ + l - h - kDrift);
    if (lag_ <= kThreshold || !armed_ || quiet_ > 0 || memory_gain_ >= 0.0) return false;
    lag_ = 0.0;
    armed_ = false;
    quiet_ = period;
    return true;
  }

 private:
  double lag_ = 0.0;
  double catch_up_ = 0.0;
  double memory_gain_ = 0.0;
  bool armed_ = true;
  uint64_t quiet_ = 0;  // accesses before another reset may come: at least a sample period apart
};

}  // namespace

class CachePolicy::Impl {
 public:
  explicit Impl(const CachePolicyOptions& o) : options_(o) {
    options_.window_fraction = Clamp(o.window_fraction, 1.0);
    options_.protected_fraction = Clamp(o.protected_fraction, 1.0);
    options_.two_q_in_fraction = Clamp(o.two_q_in_fraction, 1.0);
    options_.two_q_out_fraction = Clamp(o.two_q_out_fraction, 10.0);
    capacity_ = o.capacity_bytes;
    window_max_ = Share(options_.window_fraction, 1.0, capacity_);
    protected_max_ = Share(options_.protected_fraction, 1.0, capacity_ - window_max_);
    in_max_ = Share(options_.two_q_in_fraction, 1.0, capacity_);
    ghost_max_ = Share(options_.two_q_out_fraction, 10.0, capacity_);
    if (o.kind == CachePolicyKind::kTinyLfu) sketch_.Resize(o.sketch_entries);
    if (o.kind == CachePolicyKind::kTinyLfu && o.adaptive) {
      CachePolicyOptions lru = options_;
      lru.kind = CachePolicyKind::kLru;
      CachePolicyOptions plain = options_;
      plain.adaptive = false;
      lru_shadow_ = std::make_unique<Impl>(lru);
      plain_shadow_ = std::make_unique<Impl>(plain);
    }
  }

  bool Touch(const CacheKey& key) {
    auto it = map_.find(key);
    if (options_.kind == CachePolicyKind::kTinyLfu)
      sketch_.Increment(it != map_.end() ? it->second.hash : HashCacheKey(key));
    if (lru_shadow_ != nullptr) ObserveInShadows(key, it != map_.end() ? &it->second : nullptr);
    if (it == map_.end()) {
      ++stats_.misses;
      return false;
    }
    ++stats_.hits;
    Entry* e = &it->second;
    switch (options_.kind) {
      case CachePolicyKind::kLru:
        if (e->pins == 0) lists_[0].MoveToBack(e);
        break;
      case CachePolicyKind::kTinyLfu:
        if (e->segment == kProbation) {  // a second access in main: promote
          SetSegment(e, kProtected);
          DemoteProtectedOverflow();
        } else if (e->pins == 0) {
          lists_[e->segment].MoveToBack(e);
        }
        break;
      case CachePolicyKind::kTwoQ:
        // A1in is a FIFO: a hit there changes nothing (correlated references); Am is an LRU.
        if (e->segment == kAm && e->pins == 0) lists_[kAm].MoveToBack(e);
        break;
    }
    return true;
  }

  bool Admit(const CacheKey& key, uint64_t bytes, std::vector<CacheKey>* evicted) {
    if (evicted != nullptr) evicted->clear();
    auto [it, inserted] = map_.try_emplace(key);
    if (!inserted) return true;
    if (lru_shadow_ != nullptr) {  // the shadows keep what they would have kept, pins or not
      lru_shadow_->Admit(key, bytes, nullptr);
      plain_shadow_->Admit(key, bytes, nullptr);
    }
    // Everything unpinned can be displaced, so this is the whole test of whether the block can fit.
    if (bytes > capacity_ - pinned_) {
      map_.erase(it);
      ++stats_.rejected;
      return false;
    }
    Entry* e = &it->second;
    e->key = key;
    e->hash = HashCacheKey(key);
    e->bytes = bytes;
    used_ += bytes;
    admitting_ = e;
    admitting_dropped_ = false;
    evicted_ = evicted;
    switch (options_.kind) {
      case CachePolicyKind::kLru:
        AdmitLru(e);
        break;
      case CachePolicyKind::kTinyLfu:
        AdmitTinyLfu(e);
        break;
      case CachePolicyKind::kTwoQ:
        AdmitTwoQ(e);
        break;
    }
    admitting_ = nullptr;
    evicted_ = nullptr;
    assert(used_ <= capacity_);
    if (admitting_dropped_) {
      ++stats_.rejected;
      return false;
    }
    ++stats_.admitted;
    return true;
  }

  bool Pin(const CacheKey& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    Entry* e = &it->second;
    if (e->pins++ == 0) {
      lists_[e->segment].Remove(e);
      pinned_ += e->bytes;
    }
    return true;
  }

  bool Unpin(const CacheKey& key) {
    auto it = map_.find(key);
    if (it == map_.end() || it->second.pins == 0) return false;
    Entry* e = &it->second;
    if (--e->pins == 0) {
      pinned_ -= e->bytes;
      // In use until now: back at the newest end of its segment.
      lists_[e->segment].PushBack(e);
      if (options_.kind == CachePolicyKind::kTinyLfu) DemoteProtectedOverflow();
    }
    return true;
  }

  bool Erase(const CacheKey& key) {
    if (options_.kind == CachePolicyKind::kTwoQ) EraseGhost(key);
    auto it = map_.find(key);
    const bool pinned = it != map_.end() && it->second.pins != 0;
    if (lru_shadow_ != nullptr && !pinned) {  // the block is gone: the shadows forget it too
      lru_shadow_->Erase(key);
      plain_shadow_->Erase(key);
    }
    if (it == map_.end() || pinned) return false;
    Entry* e = &it->second;
    lists_[e->segment].Remove(e);
    segment_bytes_[e->segment] -= e->bytes;
    used_ -= e->bytes;
    map_.erase(it);
    ++stats_.erased;
    return true;
  }

  bool Contains(const CacheKey& key) const { return map_.count(key) != 0; }
  bool IsPinned(const CacheKey& key) const {
    auto it = map_.find(key);
    return it != map_.end() && it->second.pins != 0;
  }
  uint64_t used_bytes() const { return used_; }
  uint64_t pinned_bytes() const { return pinned_; }
  size_t size() const { return map_.size(); }
  const CachePolicyOptions& options() const { return options_; }
  Stats stats() const { return stats_; }

 private:
  static double Clamp(double v, double max) { return v >= 0.0 ? (v <= max ? v : max) : 0.0; }

  // Moves e to segment s: the bytes follow it, and (unless pinned) it goes to the newest end of s's
  // list.
  void SetSegment(Entry* e, int s) {
    if (e->pins == 0) lists_[e->segment].Remove(e);
    segment_bytes_[e->segment] -= e->bytes;
    e->segment = static_cast<uint8_t>(s);
    segment_bytes_[s] += e->bytes;
    if (e->pins == 0) lists_[s].PushBack(e);
  }

  // Removes an unpinned resident entry to make room, reporting it (unless it is the key being
  // admitted, which then counts as refused). Invalidates e.
  void Evict(Entry* e) {
    assert(e->pins == 0);
    lists_[e->segment].Remove(e);
    segment_bytes_[e->segment] -= e->bytes;
    if (e->pending) pending_bytes_ -= e->bytes;
    used_ -= e->bytes;
    if (options_.kind == CachePolicyKind::kTwoQ && e->segment == kA1in) AddGhost(e->key, e->bytes);
    if (e == admitting_) {
      admitting_dropped_ = true;
    } else {
      if (evicted_ != nullptr) evicted_->push_back(e->key);
      ++stats_.evictions;
      stats_.evicted_bytes += e->bytes;
    }
    map_.erase(e->key);
  }

  // ---- kLru ----

  void AdmitLru(Entry* e) {
    segment_bytes_[0] += e->bytes;
    lists_[0].PushBack(e);
    while (used_ > capacity_) {
      Entry* victim = lists_[0].front();
      if (victim == nullptr) break;
      Evict(victim);
    }
  }

  // ---- kTinyLfu ----
  //
  // The window's bytes (segment_bytes_[kWindow]) include its pinned entries, which are out of its
  // list: the blocks a request holds keep their share of the window, so that when they are unpinned
  // they do not all spill into main at once without facing admission.

  void AdmitTinyLfu(Entry* e) {
    if (options_.sketch_entries == 0 && map_.size() > sketch_.entries()) sketch_.Grow();
    e->segment = kWindow;
    segment_bytes_[kWindow] += e->bytes;
    lists_[kWindow].PushBack(e);

    // The oldest window entries beyond the window's share become candidates for main: they go to
    // the newest end of probation, marked pending, in age order.
    Entry* next_candidate = nullptr;
    while (segment_bytes_[kWindow] > window_max_ && !lists_[kWindow].empty()) {
      Entry* c = lists_[kWindow].front();
      SetSegment(c, kProbation);
      c->pending = true;
      pending_bytes_ += c->bytes;
      if (next_candidate == nullptr) next_candidate = c;
    }

    // While over budget, the oldest candidate faces the blocks it would displace from main; when
    // the candidates are used up, the window's oldest entry does (as Caffeine).
    while (used_ > capacity_) {
      Entry* c = next_candidate;
      if (c != nullptr) {
        next_candidate = lists_[kProbation].Next(c);
      } else {
        c = lists_[kWindow].front();
      }
      if (c == nullptr) {  // nothing left to compare (all else pinned): displace main's oldest
        Entry* victim = FirstVictim();
        if (victim == nullptr) break;
        Evict(victim);
        continue;
      }
      if (WinsAdmission(c)) {
        ClearPending(c);
      } else {
        ++stats_.filtered;
        Evict(c);
      }
    }
    for (Entry* c = next_candidate; c != nullptr; c = lists_[kProbation].Next(c)) ClearPending(c);
  }

  void ClearPending(Entry* c) {
    if (!c->pending) return;
    c->pending = false;
    pending_bytes_ -= c->bytes;
  }

  // Main's next block to displace: probation's oldest that is not a pending candidate, else
  // protected's oldest. Pending candidates sit at probation's newest end, so the first one ends
  // probation's turn.
  Entry* FirstVictim() const {
    Entry* v = lists_[kProbation].front();
    if (v != nullptr && !v->pending) return v;
    return lists_[kProtected].front();
  }

  // Size-aware TinyLFU admission: candidate c (resident, over budget by `need` bytes) wins if main
  // can free `need` bytes from blocks that are all estimated less frequent than c; those blocks are
  // then displaced. Looks at no more blocks than it would displace.
  //
  // The victims come from two cursors, probation's oldest (up to the pending candidates) and
  // protected's oldest; probation's go first (as FirstVictim orders them), except while
  // recovering from a detected shift: then protected's oldest goes first when it has not been seen
  // since the sketch was reset (estimate 0) and probation's has. Protected shields the old hot set
  // from eviction as long as probation holds anything; after a shift that would keep it for as long
  // as the new blocks take to fill probation.
  bool WinsAdmission(Entry* c) {
    const uint64_t need = used_ - capacity_;
    const uint64_t available =
        lists_[kProbation].bytes() - pending_bytes_ + lists_[kProtected].bytes();
    if (available < need) return false;
    const int frequency = sketch_.Estimate(c->hash);
    const bool recovering = sketch_.ages() < recovery_end_ages_;
    victims_.clear();
    uint64_t freed = 0;
    Entry* p = NotPending(lists_[kProbation].front());
    Entry* q = lists_[kProtected].front();
    while (freed < need) {
      const bool protected_first =
          p == nullptr || (recovering && q != nullptr && sketch_.Estimate(q->hash) == 0 &&
                           sketch_.Estimate(p->hash) > 0);
      Entry* v = protected_first ? q : p;
      assert(v != nullptr);  // the cursors cover `available` bytes, at least `need`
      if (sketch_.Estimate(v->hash) >= frequency) return false;
      freed += v->bytes;
      victims_.push_back(v);
      if (v == p) {
        p = NotPending(lists_[kProbation].Next(p));
      } else {
        q = lists_[kProtected].Next(q);
      }
    }
    for (Entry* v : victims_) Evict(v);
    return true;
  }

  static Entry* NotPending(Entry* e) { return e != nullptr && !e->pending ? e : nullptr; }

  // ---- adaptive kTinyLfu ----

  // Replays an access against both shadows (`resident`: the cache's entry, null on a miss). A
  // shadow that misses a block the cache holds takes it now, at the cache's size for it; one that
  // misses a block the cache misses too takes it when the block is offered (Admit). Resets the
  // sketch when the shift detector fires.
  void ObserveInShadows(const CacheKey& key, const Entry* resident) {
    const bool lru_hit = lru_shadow_->Touch(key);
    const bool plain_hit = plain_shadow_->Touch(key);
    if (resident != nullptr) {
      if (!lru_hit) lru_shadow_->Admit(key, resident->bytes, nullptr);
      if (!plain_hit) plain_shadow_->Admit(key, resident->bytes, nullptr);
    }
    if (shift_detector_.Observe(resident != nullptr, lru_hit, plain_hit, sketch_.entries())) {
      sketch_.Reset();
      recovery_end_ages_ = sketch_.ages() + 1;  // recovering until the sketch next ages
      ++stats_.sketch_resets;
    }
  }

  void DemoteProtectedOverflow() {
    while (segment_bytes_[kProtected] > protected_max_ && !lists_[kProtected].empty())
      SetSegment(lists_[kProtected].front(), kProbation);
  }

  // ---- kTwoQ ----

  void AdmitTwoQ(Entry* e) {
    int segment = kA1in;
    if (EraseGhost(e->key)) segment = kAm;  // dropped from A1in lately and back: a hot block
    e->segment = static_cast<uint8_t>(segment);
    segment_bytes_[segment] += e->bytes;
    lists_[segment].PushBack(e);
    while (used_ > capacity_) {
      Entry* victim = nullptr;
      if (segment_bytes_[kA1in] > in_max_) victim = lists_[kA1in].front();
      if (victim == nullptr) victim = lists_[kAm].front();
      if (victim == nullptr) victim = lists_[kA1in].front();
      if (victim == nullptr) break;
      Evict(victim);
    }
  }

  void AddGhost(const CacheKey& key, uint64_t bytes) {
    EraseGhost(key);
    Entry* g = &ghosts_[key];
    g->key = key;
    g->bytes = bytes;
    ghost_list_.PushBack(g);
    while (ghost_list_.bytes() > ghost_max_) {
      Entry* old = ghost_list_.front();
      ghost_list_.Remove(old);
      ghosts_.erase(old->key);
    }
  }

  bool EraseGhost(const CacheKey& key) {
    auto it = ghosts_.find(key);
    if (it == ghosts_.end()) return false;
    ghost_list_.Remove(&it->second);
    ghosts_.erase(it);
    return true;
  }

  CachePolicyOptions options_;
  uint64_t capacity_ = 0;
  uint64_t window_max_ = 0;     // kTinyLfu
  uint64_t protected_max_ = 0;  // kTinyLfu
  uint64_t in_max_ = 0;         // kTwoQ: A1in
  uint64_t ghost_max_ = 0;      // kTwoQ: A1out

  // Entries live in the map (node-based: their addresses are stable); the lists link them.
  std::unordered_map<CacheKey, Entry, CacheKeyHasher> map_;
  std::array<EntryList, kSegments> lists_;  // unpinned entries of each segment
  std::array<uint64_t, kSegments> segment_bytes_ =
      {};  // all entries of each segment, pinned included
  uint64_t used_ = 0;
  uint64_t pinned_ = 0;
  uint64_t pending_bytes_ = 0;  // kTinyLfu: bytes of the pending candidates

  FrequencySketch sketch_;       // kTinyLfu
  std::vector<Entry*> victims_;  // kTinyLfu: the blocks WinsAdmission would displace
  std::unordered_map<CacheKey, Entry, CacheKeyHasher> ghosts_;  // kTwoQ: A1out, keys and sizes only
  EntryList ghost_list_;

  // Adaptive kTinyLfu (null otherwise): the shadows, a plain LRU and a plain W-TinyLFU of the same
  // budget, fed every access and offer, pins aside; they hold keys and sizes, never blocks.
  std::unique_ptr<Impl> lru_shadow_;
  std::unique_ptr<Impl> plain_shadow_;
  ShiftDetector shift_detector_;
  // Recovering from a detected shift while sketch_.ages() is below this.
  uint64_t recovery_end_ages_ = 0;

  // The Admit under way.
  Entry* admitting_ = nullptr;
  bool admitting_dropped_ = false;
  std::vector<CacheKey>* evicted_ = nullptr;

  Stats stats_;
};

CachePolicy::CachePolicy(const CachePolicyOptions& options)
    : impl_(std::make_unique<Impl>(options)) {}
CachePolicy::~CachePolicy() = default;
CachePolicy::CachePolicy(CachePolicy&&) noexcept = default;
CachePolicy& CachePolicy::operator=(CachePolicy&&) noexcept = default;

bool CachePolicy::Touch(const CacheKey& key) { return impl_->Touch(key); }
bool CachePolicy::Admit(const CacheKey& key, uint64_t bytes, std::vector<CacheKey>* evicted) {
  return impl_->Admit(key, bytes, evicted);
}
bool CachePolicy::Pin(const CacheKey& key) { return impl_->Pin(key); }
bool CachePolicy::Unpin(const CacheKey& key) { return impl_->Unpin(key); }
bool CachePolicy::Erase(const CacheKey& key) { return impl_->Erase(key); }
bool CachePolicy::Contains(const CacheKey& key) const { return impl_->Contains(key); }
bool CachePolicy::IsPinned(const CacheKey& key) const { return impl_->IsPinned(key); }
uint64_t CachePolicy::used_bytes() const { return impl_->used_bytes(); }
uint64_t CachePolicy::pinned_bytes() const { return impl_->pinned_bytes(); }
size_t CachePolicy::size() const { return impl_->size(); }
const CachePolicyOptions& CachePolicy::options() const { return impl_->options(); }
CachePolicy::Stats CachePolicy::stats() const { return impl_->stats(); }

}  // namespace blockkv
