// Prompt formats: how a system text, passages and a question become the text of a block-attention
// prompt, and where its block boundaries fall (DESIGN §5b):
//   block 0        the preamble: everything before the first passage (BOS, system turn, user header)
//   blocks 1..n    one per passage, each formatted by a passage template
//   final block    the question and everything after it (end of the user turn, the assistant header)
//
// Two formats:
//   kChat   the model's own chat template (tokenizer_config.json), rendered for [system?, user] with
//           add_generation_prompt; the user message is the passages followed by the question. The cut
//           is made where the template places the user message, so whatever the template writes before
//           it is the preamble and whatever it writes after it ends the final block. (A template that
//           trims the user message would trim the passages and question together; blockkv leaves them
//           as given.)
//   kPaper  Block-Attention's own format for block-fine-tuned models (Tulu3-Block-FT, DESIGN §9):
//           "<|user|>\n" + system + "\n\n" | passages | question + "\n<|assistant|>\n"; no BOS.
//
// Thread safety: a PromptFormat is immutable; Render may be called from several threads.
#pragma once

#include <memory>
#include <string>

#include "attention/model/chat_template.h"
#include "db/status.h"

namespace blockkv {

class Tokenizer;

enum class PromptFormatKind { kChat, kPaper };

// "chat" or "paper"; nullopt otherwise.
std::optional<PromptFormatKind> ParsePromptFormatKind(std::string_view name);

// The default system text of the paper format (the one Tulu3-Block-FT was trained with).
extern const char* const kPaperSystemPrompt;

// The default passage template: "- Title: {title}\n{text}\n" when the passage has a title, else
// "{text}\n". Placeholders: {title}, {text}, {id}.
extern const char* const kDefaultPassageTemplate;

// Formats a passage's text with `tmpl` ({title}, {text}, {id} replaced; "{{" and "}}" are literal
// braces). An empty title drops the "- Title: {title}\n" line of the default template.
std::string FormatPassage(const std::string& tmpl, const std::string& id, const std::string& title,
                          const std::string& text);

struct PromptSegments {
  std::string preamble;      // block 0's text
  std::string final_prefix;  // the final block's text before the question
  std::string final_suffix;  // and after it
};

class PromptFormat {
 public:
  // kChat needs the tokenizer's chat template: InvalidArgument if it has none, or the template's parse
  // error (naming line and column).
  static StatusOr<PromptFormat> Make(PromptFormatKind kind, const Tokenizer& tokenizer);

  // The segments for a system text (empty: none, or the paper format's default).
  StatusOr<PromptSegments> Render(const std::string& system) const;
  PromptFormatKind kind() const { return kind_; }

 private:
  PromptFormatKind kind_ = PromptFormatKind::kPaper;
  std::shared_ptr<const ChatTemplate> chat_;
  nlohmann::json variables_;  // bos_token, eos_token, ...
};

}  // namespace blockkv
