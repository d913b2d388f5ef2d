// Text prompts: a question, passages named by id (the store's names) or given as text, and an optional
// system text, turned into the token blocks the Engine answers (DESIGN §5b).
//
// A passage named by id is taken as stored: its tokens come from the store's metadata, so neither its
// text nor re-tokenizing is needed, and an id that is not stored (for this model) is an error naming it.
// A passage given as text is formatted by the passage template and tokenized; if it also has an id,
// the engine stores it under that name when it is a miss.
//
// Thread safety: plain functions; `store` is used as the BlockStore contract allows.
#pragma once

#include <string>
#include <vector>

#include "attention/engine.h"
#include "attention/model/prompt_format.h"
#include "attention/model/tokenizer.h"
#include "db/block_store.h"

namespace blockkv {

struct PassageRef {
  std::string id;     // the store's name for the passage; for a text passage, optional
  std::string title;  // text passages only
  std::string text;   // empty: the passage is named by id and must be stored
  bool by_id() const { return text.empty(); }
};

struct TextPrompt {
  std::string system;  // empty: none (the paper format then uses its default)
  std::vector<PassageRef> passages;
  std::string question;
  std::optional<PromptFormatKind> format;  // set by the prompt itself; else the caller's choice
};

// The seed's JSONL (Block-Attention's own data): blocks as text, the last one the final block. Each
// block is tokenized as it is, with no special tokens added.
struct TextBlocksPrompt {
  std::vector<std::string> blocks;  // the last is the final block
};

struct TextPromptOptions {
  // Default: the model's chat template when it has one, else the paper format.
  std::optional<PromptFormatKind> format;
  // Default: kDefaultPassageTemplate ("- Title: {title}\n{text}\n").
  std::string passage_template = kDefaultPassageTemplate;
};

// The tokens of a passage's block: FormatPassage(template, ...), encoded without special tokens.
StatusOr<std::vector<int32_t>> PassageTokens(const Tokenizer& tokenizer, const std::string& passage_template,
                                             const PassageRef& passage);

// Builds the request's blocks and final block. `store` may be null only if no passage is named by id.
// Errors: NotFound naming a passage id that is not stored for `model`; InvalidArgument for an empty
// question or a text that is not UTF-8; the chat template's errors.
StatusOr<EngineRequest> BuildTextRequest(const TextPrompt& prompt, const Tokenizer& tokenizer, BlockStore* store,
                                         const ModelFingerprint& model, const TextPromptOptions& options = {});
StatusOr<EngineRequest> BuildTextBlocksRequest(const TextBlocksPrompt& prompt, const Tokenizer& tokenizer);

}  // namespace blockkv
