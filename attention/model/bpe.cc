#include "attention/model/bpe.h"

#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <xxhash.h>

#include "attention/model/utf8.h"

namespace blockkv {

// ---- StringIdMap ----

void StringIdMap::Reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > slots_.size()) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    for (const Slot& s : old) {
      if (s.value < 0) continue;
      size_t i = s.hash & (slots_.size() - 1);
      while (slots_[i].value >= 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }
}

void StringIdMap::Grow() { Reserve(std::max<size_t>(16, slots_.size())); }

void StringIdMap::Put(std::string_view key, int32_t value) {
  if ((count_ + 1) * 2 > slots_.size()) Grow();
  const uint64_t h = XXH3_64bits(key.data(), key.size());
  size_t i = h & (slots_.size() - 1);
  while (slots_[i].value >= 0) {
    Slot& s = slots_[i];
    if (s.hash == h && s.length == key.size() &&
        std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
      s.value = value;
      return;
    }
    i = (i + 1) & (slots_.size() - 1);
  }
  slots_[i] = Slot{h, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value};
  arena_.append(key);
  ++count_;
}

int32_t StringIdMap::Get(std::string_view key) const {
  if (slots_.empty()) return -1;
  const uint64_t h = XXH3_64bits(key.data(), key.size());
  size_t i = h & (slots_.size() - 1);
  while (true) {
    const Slot& s = slots_[i];
    if (s.value < 0) return -1;
    if (s.hash == h && s.length == key.size() &&
        std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
      return s.value;
    i = (i + 1) & (slots_.size() - 1);
  }
}

// ---- GPT-2's byte mapping ----

namespace {

struct ByteTables {
  uint32_t to_char[256];
  int16_t to_byte[512];  // mapped characters are all below U+0200
  ByteTables() {
    for (auto& x : to_byte) x = -1;
    bool direct[256] = {};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) to_char[b] = direct[b] ? b : 256 + n++;
    for (int b = 0; b < 256; ++b) to_byte[to_char[b]] = static_cast<int16_t>(b);
  }
};
const ByteTables& Tables() {
  static const ByteTables t;
  return t;
}

std::atomic<uint64_t> g_next_cache_id{1};

// Recent pre-tokens and their ids, per thread and model. Bounded: cleared when full.
struct PieceCache {
  std::unordered_map<std::string, std::vector<int32_t>> map;
};
constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kCacheMaxPiece = 256;  // longer pre-tokens are not cached (as `tokenizers`)

PieceCache& CacheFor(uint64_t id) {
  thread_local std::unordered_map<uint64_t, PieceCache> caches;
  return caches[id];
}

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
uint64_t MixKey(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

uint32_t ByteToChar(uint8_t b) { return Tables().to_char[b]; }
int CharToByte(uint32_t cp) { return cp < 512 ? Tables().to_byte[cp] : -1; }

// ---- Bpe ----

StatusOr<std::unique_ptr<Bpe>> Bpe::Load(const nlohmann::json& model, bool byte_level) {
  auto bpe = std::unique_ptr<Bpe>(new Bpe());
  if (!model.is_object()) return Status::InvalidArgument("tokenizer.json: \"model\" is not an object");
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE")
    return Status::NotSupported("tokenizer.json: model type \"" + type + "\" (only BPE is supported)");
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0)
    return Status::NotSupported("tokenizer.json: BPE dropout");
  const auto flag = [&](const char* k) { return model.contains(k) && model[k].is_boolean() && model[k].get<bool>(); };
  const auto str = [&](const char* k) {
    return model.contains(k) && model[k].is_string() ? model[k].get<std::string>() : std::string();
  };
  bpe->ignore_merges_ = flag("ignore_merges");
  bpe->byte_fallback_ = flag("byte_fallback");
  bpe->fuse_unk_ = flag("fuse_unk");
  bpe->prefix_ = str("continuing_subword_prefix");
  bpe->suffix_ = str("end_of_word_suffix");

  if (!model.contains("vocab") || !model["vocab"].is_object())
    return Status::InvalidArgument("tokenizer.json: model.vocab is not an object of token → id");
  const auto& vocab = model["vocab"];
  bpe->vocab_.Reserve(vocab.size());
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= (int64_t{1} << 30))
      return Status::InvalidArgument("tokenizer.json: model.vocab[\"" + it.key() + "\"] is not a valid id");
    max_id = std::max<int64_t>(max_id, it.value().get<int64_t>());
  }
  bpe->id_to_token_.resize(max_id + 1);
  bpe->has_id_.assign(max_id + 1, false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = static_cast<int32_t>(it.value().get<int64_t>());
    bpe->vocab_.Put(it.key(), id);
    bpe->id_to_token_[id] = it.key();
    bpe->has_id_[id] = true;
  }
  const std::string unk = str("unk_token");
  if (!unk.empty()) {
    bpe->unk_id_ = bpe->vocab_.Get(unk);
    if (bpe->unk_id_ < 0)
      return Status::InvalidArgument("tokenizer.json: unk_token \"" + unk + "\" is not in the vocabulary");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    bpe->byte_token_[b] = bpe->vocab_.Get(name);
  }

  // Merges: "a b" strings or ["a", "b"] pairs; rank = position in the list.
  const nlohmann::json empty = nlohmann::json::array();
  const auto& merges = model.contains("merges") ? model["merges"] : empty;
  if (!merges.is_array()) return Status::InvalidArgument("tokenizer.json: model.merges is not a list");
  size_t cap = 16;
  while (cap < merges.size() * 2) cap <<= 1;
  bpe->merges_.assign(cap, MergeSlot{});
  bpe->merge_mask_ = cap - 1;
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& m = merges[r];
    std::string a, b;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        return Status::InvalidArgument("tokenizer.json: model.merges[" + std::to_string(r) + "] \"" + s +
                                       "\" is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return Status::InvalidArgument("tokenizer.json: model.merges[" + std::to_string(r) +
                                     "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const int32_t ia = bpe->vocab_.Get(a), ib = bpe->vocab_.Get(b);
    std::string joined = a;
    joined += std::string_view(b).substr(
        !bpe->prefix_.empty() && b.compare(0, bpe->prefix_.size(), bpe->prefix_) == 0 ? bpe->prefix_.size() : 0);
    const int32_t in = bpe->vocab_.Get(joined);
    if (ia < 0 || ib < 0 || in < 0)
      return Status::InvalidArgument("tokenizer.json: model.merges[" + std::to_string(r) +
                                     "] names a token that is not in the vocabulary");
    const uint64_t key = PairKey(ia, ib);
    size_t i = MixKey(key) & bpe->merge_mask_;
    while (bpe->merges_[i].key != ~0ULL && bpe->merges_[i].key != key) i = (i + 1) & bpe->merge_mask_;
    if (bpe->merges_[i].key == key) continue;  // a repeated merge keeps its first rank
    bpe->merges_[i] = MergeSlot{key, static_cast<int32_t>(r), in};
  }

  // Byte-level index: only when every single byte has a token (else the generic path runs on the mapped
  // strings, which gives the same result more slowly).
  if (byte_level) {
    bool all = true;
    for (int b = 0; b < 256 && all; ++b) {
      std::string c;
      utf8::Append(ByteToChar(static_cast<uint8_t>(b)), &c);
      bpe->byte_id_[b] = bpe->vocab_.Get(c);
      all = bpe->byte_id_[b] >= 0;
    }
    if (all && bpe->prefix_.empty() && bpe->suffix_.empty()) {
      bpe->byte_level_ = true;
      bpe->byte_vocab_.Reserve(vocab.size());
      std::string raw;
      for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const std::string& t = it.key();
        raw.clear();
        size_t i = 0;
        bool ok = true;
        while (i < t.size() && ok) {
          const int b = CharToByte(utf8::Next(t, &i));
          ok = b >= 0;
          raw.push_back(static_cast<char>(b));
        }
        if (ok) bpe->byte_vocab_.Put(raw, static_cast<int32_t>(it.value().get<int64_t>()));
      }
    }
  }
  bpe->cache_id_ = g_next_cache_id.fetch_add(1);
  return bpe;
}

std::pair<int32_t, int32_t> Bpe::FindMerge(int32_t a, int32_t b) const {
  const uint64_t key = PairKey(a, b);
  size_t i = MixKey(key) & merge_mask_;
  while (true) {
    const MergeSlot& s = merges_[i];
    if (s.key == key) return {s.rank, s.new_id};
    if (s.key == ~0ULL) return {-1, -1};
    i = (i + 1) & merge_mask_;
  }
}

// Word::merge_all of `tokenizers`: a queue of candidate merges ordered by (rank, position); an entry
// is stale when its left symbol was merged away or its pair no longer produces the same token.
void Bpe::Merge(std::vector<Symbol>* symbols_ptr) const {
  std::vector<Symbol>& sy = *symbols_ptr;
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator<(const Cand& o) const {  // priority_queue pops the greatest: lowest rank, then pos
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Cand> storage;
  storage.reserve(sy.size() * 2);
  std::priority_queue<Cand> queue(std::less<Cand>(), std::move(storage));
  for (size_t i = 0; i + 1 < sy.size(); ++i) {
    auto [rank, id] = FindMerge(sy[i].id, sy[i + 1].id);
    if (rank >= 0) queue.push(Cand{rank, static_cast<int32_t>(i), id});
  }
  while (!queue.empty()) {
    const Cand top = queue.top();
    queue.pop();
    Symbol& cur = sy[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = sy[next_pos];
    auto [rank, id] = FindMerge(cur.id, right.id);
    if (rank < 0 || id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sy[next_pos].len = 0;
    if (right.next >= 0 && static_cast<size_t>(right.next) < sy.size()) sy[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      auto [r2, id2] = FindMerge(sy[cur.prev].id, cur.id);
      if (r2 >= 0) queue.push(Cand{r2, cur.prev, id2});
    }
    if (cur.next >= 0 && static_cast<size_t>(cur.next) < sy.size()) {
      auto [r3, id3] = FindMerge(cur.id, sy[cur.next].id);
      if (r3 >= 0) queue.push(Cand{r3, top.pos, id3});
    }
  }
}

void Bpe::MergeWord(std::string_view w, std::vector<int32_t>* ids) const {
  std::vector<Symbol> sy;
  sy.reserve(w.size());
  const auto add = [&](int32_t id, uint32_t len) {
    const int32_t n = static_cast<int32_t>(sy.size());
    sy.push_back(Symbol{id, n - 1, -1, len});
    if (n > 0) sy[n - 1].next = n;
  };
  if (byte_level_) {
    for (char c : w) add(byte_id_[static_cast<uint8_t>(c)], 1);
  } else {
    int32_t unk_pending = -1;
    uint32_t unk_len = 0;
    std::string s;
    size_t i = 0;
    while (i < w.size()) {
      const size_t start = i;
      utf8::Next(w, &i);
      const uint32_t byte_len = static_cast<uint32_t>(i - start);
      s.clear();
      if (start > 0) s += prefix_;
      s.append(w.data() + start, byte_len);
      if (i == w.size()) s += suffix_;
      const int32_t id = vocab_.Get(s);
      if (id >= 0) {
        if (unk_pending >= 0) {
          add(unk_pending, unk_len);
          unk_pending = -1;
        }
        add(id, byte_len);
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (char c : s) all = all && byte_token_[static_cast<uint8_t>(c)] >= 0;
        if (all) {
          for (char c : s) add(byte_token_[static_cast<uint8_t>(c)], 1);
          continue;
        }
      }
      if (unk_id_ >= 0) {
        if (unk_pending >= 0 && fuse_unk_) {
          unk_len += byte_len;
        } else {
          if (unk_pending >= 0) add(unk_pending, unk_len);
          unk_pending = unk_id_;
          unk_len = byte_len;
        }
      }
    }
    if (unk_pending >= 0) add(unk_pending, unk_len);
  }
  Merge(&sy);
  for (const Symbol& s : sy)
    if (s.len > 0) ids->push_back(s.id);
}

Status Bpe::Tokenize(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.empty()) return Status::OK();
  if (ignore_merges_) {
    const int32_t id = byte_level_ ? byte_vocab_.Get(piece) : vocab_.Get(piece);
    if (id >= 0) {
      ids->push_back(id);
      return Status::OK();
    }
  }
  if (piece.size() >= kCacheMaxPiece) {
    MergeWord(piece, ids);
    return Status::OK();
  }
  PieceCache& cache = CacheFor(cache_id_);
  auto it = cache.map.find(std::string(piece));
  if (it != cache.map.end()) {
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return Status::OK();
  }
  const size_t before = ids->size();
  MergeWord(piece, ids);
  if (cache.map.size() >= kCacheCapacity) cache.map.clear();
  cache.map.emplace(std::string(piece), std::vector<int32_t>(ids->begin() + before, ids->end()));
  return Status::OK();
}

}  // namespace blockkv
