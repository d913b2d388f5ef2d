#include "attention/model/added_tokens.h"

#include <algorithm>
#include <unicode/uchar.h>

#include "attention/model/normalizer.h"
#include "attention/model/utf8.h"

namespace blockkv {

namespace {

// Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool IsWordChar(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  if (u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC)) return true;
  if (u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_JOIN_CONTROL)) return true;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

}  // namespace

void AddedTokens::Trie::Insert(std::string_view pattern, int32_t token) {
  if (nodes.empty()) nodes.emplace_back();
  int32_t n = 0;
  for (char ch : pattern) {
    const uint8_t c = static_cast<uint8_t>(ch);
    auto& e = nodes[n].edges;
    auto it = std::lower_bound(e.begin(), e.end(), std::make_pair(c, int32_t{-1}));
    if (it != e.end() && it->first == c) {
      n = it->second;
    } else {
      const int32_t child = static_cast<int32_t>(nodes.size());
      e.insert(it, {c, child});
      nodes.emplace_back();
      n = child;
    }
  }
  if (nodes[n].token < 0) nodes[n].token = token;  // the first token with this content wins
  first[static_cast<uint8_t>(pattern[0])] = true;
}

int32_t AddedTokens::Trie::Longest(std::string_view text, size_t pos, size_t* end) const {
  int32_t n = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(text[i]);
    const auto& e = nodes[n].edges;
    auto it = std::lower_bound(e.begin(), e.end(), std::make_pair(c, int32_t{-1}));
    if (it == e.end() || it->first != c) break;
    n = it->second;
    if (nodes[n].token >= 0) {
      best = nodes[n].token;
      *end = i + 1;
    }
  }
  return best;
}

Status AddedTokens::Build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_ = std::move(tokens);
  for (size_t i = 0; i < tokens_.size(); ++i) by_id_.emplace(tokens_[i].id, i);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;  // `tokenizers` ignores empty added tokens
    if (!utf8::IsValid(t.content))
      return Status::InvalidArgument("tokenizer.json: added token " + std::to_string(t.id) + " is not valid UTF-8");
    std::string pattern = t.content;
    if (t.normalized && normalizer != nullptr) RETURN_IF_ERROR(normalizer->Apply(t.content, &pattern));
    if (pattern.empty()) continue;
    tries_[t.normalized ? 1 : 0].Insert(pattern, static_cast<int32_t>(i));
  }
  return Status::OK();
}

void AddedTokens::Split(std::string_view text, bool normalized_pass, std::vector<Piece>* out) const {
  if (text.empty()) return;
  const Trie& trie = tries_[normalized_pass ? 1 : 0];
  size_t emitted = 0;  // end of what has been emitted
  if (!trie.nodes.empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      if (!trie.first[static_cast<uint8_t>(text[pos])]) {
        ++pos;
        continue;
      }
      size_t stop = 0;
      const int32_t k = trie.Longest(text, pos, &stop);
      if (k < 0) {
        ++pos;
        continue;
      }
      const AddedToken& t = tokens_[k];
      size_t start = pos;
      pos = stop;  // the scan goes on after this match whether or not it is kept
      if (t.single_word) {
        const bool start_ok = start == 0 || !IsWordChar(utf8::Last(text.substr(0, start)));
        size_t j = stop;
        const bool stop_ok = stop == text.size() || !IsWordChar(utf8::Next(text, &j));
        if (!start_ok || !stop_ok) continue;
      }
      if (t.lstrip) {
        size_t s = start;
        while (s > 0) {
          const uint32_t cp = utf8::Last(text.substr(0, s));
          if (!utf8::IsWhiteSpace(cp)) break;
          s -= cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        }
        start = std::max(s, emitted);
      }
      if (t.rstrip) {
        while (stop < text.size()) {
          size_t j = stop;
          if (!utf8::IsWhiteSpace(utf8::Next(text, &j))) break;
          stop = j;
        }
      }
      if (emitted < start) out->push_back(Piece{emitted, start, -1});
      out->push_back(Piece{start, stop, t.id});
      emitted = stop;
    }
  }
  if (emitted < text.size()) out->push_back(Piece{emitted, text.size(), -1});
}

const AddedToken* AddedTokens::Find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::FindContent(std::string_view content) const {
  for (const AddedToken& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

}  // namespace blockkv
