// The OpenAI-style request and response bodies of `blockkv serve` (tools/server/http_server.h): parsing a
// /v1/completions or /v1/chat/completions body into a CompletionRequest, and formatting results and stream
// chunks. Pure functions of their arguments (no I/O), so they are tested without a socket.
//
// blockkv's one addition to the OpenAI format is `passages`: stored passage ids or {"text", "title", "id"}
// objects, placed as blocks before the question by the model's prompt format (attention/text_prompt.h).
//
// Errors: InvalidArgument naming the field (the server answers 400 with it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/engine.h"
#include "attention/text_prompt.h"
#include "db/status.h"

namespace blockkv::serve {

// Bounds on what one request may ask for (`blockkv serve --help` shows the defaults).
struct RequestLimits {
  int max_tokens = 2048;        // the largest max_tokens accepted
  int default_max_tokens = 128; // when the request gives none
  int max_passages = 64;        // passages per request (and per /v1/passages call: max_passages * 16)
  int max_stop = 4;             // stop strings, as OpenAI
};

struct CompletionRequest {
  bool chat = false;
  std::string model;  // echoed back
  TextPrompt prompt;  // question, system, passages
  int max_tokens = 0;
  SamplingOptions sampling;  // temperature 1, top_p 1 as OpenAI's defaults
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

StatusOr<CompletionRequest> ParseCompletionRequest(const nlohmann::json& body, bool chat, const RequestLimits& limits);

// The passages of a POST /v1/passages body: [{"id", "text", "title"?}, ...].
StatusOr<std::vector<PassageRef>> ParsePassagesRequest(const nlohmann::json& body, const RequestLimits& limits);

// Holds back generated text that could be the start of a stop string, and finds stop strings in it.
// Emitted text always ends on a UTF-8 character boundary.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // Adds `piece`; returns the text now safe to emit. stopped() turns true once a stop string appeared (the
  // text before it is emitted, the stop string and everything after it are not).
  std::string Push(const std::string& piece);
  // The rest at the end of generation (empty once stopped).
  std::string Finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string pending_;
  bool stopped_ = false;
};

struct CompletionOutput {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  const EngineResult* result = nullptr;
  std::vector<std::string> block_names;  // per block, "" when none
};

// The whole response body of a non-streamed request; `blockkv` carries each block's id, name and tier and
// the timings.
nlohmann::json CompletionResponse(const CompletionRequest& req, const CompletionOutput& out);
// One SSE event's JSON for a streamed request: a text delta, or (finish_reason set) the last chunk.
nlohmann::json CompletionChunk(const CompletionRequest& req, const std::string& id, int64_t created,
                               const std::string& delta, const std::string& finish_reason, bool first);
// The "blockkv" extension object of a response: blocks and timing.
nlohmann::json BlockkvExtension(const EngineResult& r, const std::vector<std::string>& names);
// {"error": {"message", "type", "code"}} as OpenAI sends it.
nlohmann::json ErrorBody(const std::string& message, const std::string& type, int status);

}  // namespace blockkv::serve
