// ChatTemplate: the public face of the Jinja interpreter (chat_template_*.cc).
#include "attention/model/chat_template.h"

#include "attention/model/chat_template_internal.h"

namespace blockkv {

StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  ASSIGN_OR_RETURN(std::shared_ptr<const jinja::Template> t, jinja::ParseTemplate(source));
  return ChatTemplate(std::move(t));
}

namespace {

template <typename Json>
StatusOr<std::string> RenderJson(const jinja::Template& t, const Json& context,
                                 const RenderLimits& limits) {
  if (!context.is_object())
    return Status::InvalidArgument("chat template: the context must be a JSON object");
  StatusOr<jinja::Value> vars = jinja::FromJson(context);
  if (!vars.ok()) return Status::InvalidArgument("chat template: " + vars.status().message());
  try {
    jinja::Evaluator ev(limits);
    return ev.Render(t, std::move(vars).value());
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("chat template: out of memory while rendering");
  }
}

}  // namespace

StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& context,
                                           const RenderLimits& limits) const {
  return RenderJson(*template_, context, limits);
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context,
                                           const RenderLimits& limits) const {
  return RenderJson(*template_, context, limits);
}

}  // namespace blockkv
