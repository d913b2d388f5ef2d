// serve: blockkv as an OpenAI-compatible HTTP server (tools/server/http_server.h, docs/server.md).
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "attention/engine.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/runtime_util.h"
#include "tools/server/http_server.h"

namespace blockkv::cli {

namespace {

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  const ssize_t n = write(g_signal_pipe[1], &b, 1);  // async-signal-safe
  (void)n;
}

}  // namespace

void RegisterServeCommand(CLI::App& app) {
  struct Opts {
    std::string model, store, device = "cpu", host = "127.0.0.1", api_key, gpu_tier, host_tier, tier_policy = "tinylfu",
                                  kv_dtype, format, codec, name;
    int port = 8000;
    serve::ServerOptions server;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Serve a model and a store over HTTP in the OpenAI style, with one long-lived engine (tiers included):\n"
      "  POST /v1/chat/completions, /v1/completions   OpenAI's bodies plus \"passages\": stored ids or\n"
      "                                               {\"text\", \"title\"} objects, placed as blocks;\n"
      "                                               \"stream\": true answers with server-sent events\n"
      "  POST /v1/passages    {\"passages\": [{\"id\", \"text\"}]}: precompute and store them\n"
      "  GET /health, GET /metrics (Prometheus), GET /v1/models\n"
      "Binds to 127.0.0.1 unless --host says otherwise. With --api-key (or BLOCKKV_API_KEY) every endpoint\n"
      "but /health needs 'Authorization: Bearer KEY'. Stops on SIGINT or SIGTERM.\n"
      "Example: blockkv serve --model M --store S --port 8000 &\n"
      "  curl -s localhost:8000/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Who?\"}],\n"
      "       \"passages\": [\"doc-17\"], \"max_tokens\": 32}'");
  sub->add_option("--model", o->model, "HF model directory")->required();
  sub->add_option("--store", o->store, "Store directory (created if missing)")->required();
  AddDeviceOption(sub, &o->device);
  sub->add_option("--host", o->host, "Address to bind (0.0.0.0 exposes the server to the network)")->capture_default_str();
  sub->add_option("--port", o->port, "Port (0: any free port; the chosen one is printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (default: $BLOCKKV_API_KEY if set)");
  sub->add_option("--max-body", o->server.max_body_bytes, "Largest request body in bytes (413 above)")->capture_default_str();
  sub->add_option("--max-tokens-limit", o->server.limits.max_tokens, "Largest max_tokens a request may ask for")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--default-max-tokens", o->server.limits.default_max_tokens, "max_tokens when a request gives none")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--max-passages", o->server.limits.max_passages, "Passages per request (x16 per /v1/passages call)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--max-concurrent", o->server.max_concurrent, "Requests in progress at once (429 above)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  sub->add_option("--served-model-name", o->name, "The model's name in responses (default: the model directory's name)");
  sub->add_option("--gpu-tier", o->gpu_tier, "On cuda: GPU memory that keeps blocks across requests (e.g. 8G)")
      ->check(SizeValidator());
  sub->add_option("--host-tier", o->host_tier, "Host memory that keeps blocks across requests (e.g. 16G)")
      ->check(SizeValidator());
  sub->add_option("--tier-policy", o->tier_policy, "tinylfu, 2q or lru")
      ->capture_default_str()
      ->check(CLI::IsMember({"tinylfu", "2q", "lru"}));
  sub->add_option("--format", o->format, "Prompt format: chat or paper (default: chat when the model has a template)");
  sub->add_option("--kv-dtype", o->kv_dtype, "Stored KV dtype of new blocks: f32, bf16, f16");
  AddCodecOption(sub, &o->codec);
  sub->callback([o] {
    if (o->api_key.empty()) {
      const char* env = std::getenv("BLOCKKV_API_KEY");
      if (env != nullptr) o->api_key = env;
    }
    // SIGINT and SIGTERM write to a pipe that a thread of ours waits on (a handler, not sigwait: threads that
    // libraries started before main, such as OpenBLAS's, would otherwise take the signal and die of it).
    if (pipe(g_signal_pipe) != 0) Fail("serve: cannot create a pipe");
    struct sigaction sa = {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(o->model, /*required=*/true);
    Backend backend = OpenBackend(o->device, o->model);
    auto store = OpenForWrite(o->store, /*create=*/true, o->codec);
    EngineOptions eo;
    eo.kv_dtype = ParseKvDType(o->kv_dtype, o->device);
    if (!o->host_tier.empty()) eo.host_tier_bytes = *ParseSize(o->host_tier);
    if (!o->gpu_tier.empty()) {
      if (!backend.backend->device_tier()) Fail("--gpu-tier needs --device cuda", 2);
      eo.gpu_tier_bytes = *ParseSize(o->gpu_tier);
    }
    eo.tier_policy = *ParseCachePolicyKind(o->tier_policy);
    Engine engine(backend.backend.get(), store.get(), eo);

    serve::ServerOptions so = o->server;
    so.host = o->host;
    so.port = o->port;
    so.api_key = o->api_key;
    so.model_name = !o->name.empty() ? o->name : std::filesystem::path(o->model).filename().string();
    if (so.model_name.empty()) so.model_name = "blockkv";
    if (!o->format.empty()) {
      auto f = ParsePromptFormatKind(o->format);
      if (!f) Fail("--format must be chat or paper", 2);
      so.prompt.format = *f;
    }
    so.stop_ids = backend.backend->config().eos_token_ids;
    for (int32_t id : tokenizer->config().stop_ids)
      if (std::find(so.stop_ids.begin(), so.stop_ids.end(), id) == so.stop_ids.end()) so.stop_ids.push_back(id);
    serve::HttpServer server(&engine, tokenizer.get(), store.get(), backend.backend->fingerprint(), so);
    const int port = Check(server.Bind());
    std::fprintf(stderr, "blockkv serve: %s on %s, listening on http://%s:%d%s\n", so.model_name.c_str(),
                 backend.backend->name().c_str(), o->host.c_str(), port,
                 so.api_key.empty() ? " (no API key)" : " (API key required)");
    std::thread waiter([&server] {
      unsigned char sig = 0;
      while (read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
      }
      if (sig != 0) std::fprintf(stderr, "blockkv serve: signal %d, stopping\n", sig);
      server.Stop();
    });
    const Status served = server.Serve();
    // Wake the waiting thread if the loop ended on its own (0: no signal).
    const unsigned char zero = 0;
    if (write(g_signal_pipe[1], &zero, 1) != 1) std::fprintf(stderr, "blockkv serve: cannot wake the signal thread\n");
    waiter.join();
    Check(served);
  });
}

}  // namespace blockkv::cli
