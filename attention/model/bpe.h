// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}), as Hugging Face `tokenizers`
// runs it: each pre-token is split into symbols (characters, or bytes in byte-level mode), symbols
// missing from the vocabulary fall back to <0xXX> byte tokens (`byte_fallback`) or to the unknown
// token (fused when `fuse_unk`), then pairs are merged lowest rank first, leftmost on ties, exactly as
// `tokenizers`' Word::merge_all does. `ignore_merges` returns a pre-token found whole in the
// vocabulary as one token.
//
// Byte-level mode: when the pre-tokenizer ends in ByteLevel, every pre-token reaches the model as
// GPT-2's byte-to-character mapping of its bytes. The model then keys its vocabulary by the raw bytes
// instead (the same lookups, without building the mapped strings); entries that do not map back to
// bytes can never match such input and are left out of that index.
//
// Thread safety: a Bpe is immutable after Load; Tokenize may be called from any number of threads
// (each thread keeps its own cache of recent pre-tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "db/status.h"

namespace blockkv {

// A string → int32 hash table with its keys in one arena, built once and then read-only.
class StringIdMap {
 public:
  void Reserve(size_t n);
  // Inserts or overwrites.
  void Put(std::string_view key, int32_t value);
  // -1 when absent.
  int32_t Get(std::string_view key) const;
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t value = -1;  // -1: empty
  };
  void Grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t count_ = 0;
};

class Bpe {
 public:
  // `model` is tokenizer.json's "model" object. `byte_level`: see above. Errors: InvalidArgument for a
  // malformed model (naming the field), NotSupported for dropout > 0 or another model type.
  static StatusOr<std::unique_ptr<Bpe>> Load(const nlohmann::json& model, bool byte_level);

  // Appends the ids of one pre-token (valid UTF-8, non-empty) to *ids.
  Status Tokenize(std::string_view piece, std::vector<int32_t>* ids) const;

  // The vocabulary entry of `id`, or nullptr. (In byte-level mode, still the mapped string.)
  const std::string* IdToToken(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < id_to_token_.size() && has_id_[id] ? &id_to_token_[id]
                                                                                   : nullptr;
  }
  int32_t TokenToId(std::string_view token) const { return vocab_.Get(token); }
  // True when Tokenize takes a pre-token's raw bytes (byte-level mode); false when it takes the
  // ByteLevel-mapped string (or plain text for a model without byte-level pre-tokenization).
  bool raw_bytes() const { return byte_level_; }
  // One past the largest id in the vocabulary.
  int32_t IdLimit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t len;  // bytes of the piece covered; 0 once merged into its left neighbour
  };
  void MergeWord(std::string_view piece, std::vector<int32_t>* ids) const;
  void Merge(std::vector<Symbol>* symbols) const;
  // (rank, new id) of the merge of pair (a, b), or rank -1.
  std::pair<int32_t, int32_t> FindMerge(int32_t a, int32_t b) const;

  StringIdMap vocab_;       // the vocabulary as written in the file
  StringIdMap byte_vocab_;  // byte-level mode: raw bytes → id
  int32_t byte_id_[256];    // byte-level mode: the id of each single byte, -1 if none
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  // Merges: open addressing on the pair (a, b); rank and result.
  struct MergeSlot {
    uint64_t key = ~0ULL;
    int32_t rank = -1;
    int32_t new_id = -1;
  };
  std::vector<MergeSlot> merges_;
  uint64_t merge_mask_ = 0;
  bool byte_level_ = false;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  int32_t byte_token_[256];  // byte_fallback: the id of "<0xXX>", -1 if absent
  uint64_t cache_id_ = 0;    // distinguishes this model's entries in the per-thread cache
};

// GPT-2's mapping of bytes to printable characters (the ByteLevel pre-tokenizer and decoder).
uint32_t ByteToChar(uint8_t b);
// The byte a mapped character stands for, or -1.
int CharToByte(uint32_t cp);

}  // namespace blockkv
