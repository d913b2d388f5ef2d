// HttpServer: blockkv over HTTP in the OpenAI style (`blockkv serve`; docs/server.md).
//
//   GET  /health                 200 once the model is loaded (no key needed)
//   GET  /metrics                the engine's metrics, Prometheus text
//   GET  /v1/models              the one model served
//   POST /v1/completions         {"prompt", "passages"?, "max_tokens"?, "temperature"?, "stream"?, ...}
//   POST /v1/chat/completions    {"messages", "passages"?, ...}; "stream": true answers with server-sent events
//   POST /v1/passages            {"passages": [{"id", "text", "title"?}]}: precompute and store them
//
// Security: binds to 127.0.0.1 unless told otherwise; with an API key every endpoint but /health needs
// "Authorization: Bearer KEY" (401 otherwise). Bodies, max_tokens, passages per request and requests at once
// are bounded (413, 400, 429), and every error is a JSON body in OpenAI's shape; the server keeps serving.
//
// Ownership and threads: the server borrows the engine, tokenizer and store (they must outlive it). Requests
// are handled on a pool of threads; the engine answers them one at a time (attention/engine.h). Stop() may
// be called from any thread (a signal handler's thread) and makes Serve() return.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "attention/engine.h"
#include "attention/model/tokenizer.h"
#include "attention/text_prompt.h"
#include "db/block_store.h"
#include "tools/server/openai_api.h"

namespace httplib {
class Server;
}

namespace blockkv::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (Bind returns it)
  // Empty: no key needed. Compared in constant time.
  std::string api_key;
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  int max_concurrent = 32;          // requests in progress (answering or waiting for the engine); more get 429
  RequestLimits limits;
  std::string model_name = "blockkv";  // reported by /v1/models and echoed when a request names none
  TextPromptOptions prompt;            // how passages and the question become blocks
  std::vector<int32_t> stop_ids;       // generation stops after any of these (the model's end tokens)
};

class HttpServer {
 public:
  HttpServer(Engine* engine, const Tokenizer* tokenizer, BlockStore* store, const ModelFingerprint& model,
             ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket. Returns the port (the chosen one for port 0). IOError when it cannot bind.
  StatusOr<int> Bind();
  // Serves until Stop(). IOError if the listening loop fails.
  Status Serve();
  void Stop();

 private:
  void Route();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace blockkv::serve
