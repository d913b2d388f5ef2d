// Tokenizer: a model directory's tokenizer.json (+ tokenizer_config.json), giving exactly the ids that
// Hugging Face `tokenizers` gives (tests/tokenizer_equality_test.cc checks four real files line by
// line) and decoding them back.
//
// Encoding runs `tokenizers`' pipeline: added/special tokens are cut out first (attention/model/
// added_tokens.h), the rest is normalized (normalizer.h), pre-tokenized (pre_tokenizer.h: PCRE2 runs
// the regexes), merged by the BPE model (bpe.h), and the post-processor adds its special tokens
// (TemplateProcessing, Roberta/Bert, ByteLevel, Sequence). Decoding maps ids to token strings and runs
// the decoder (token_decoder.h). A component blockkv does not implement is a NotSupported error at
// Load naming it: never an approximation.
//
// Thread safety: a Tokenizer is immutable after Load. Encode, EncodeBatch and Decode may be called from
// any number of threads at once. Ownership: Load returns a Tokenizer the caller owns.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/model/added_tokens.h"
#include "db/status.h"

namespace blockkv {

class Bpe;
class Normalizer;
class PreTokenizer;
class TokenDecoder;
class ThreadPool;

// What tokenizer_config.json (and generation_config.json, where present) say about prompts.
struct TokenizerConfig {
  std::string bos_token, eos_token, pad_token, unk_token;  // empty when unset
  std::string chat_template;                               // empty when the model has none
  // Every variable a chat template sees beside messages (bos_token, eos_token, ... as strings).
  nlohmann::json template_variables = nlohmann::json::object();
  // Ids that end generation: eos_token's, and generation_config.json's eos_token_id (one or a list).
  std::vector<int32_t> stop_ids;
};

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json and
  // DIR/generation_config.json. Errors: NotFound without tokenizer.json; InvalidArgument (one line,
  // naming the file and the field) for a malformed file; NotSupported naming an unsupported component.
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::filesystem::path& dir);
  // The same from the files' contents (`config_json` and `generation_json` may be empty). `label`
  // names the source in errors.
  static StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                       std::string_view config_json = {},
                                                       std::string_view generation_json = {},
                                                       const std::string& label = "tokenizer.json");
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // The ids of `text`, as `tokenizers`' encode(text, add_special_tokens).ids. Errors: InvalidArgument
  // naming the byte offset when `text` is not valid UTF-8.
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens = true) const;

  // Encodes every text on `threads` threads (<= 0: all cores); (*out)[i] are texts[i]'s ids. On error
  // the first failing text's error is returned, naming its index.
  Status EncodeBatch(std::span<const std::string> texts, bool add_special_tokens,
                     std::vector<std::vector<int32_t>>* out, int threads = 0) const;

  // The text of `ids`, as `tokenizers`' decode(ids, skip_special_tokens). Unknown ids are skipped, as
  // there.
  StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The id of a token string (added tokens first, then the model's vocabulary), or -1.
  int32_t TokenToId(std::string_view token) const;
  // The token string of an id, or "" when there is none.
  std::string IdToToken(int32_t id) const;
  bool IsSpecial(int32_t id) const;
  // One past the largest id.
  int32_t id_limit() const { return id_limit_; }
  // The ids the post-processor puts before / after a single sequence when add_special_tokens is set.
  const std::vector<int32_t>& prefix_ids() const { return prefix_ids_; }
  const std::vector<int32_t>& suffix_ids() const { return suffix_ids_; }
  const TokenizerConfig& config() const { return config_; }

 private:
  Tokenizer();
  Status LoadPostProcessor(const nlohmann::json& spec);
  Status LoadConfig(std::string_view config_json, std::string_view generation_json);
  // Appends the ids of a piece that holds no added token of the raw pass.
  Status EncodePiece(std::string_view piece, bool at_origin, std::vector<int32_t>* ids) const;

  std::unique_ptr<Bpe> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<TokenDecoder> decoder_;
  AddedTokens added_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  TokenizerConfig config_;
  int32_t id_limit_ = 0;
  bool raw_bytes_ = false;  // pre-tokens reach the model as raw bytes (byte-level mode)
  mutable std::once_flag pool_once_;
  mutable std::unique_ptr<ThreadPool> pool_;  // EncodeBatch's threads, made on first use
};

// Turns generated ids into text as they come, never splitting a UTF-8 character: text is released
// only once the ids so far decode to complete characters (as `tokenizers`' DecodeStream does).
// Thread safety: one stream per sequence, used from one thread at a time.
class TextStream {
 public:
  explicit TextStream(const Tokenizer* tokenizer, bool skip_special_tokens = true);
  // Appends to *out the text that `id` completes (possibly nothing).
  Status Push(int32_t id, std::string* out);
  // Appends whatever is still held back (incomplete characters become U+FFFD).
  Status Finish(std::string* out);

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // the ids since the last release point
  size_t prefix_ids_ = 0;     // how many of ids_ are context already released
  std::string prefix_;        // their text
};

}  // namespace blockkv
