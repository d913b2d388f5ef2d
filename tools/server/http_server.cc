#include "tools/server/http_server.h"

#include <httplib.h>

#include <chrono>
#include <mutex>

#include "db/version.h"

namespace blockkv::serve {

namespace {

using nlohmann::json;

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Equal strings, in time that depends only on their lengths.
bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  const char* type = status == 401 ? "authentication_error"
                     : status == 429 ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  SendJson(res, status, ErrorBody(message, type, status));
}

// The HTTP status for a Status from building or answering a request.
int HttpStatus(const Status& s) {
  if (s.IsNotFound()) return 404;
  if (s.IsInvalidArgument() || s.IsNotSupported()) return 400;
  return 500;
}

std::string RandomId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = counter.fetch_add(1) ^ (static_cast<uint64_t>(UnixSeconds()) << 20);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s-%016llx", prefix, static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

struct HttpServer::Impl {
  Engine* engine;
  const Tokenizer* tokenizer;
  BlockStore* store;
  ModelFingerprint model;
  ServerOptions options;
  httplib::Server http;
  std::atomic<int> in_flight{0};

  // One request in progress, counted against max_concurrent until it is dropped (the end of a handler, or of
  // a stream's content provider).
  struct Slot {
    Impl* impl;
    explicit Slot(Impl* i) : impl(i) {}
    ~Slot() { impl->in_flight.fetch_sub(1); }
  };
  std::shared_ptr<Slot> TakeSlot() {
    if (in_flight.fetch_add(1) >= options.max_concurrent) {
      in_flight.fetch_sub(1);
      return nullptr;
    }
    return std::make_shared<Slot>(this);
  }

  // Takes a slot and parses the body as JSON; false (the error answered: 429, 400) if either fails.
  bool Admit(const httplib::Request& hreq, httplib::Response& res, std::shared_ptr<Slot>* slot, json* body) {
    *slot = TakeSlot();
    if (*slot == nullptr) {
      SendError(res, 429, "too many requests at once (at most " + std::to_string(options.max_concurrent) + ")");
      return false;
    }
    *body = json::parse(hreq.body, nullptr, /*allow_exceptions=*/false);
    if (body->is_discarded()) {
      SendError(res, 400, "the request body is not valid JSON");
      return false;
    }
    return true;
  }
  void Completion(const httplib::Request& hreq, httplib::Response& res, bool chat);
  void Passages(const httplib::Request& hreq, httplib::Response& res);
};

HttpServer::HttpServer(Engine* engine, const Tokenizer* tokenizer, BlockStore* store, const ModelFingerprint& model,
                       ServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->engine = engine;
  impl_->tokenizer = tokenizer;
  impl_->store = store;
  impl_->model = model;
  impl_->options = std::move(options);
  Route();
}

HttpServer::~HttpServer() = default;

StatusOr<int> HttpServer::Bind() {
  const ServerOptions& o = impl_->options;
  if (o.port == 0) {
    const int port = impl_->http.bind_to_any_port(o.host);
    if (port <= 0) return Status::IOError("cannot bind to " + o.host);
    return port;
  }
  if (!impl_->http.bind_to_port(o.host, o.port))
    return Status::IOError("cannot bind to " + o.host + ":" + std::to_string(o.port) + " (in use, or not allowed)");
  return o.port;
}

Status HttpServer::Serve() {
  if (!impl_->http.listen_after_bind()) return Status::IOError("the server's listening loop failed");
  return Status::OK();
}

void HttpServer::Stop() { impl_->http.stop(); }

void HttpServer::Route() {
  Impl& s = *impl_;
  httplib::Server& h = s.http;
  const int threads = s.options.max_concurrent + 4;  // room to answer 429s while every slot is busy
  h.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  h.set_payload_max_length(s.options.max_body_bytes);
  h.set_read_timeout(30, 0);
  h.set_write_timeout(30, 0);
  // Errors httplib raises itself (413 for a body over the limit, 404 for an unknown path) get a JSON body.
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string what = res.status == 413   ? "request body too large"
                       : res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                           : "HTTP error " + std::to_string(res.status);
    SendError(res, res.status, what);
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what += std::string(": ") + e.what();
    } catch (...) {
    }
    SendError(res, 500, what);
  });
  // The key, before any route (except /health, which load balancers probe without one).
  h.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (s.options.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.compare(0, prefix.size(), prefix) != 0) {
      SendError(res, 401, "missing API key: send 'Authorization: Bearer KEY'");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!ConstantTimeEqual(auth.substr(prefix.size()), s.options.api_key)) {
      SendError(res, 401, "wrong API key");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}, {"version", Version()}, {"model", s.options.model_name}});
  });
  h.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(s.engine->metrics().ToPrometheus(), "text/plain; version=0.0.4");
  });
  h.Get("/v1/models", [&s](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200,
             {{"object", "list"},
              {"data", json::array({{{"id", s.options.model_name}, {"object", "model"}, {"owned_by", "blockkv"}}})}});
  });
  h.Post("/v1/completions",
         [&s](const httplib::Request& req, httplib::Response& res) { s.Completion(req, res, /*chat=*/false); });
  h.Post("/v1/chat/completions",
         [&s](const httplib::Request& req, httplib::Response& res) { s.Completion(req, res, /*chat=*/true); });
  h.Post("/v1/passages", [&s](const httplib::Request& req, httplib::Response& res) { s.Passages(req, res); });
}

void HttpServer::Impl::Completion(const httplib::Request& hreq, httplib::Response& res, bool chat) {
  std::shared_ptr<Slot> slot;
  json body;
  if (!Admit(hreq, res, &slot, &body)) return;
  StatusOr<CompletionRequest> parsed = ParseCompletionRequest(body, chat, options.limits);
  if (!parsed.ok()) return SendError(res, 400, parsed.status().message());
  auto creq = std::make_shared<CompletionRequest>(std::move(parsed).value());
  if (creq->model.empty()) creq->model = options.model_name;
  StatusOr<EngineRequest> built = BuildTextRequest(creq->prompt, *tokenizer, store, model, options.prompt);
  if (!built.ok()) return SendError(res, HttpStatus(built.status()), built.status().message());
  auto ereq = std::make_shared<EngineRequest>(std::move(built).value());
  ereq->decode.max_new_tokens = creq->max_tokens;
  ereq->decode.sampling = creq->sampling;
  ereq->decode.stop_token_ids = options.stop_ids;
  std::vector<std::string> names;
  for (const PromptBlock& b : ereq->blocks) names.push_back(b.name);
  const std::string id = RandomId(chat ? "chatcmpl" : "cmpl");
  const int64_t created = UnixSeconds();

  // Runs the request; `emit` receives the answer's text as it comes (held back where a stop string may start).
  // Returns the result, the whole text and the finish reason.
  auto run = [this, creq, ereq](const std::function<bool(const std::string&)>& emit, std::string* text,
                                std::string* finish) -> StatusOr<EngineResult> {
    TextStream stream(tokenizer, /*skip_special_tokens=*/true);
    StopMatcher matcher(creq->stop);
    bool gone = false;
    Status decode_error;
    EngineRequest req = *ereq;
    req.decode.on_token = [&](int32_t tok) {
      std::string piece;
      Status st = stream.Push(tok, &piece);
      if (!st.ok() && decode_error.ok()) decode_error = st;
      const std::string out = matcher.Push(piece);
      *text += out;
      if (!out.empty() && !emit(out)) gone = true;
    };
    req.decode.stop_requested = [&] { return matcher.stopped() || gone; };
    StatusOr<EngineResult> r = engine->Run(req);
    if (!r.ok()) return r;
    RETURN_IF_ERROR(decode_error);
    if (!matcher.stopped()) {
      std::string rest;
      RETURN_IF_ERROR(stream.Finish(&rest));
      std::string out = matcher.Push(rest);
      out += matcher.Finish();
      *text += out;
      if (!out.empty()) emit(out);
    }
    const bool stop_token = !r->tokens.empty() && std::find(req.decode.stop_token_ids.begin(),
                                                            req.decode.stop_token_ids.end(),
                                                            r->tokens.back()) != req.decode.stop_token_ids.end();
    *finish = matcher.stopped() || stop_token || static_cast<int>(r->tokens.size()) < creq->max_tokens ? "stop"
                                                                                                       : "length";
    return r;
  };

  if (!creq->stream) {
    std::string text, finish;
    StatusOr<EngineResult> r = run([](const std::string&) { return true; }, &text, &finish);
    if (!r.ok()) return SendError(res, HttpStatus(r.status()), r.status().message());
    CompletionOutput out{id, created, text, finish, &r.value(), names};
    return SendJson(res, 200, CompletionResponse(*creq, out));
  }
  // Server-sent events: a chunk per piece of text, a last chunk with the finish reason, (usage,) [DONE].
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [creq, run, id, created, names, slot](size_t, httplib::DataSink& sink) {
        bool first = true;
        auto event = [&](const json& j) {
          const std::string line = "data: " + j.dump() + "\n\n";
          return sink.write(line.data(), line.size());
        };
        std::string text, finish;
        StatusOr<EngineResult> r = run(
            [&](const std::string& delta) {
              const bool ok = event(CompletionChunk(*creq, id, created, delta, "", first));
              first = false;
              return ok;
            },
            &text, &finish);
        if (!r.ok()) {
          event(ErrorBody(r.status().message(), "server_error", HttpStatus(r.status())));
        } else {
          event(CompletionChunk(*creq, id, created, "", finish, first));
          if (creq->include_usage) {
            const EngineTiming& t = r->timing;
            json usage = CompletionChunk(*creq, id, created, "", finish, false);
            usage["choices"] = json::array();
            usage["usage"] = {{"prompt_tokens", t.prompt_tokens},
                              {"completion_tokens", t.generated_tokens},
                              {"total_tokens", t.prompt_tokens + t.generated_tokens}};
            usage["blockkv"] = BlockkvExtension(*r, names);
            event(usage);
          }
        }
        const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      });
}

void HttpServer::Impl::Passages(const httplib::Request& hreq, httplib::Response& res) {
  std::shared_ptr<Slot> slot;
  json body;
  if (!Admit(hreq, res, &slot, &body)) return;
  StatusOr<std::vector<PassageRef>> passages = ParsePassagesRequest(body, options.limits);
  if (!passages.ok()) return SendError(res, 400, passages.status().message());
  // Tokenize all first, so a bad passage stores nothing.
  std::vector<std::vector<int32_t>> tokens;
  for (size_t i = 0; i < passages->size(); ++i) {
    StatusOr<std::vector<int32_t>> ids = PassageTokens(*tokenizer, options.prompt.passage_template, (*passages)[i]);
    if (!ids.ok() || ids->empty())
      return SendError(res, 400, "passages[" + std::to_string(i) + "]: " +
                                     (ids.ok() ? std::string("no tokens") : ids.status().message()));
    tokens.push_back(std::move(ids).value());
  }
  const auto t0 = std::chrono::steady_clock::now();
  int encoded = 0;
  json blocks = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    bool present = false;
    StatusOr<BlockId> id = engine->Precompute(tokens[i], (*passages)[i].id, &present);
    if (!id.ok()) return SendError(res, HttpStatus(id.status()), (*passages)[i].id + ": " + id.status().message());
    encoded += present ? 0 : 1;
    blocks.push_back({{"id", (*passages)[i].id}, {"block", id->ToHex()}, {"tokens", tokens[i].size()},
                      {"stored", present ? "already" : "now"}});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SendJson(res, 200,
           {{"passages", tokens.size()}, {"encoded", encoded}, {"already_stored", static_cast<int>(tokens.size()) - encoded},
            {"seconds", seconds}, {"blocks", blocks}});
}

}  // namespace blockkv::serve
