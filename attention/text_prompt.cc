#include "attention/text_prompt.h"

namespace blockkv {

StatusOr<std::vector<int32_t>> PassageTokens(const Tokenizer& tokenizer, const std::string& passage_template,
                                             const PassageRef& p) {
  const std::string text = FormatPassage(passage_template, p.id, p.title, p.text);
  auto ids = tokenizer.Encode(text, /*add_special_tokens=*/false);
  if (!ids.ok()) return ids.status().WithContext(p.id.empty() ? "passage" : "passage " + p.id);
  return ids;
}

StatusOr<EngineRequest> BuildTextRequest(const TextPrompt& prompt, const Tokenizer& tokenizer, BlockStore* store,
                                         const ModelFingerprint& model, const TextPromptOptions& options) {
  if (prompt.question.empty()) return Status::InvalidArgument("the prompt has no question");
  PromptFormatKind kind = PromptFormatKind::kPaper;
  if (prompt.format) {
    kind = *prompt.format;
  } else if (options.format) {
    kind = *options.format;
  } else if (!tokenizer.config().chat_template.empty()) {
    kind = PromptFormatKind::kChat;
  }
  ASSIGN_OR_RETURN(PromptFormat format, PromptFormat::Make(kind, tokenizer));
  ASSIGN_OR_RETURN(PromptSegments seg, format.Render(prompt.system));

  EngineRequest req;
  if (!seg.preamble.empty()) {
    PromptBlock b;
    ASSIGN_OR_RETURN(b.tokens, tokenizer.Encode(seg.preamble, false));
    if (!b.tokens.empty()) req.blocks.push_back(std::move(b));
  }
  for (const PassageRef& p : prompt.passages) {
    PromptBlock b;
    b.name = p.id;
    if (p.by_id()) {
      if (p.id.empty()) return Status::InvalidArgument("a passage with neither an id nor a text");
      if (store == nullptr) return Status::InvalidArgument("passage " + p.id + " is named by id, but there is no store");
      auto id = store->ResolveName(p.id);
      if (!id.ok()) {
        if (id.status().IsNotFound())
          return Status::NotFound("passage " + p.id + " is not in the store (precompute it, or give its text)");
        return id.status().WithContext("passage " + p.id);
      }
      auto meta = store->GetMeta(*id);
      if (!meta.ok()) {
        if (meta.status().IsNotFound())
          return Status::NotFound("passage " + p.id + " is not in the store (its block was evicted)");
        return meta.status().WithContext("passage " + p.id);
      }
      if (!(meta->model == model))
        return Status::NotFound("passage " + p.id + " is stored for another model, not this one");
      b.tokens = std::move(meta->tokens);
    } else {
      ASSIGN_OR_RETURN(b.tokens, PassageTokens(tokenizer, options.passage_template, p));
      if (b.tokens.empty()) return Status::InvalidArgument("passage " + p.id + " has no tokens");
    }
    req.blocks.push_back(std::move(b));
  }
  auto final_ids = tokenizer.Encode(seg.final_prefix + prompt.question + seg.final_suffix, false);
  if (!final_ids.ok()) return final_ids.status().WithContext("question");
  req.final_tokens = std::move(final_ids).value();
  return req;
}

StatusOr<EngineRequest> BuildTextBlocksRequest(const TextBlocksPrompt& prompt, const Tokenizer& tokenizer) {
  if (prompt.blocks.empty()) return Status::InvalidArgument("the prompt has no blocks");
  EngineRequest req;
  for (size_t i = 0; i < prompt.blocks.size(); ++i) {
    auto ids = tokenizer.Encode(prompt.blocks[i], false);
    if (!ids.ok()) return ids.status().WithContext("blocks[" + std::to_string(i) + "]");
    if (ids->empty()) return Status::InvalidArgument("blocks[" + std::to_string(i) + "] has no tokens");
    if (i + 1 == prompt.blocks.size()) {
      req.final_tokens = std::move(ids).value();
    } else {
      PromptBlock b;
      b.tokens = std::move(ids).value();
      req.blocks.push_back(std::move(b));
    }
  }
  return req;
}

}  // namespace blockkv
