#include "attention/model/prompt_format.h"

#include "attention/model/tokenizer.h"

namespace blockkv {

const char* const kPaperSystemPrompt =
    "You are an intelligent AI assistant. Please answer questions based on the user's instructions. Below are "
    "some reference documents that may help you in answering the user's question.";

const char* const kDefaultPassageTemplate = "- Title: {title}\n{text}\n";

namespace {

// Stands for the user message while the chat template renders. Private-use characters at both ends: real
// text does not hold this, and templates that trim the message (Python's strip() also removes \x1c-\x1f)
// leave it whole.
constexpr std::string_view kContentMark = "\uE000blockkv-user-message\uE001";

}  // namespace

std::optional<PromptFormatKind> ParsePromptFormatKind(std::string_view name) {
  if (name == "chat") return PromptFormatKind::kChat;
  if (name == "paper") return PromptFormatKind::kPaper;
  return std::nullopt;
}

std::string FormatPassage(const std::string& tmpl_in, const std::string& id, const std::string& title,
                          const std::string& text) {
  std::string tmpl = tmpl_in;
  if (title.empty() && tmpl == kDefaultPassageTemplate) tmpl = "{text}\n";
  std::string out;
  out.reserve(tmpl.size() + text.size() + title.size());
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl.compare(i, 2, "{{") == 0 || tmpl.compare(i, 2, "}}") == 0) {
      out.push_back(tmpl[i]);
      ++i;
    } else if (tmpl.compare(i, 7, "{title}") == 0) {
      out += title;
      i += 6;
    } else if (tmpl.compare(i, 6, "{text}") == 0) {
      out += text;
      i += 5;
    } else if (tmpl.compare(i, 4, "{id}") == 0) {
      out += id;
      i += 3;
    } else {
      out.push_back(tmpl[i]);
    }
  }
  return out;
}

StatusOr<PromptFormat> PromptFormat::Make(PromptFormatKind kind, const Tokenizer& tokenizer) {
  PromptFormat f;
  f.kind_ = kind;
  f.variables_ = tokenizer.config().template_variables;
  if (kind == PromptFormatKind::kChat) {
    const std::string& source = tokenizer.config().chat_template;
    if (source.empty())
      return Status::InvalidArgument("the model has no chat template (tokenizer_config.json); use --format paper");
    ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(source));
    f.chat_ = std::make_shared<const ChatTemplate>(std::move(t));
  }
  return f;
}

StatusOr<PromptSegments> PromptFormat::Render(const std::string& system) const {
  PromptSegments s;
  if (kind_ == PromptFormatKind::kPaper) {
    s.preamble = "<|user|>\n" + (system.empty() ? std::string(kPaperSystemPrompt) : system) + "\n\n";
    s.final_suffix = "\n<|assistant|>\n";
    return s;
  }
  nlohmann::json messages = nlohmann::json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", std::string(kContentMark)}});
  nlohmann::json context = variables_;
  context["messages"] = messages;
  context["add_generation_prompt"] = true;
  context["tools"] = nullptr;  // as transformers passes them when there are none
  context["documents"] = nullptr;
  ASSIGN_OR_RETURN(std::string text, chat_->Render(context));
  const size_t at = text.find(kContentMark);
  if (at == std::string::npos || text.find(kContentMark, at + 1) != std::string::npos)
    return Status::InvalidArgument("the chat template does not write the user's message exactly once");
  s.preamble = text.substr(0, at);
  s.final_suffix = text.substr(at + kContentMark.size());
  return s;
}

}  // namespace blockkv
