// Tokenizers for synthetic models (make-model), so that tests, the demo and benchmarks work on text.
// Each is a real tokenizer.json in one of the two families blockkv reads, with merges learned from the
// project's demo corpus (attention/model/demo_corpus.jsonl) by a small deterministic BPE trainer, a
// tokenizer_config.json with a chat template, and special tokens placed where the model's config
// expects them:
//   kLlama3: byte-level BPE, Llama 3's pattern, <|begin_of_text|> added by the post-processor, Llama 3
//            chat headers (<|start_header_id|>, <|end_header_id|>, <|eot_id|>).
//   kQwen2:  byte-level BPE with NFC, no BOS, ChatML (<|im_start|>, <|im_end|>).
//   kLlama2: SentencePiece-style BPE (Metaspace, byte fallback; <unk> <s> </s> = 0 1 2), [INST] chat.
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "db/status.h"

namespace blockkv {

enum class SyntheticTokenizerStyle { kLlama3, kQwen2, kLlama2 };

struct SyntheticTokenizerLayout {
  int32_t bos = -1;               // -1: the style has no BOS
  int32_t eos = -1;               // what ends a turn (tokenizer_config's eos_token)
  std::vector<int32_t> stop_ids;  // every id that ends generation (generation_config's eos_token_id)
};

// Where the special tokens go in a vocabulary of `vocab_size`: from `special_base` on (-1: at the top of
// the vocabulary). InvalidArgument if the vocabulary is too small for the style.
StatusOr<SyntheticTokenizerLayout> SyntheticTokenizerIds(SyntheticTokenizerStyle style, int vocab_size,
                                                         int32_t special_base = -1);

// Writes dir/tokenizer.json and dir/tokenizer_config.json. Errors: InvalidArgument (vocabulary too
// small), IOError naming the file.
Status WriteSyntheticTokenizer(SyntheticTokenizerStyle style, int vocab_size, int32_t special_base,
                               const std::string& dir);

// The demo corpus that ships with blockkv: JSON Lines of {"id", "title", "text"} passages.
std::string_view DemoCorpusJsonl();

}  // namespace blockkv
