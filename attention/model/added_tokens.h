// The added (and special) tokens of a tokenizer.json, matched in the text before anything else, as
// Hugging Face `tokenizers`' AddedVocabulary matches them: leftmost-longest, first against the raw text
// (tokens with "normalized": false), then against each normalized piece ("normalized": true, matched in
// their normalized form), honouring single_word, lstrip and rstrip.
//
// Thread safety: immutable after Build; Split may run on many threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "db/status.h"

namespace blockkv {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

class AddedTokens {
 public:
  // Builds the two matchers; `normalizer` (may be null) gives the normalized form of normalized tokens.
  Status Build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  struct Piece {
    size_t begin, end;  // byte range in the text
    int32_t id;         // the added token's id, or -1 for text between tokens
  };
  // Cuts `text` into pieces covering it (empty text: no pieces). `normalized_pass`: match the tokens
  // with "normalized": true (in a normalized piece) instead of the others (in the raw text).
  void Split(std::string_view text, bool normalized_pass, std::vector<Piece>* out) const;

  bool has_normalized() const { return !tries_[1].nodes.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // The token with this id, or nullptr.
  const AddedToken* Find(int32_t id) const;
  // The token whose content is `content`, or nullptr.
  const AddedToken* FindContent(std::string_view content) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> edges;  // sorted by byte
    int32_t token = -1;                              // index into tokens_ when a token ends here
  };
  struct Trie {
    std::vector<Node> nodes;
    bool first[256] = {};
    void Insert(std::string_view pattern, int32_t token);
    // The longest token starting at `pos`, or -1; *end receives its end.
    int32_t Longest(std::string_view text, size_t pos, size_t* end) const;
  };
  std::vector<AddedToken> tokens_;
  Trie tries_[2];  // [0]: raw text, [1]: normalized pieces
  std::unordered_map<int32_t, size_t> by_id_;  // id → index into tokens_ (the first with that id)
};

}  // namespace blockkv
