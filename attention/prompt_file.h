// Prompt and corpus files given as token ids (DESIGN §6; text comes with the tokenizer).
//
// Prompt (JSON): {"blocks": [[ids...], ..., [final ids...]], "names": ["p1", ...]} — the last list is the
// final block; "names" is optional and names the non-final blocks (passage ids).
// Corpus (JSON Lines): one passage per line, {"id": "passage id", "tokens": [ids...]}; blank lines are
// skipped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "attention/engine.h"

namespace blockkv {

struct PromptFile {
  std::vector<PromptBlock> blocks;   // non-final
  std::vector<int32_t> final_tokens;
};

// Errors: InvalidArgument naming `label` and what is wrong (not JSON, no blocks, a non-integer id, an
// empty final block, names of the wrong count).
StatusOr<PromptFile> ParsePrompt(std::string_view json, const std::string& label);
StatusOr<PromptFile> ReadPromptFile(const std::string& path);

// Parses a corpus; errors name the line number.
StatusOr<std::vector<PromptBlock>> ParseCorpus(std::string_view jsonl, const std::string& label);
StatusOr<std::vector<PromptBlock>> ReadCorpusFile(const std::string& path);

// Reads a whole file. IOError naming it.
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace blockkv
