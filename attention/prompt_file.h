// Prompt and corpus files (DESIGN §6, §5b).
//
// A prompt is one JSON object in any of three shapes:
//   text      {"question": "...", "passages": ["doc-17", {"text": "...", "title": "...", "id": "..."}],
//              "system": "...", "format": "chat"|"paper"}   passages by stored id, or by text
//   seed      {"prompt": "...", "blocks": ["text", ..., "final text"], "response": "..."}   Block-Attention's
//              own data: blocks as text, the last the final block ("prompt" and "response" are ignored)
//   token ids {"blocks": [[ids...], ..., [final ids...]], "names": ["p1", ...]}
// A prompt file holds one prompt (a JSON document) or many (JSON Lines, one prompt per line).
//
// A corpus is JSON Lines, one passage per line: {"id": "...", "text": "...", "title": "..."} (text;
// "title" optional) or {"id": "...", "tokens": [ids...]} (token ids). Blank lines are skipped.
//
// Errors name the file, the line (JSON Lines) and the field. Thread safety: plain functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "attention/engine.h"
#include "attention/text_prompt.h"

namespace blockkv {

struct PromptFile {
  enum class Kind { kTokenIds, kText, kTextBlocks };
  Kind kind = Kind::kTokenIds;
  // kTokenIds
  std::vector<PromptBlock> blocks;  // non-final
  std::vector<int32_t> final_tokens;
  // kText
  TextPrompt text;
  // kTextBlocks
  TextBlocksPrompt text_blocks;
  std::string label;  // "file" or "file:line", for messages
};

// One prompt. Errors: InvalidArgument naming `label` and what is wrong (not JSON, not UTF-8, no
// question or blocks, a non-integer id, an empty block, names of the wrong count, a field of the wrong
// type).
StatusOr<PromptFile> ParsePrompt(std::string_view json, const std::string& label);
// One prompt (a JSON document) or many (JSON Lines; errors name the line).
StatusOr<std::vector<PromptFile>> ParsePrompts(std::string_view text, const std::string& label);
StatusOr<std::vector<PromptFile>> ReadPromptFile(const std::string& path);

struct CorpusEntry {
  std::string name;
  std::vector<int32_t> tokens;  // a token-id line
  std::string title, text;      // a text line (text non-empty)
  size_t line = 0;
  bool is_text() const { return tokens.empty(); }
};

// One corpus line (`where` names it, e.g. "corpus.jsonl:12"). InvalidArgument naming the field.
StatusOr<CorpusEntry> ParseCorpusLine(std::string_view line, const std::string& where);

// Every line of a corpus: each non-blank line's entry or its error, in order. A malformed line is an
// error, and the caller decides whether to stop (the default) or skip it (--skip-bad).
struct CorpusLine {
  size_t line;
  StatusOr<CorpusEntry> entry;
};
std::vector<CorpusLine> ParseCorpusLines(std::string_view jsonl, const std::string& label);

// All entries, or the first malformed line's error.
StatusOr<std::vector<CorpusEntry>> ParseCorpus(std::string_view jsonl, const std::string& label);
StatusOr<std::vector<CorpusEntry>> ReadCorpusFile(const std::string& path);

// Reads a whole file. IOError naming it.
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace blockkv
