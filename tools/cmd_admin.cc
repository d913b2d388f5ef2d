// Store administration: ls, stat, show, verify, rm, evict, budget, compact, pin, unpin.
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

namespace {

struct Common {
  std::string store;
  bool json = false;
};

CLI::App* AddStoreCommand(CLI::App& app, const char* name, const char* help, Common* c) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("store", c->store, "Path of the store (a directory)")->required();
  sub->add_flag("--json", c->json, "Print machine-readable JSON instead of text");
  return sub;
}

std::string Short(const BlockId& id) { return id.ToHex().substr(0, 16); }

void RegisterLs(CLI::App& app) {
  auto c = std::make_shared<Common>();
  auto model = std::make_shared<std::string>();
  auto pinned = std::make_shared<bool>(false);
  auto limit = std::make_shared<uint64_t>(0);
  CLI::App* sub = AddStoreCommand(app, "ls", "List the blocks in a store", c.get());
  sub->add_option("--model", *model, "Only blocks of this model fingerprint (32 hex digits)");
  sub->add_flag("--pinned", *pinned, "Only pinned blocks");
  sub->add_option("--limit", *limit, "Show at most N blocks (0 = all)");
  sub->callback([=] {
    ListOptions lo;
    lo.pinned_only = *pinned;
    if (!model->empty()) {
      auto h = Hash128::FromHex(*model);
      if (!h) Fail("--model must be 32 hex digits, got '" + *model + "'");
      lo.model = ModelFingerprint(*h);
    }
    auto store = OpenForRead(c->store);
    nlohmann::json arr = nlohmann::json::array();
    uint64_t n = 0;
    if (!c->json)
      std::printf("%-16s  %-24s %7s %6s %5s %11s %6s %3s  %s\n", "ID", "NAME", "TOKENS", "LAYERS",
                  "DTYPE", "STORED", "RATIO", "PIN", "LAST ACCESS (UTC)");
    Check(store->List(lo, [&](const BlockMeta& m) {
      if (c->json) {
        arr.push_back(MetaToJson(m, false));
      } else {
        std::string name = m.name.size() > 24 ? m.name.substr(0, 21) + "..." : m.name;
        std::printf("%-16s  %-24s %7u %6u %5s %11s %5.2fx %3s  %s\n", Short(m.id).c_str(),
                    name.c_str(), m.num_tokens(), m.num_layers, DTypeName(m.dtype),
                    FormatBytes(m.stored_bytes).c_str(),
                    m.stored_bytes ? double(m.raw_bytes) / double(m.stored_bytes) : 0.0,
                    m.pinned ? "yes" : "", FormatTime(m.last_access_micros).c_str());
      }
      return *limit == 0 || ++n < *limit;
    }));
    if (c->json) PrintJson(arr);
  });
}

void RegisterStat(CLI::App& app) {
  auto c = std::make_shared<Common>();
  CLI::App* sub = AddStoreCommand(app, "stat", "Show a store's totals and disk usage", c.get());
  sub->callback([=] {
    auto store = OpenForRead(c->store);
    StoreStats s = Check(store->GetStats());
    if (c->json) {
      nlohmann::json j = StatsToJson(s);
      j["store"] = c->store;
      PrintJson(j);
      return;
    }
    std::printf("store          %s\n", c->store.c_str());
    std::printf("blocks         %llu (%llu pinned, %llu named)\n",
                static_cast<unsigned long long>(s.blocks),
                static_cast<unsigned long long>(s.pinned_blocks),
                static_cast<unsigned long long>(s.named_blocks));
    std::printf("tokens         %llu\n", static_cast<unsigned long long>(s.tokens));
    std::printf("raw bytes      %s\n", FormatBytes(s.raw_bytes).c_str());
    std::printf("stored bytes   %s (ratio %.3fx)\n", FormatBytes(s.stored_bytes).c_str(), s.ratio());
    std::printf("byte budget    %s\n", s.byte_budget ? FormatBytes(s.byte_budget).c_str() : "none");
    std::printf("blob files     %s (%s live)\n", FormatBytes(s.total_blob_file_bytes).c_str(),
                FormatBytes(s.live_blob_file_bytes).c_str());
    std::printf("sst files      %s\n", FormatBytes(s.sst_file_bytes).c_str());
  });
}

void RegisterShow(CLI::App& app) {
  auto c = std::make_shared<Common>();
  auto ref = std::make_shared<std::string>();
  auto tokens = std::make_shared<bool>(false);
  CLI::App* sub = AddStoreCommand(app, "show", "Show one block's metadata", c.get());
  sub->add_option("block", *ref, "Block id (32 hex digits or a unique prefix) or name")->required();
  sub->add_flag("--tokens", *tokens, "Include the token ids");
  sub->callback([=] {
    auto store = OpenForRead(c->store);
    BlockMeta m = Check(store->GetMeta(ResolveBlock(store.get(), *ref)));
    nlohmann::json j = MetaToJson(m, *tokens);
    if (c->json) {
      PrintJson(j);
      return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string v = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      std::printf("%-18s %s\n", it.key().c_str(), v.c_str());
    }
  });
}

void RegisterVerify(CLI::App& app) {
  auto c = std::make_shared<Common>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* sub = AddStoreCommand(
      app, "verify",
      "Decode and checksum every stored value and check RocksDB's file checksums.\n"
      "Exits 0 if the store is intact, 3 listing the damaged blocks otherwise.",
      c.get());
  sub->add_flag("-q,--quiet", *quiet, "No progress on stderr");
  sub->callback([=] {
    auto store = OpenForRead(c->store);
    const bool progress = !*quiet && !c->json && isatty(2);
    VerifyReport r = Check(store->Verify([&](uint64_t done, uint64_t total) {
      if (progress && (done % 16 == 0 || done == total))
        std::fprintf(stderr, "\rverified %llu/%llu blocks", static_cast<unsigned long long>(done),
                     static_cast<unsigned long long>(total));
    }));
    if (progress) std::fprintf(stderr, "\n");
    if (c->json) {
      nlohmann::json bad = nlohmann::json::array();
      for (auto& [id, why] : r.bad_blocks) bad.push_back({{"id", id.ToHex()}, {"problem", why}});
      PrintJson({{"ok", r.ok()},
                 {"blocks_checked", r.blocks_checked},
                 {"values_checked", r.values_checked},
                 {"bytes_checked", r.bytes_checked},
                 {"bad_blocks", bad},
                 {"file_problems", r.file_problems}});
    } else {
      for (auto& [id, why] : r.bad_blocks) std::printf("BAD block %s: %s\n", id.ToHex().c_str(), why.c_str());
      for (auto& p : r.file_problems) std::printf("BAD %s\n", p.c_str());
      std::printf("%s: %llu blocks, %llu values, %s checked; %zu damaged blocks, %zu file problems\n",
                  r.ok() ? "OK" : "DAMAGED", static_cast<unsigned long long>(r.blocks_checked),
                  static_cast<unsigned long long>(r.values_checked),
                  FormatBytes(r.bytes_checked).c_str(), r.bad_blocks.size(), r.file_problems.size());
    }
    if (!r.ok()) throw Failure{kExitDamaged, ""};
  });
}

void RegisterRm(CLI::App& app) {
  auto c = std::make_shared<Common>();
  auto refs = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddStoreCommand(app, "rm", "Delete blocks (each atomically)", c.get());
  sub->add_option("blocks", *refs, "Block ids or names")->required();
  sub->callback([=] {
    auto store = OpenForWrite(c->store);
    nlohmann::json removed = nlohmann::json::array();
    for (const auto& ref : *refs) {
      BlockId id = ResolveBlock(store.get(), ref);
      Check(store->Delete(id));
      removed.push_back(id.ToHex());
      if (!c->json) std::printf("removed %s\n", id.ToHex().c_str());
    }
    if (c->json) PrintJson({{"removed", removed}});
  });
}

nlohmann::json EvictJson(const EvictResult& r, const StoreStats& s) {
  return {{"blocks_evicted", r.blocks_evicted}, {"bytes_freed", r.bytes_freed}, {"stats", StatsToJson(s)}};
}

void RegisterEvict(CLI::App& app) {
  auto c = std::make_shared<Common>();
  auto to = std::make_shared<std::string>();
  auto no_compact = std::make_shared<bool>(false);
  CLI::App* sub = AddStoreCommand(
      app, "evict", "Evict least-recently-used unpinned blocks until the stored bytes fit SIZE", c.get());
  sub->add_option("--to", *to, "Target size of stored block data, e.g. 10G")->required()->check(SizeValidator());
  sub->add_flag("--no-compact", *no_compact, "Skip the compaction that returns the space to the disk");
  sub->callback([=] {
    auto store = OpenForWrite(c->store);
    EvictResult r = Check(store->EvictTo(*ParseSize(*to)));
    if (!*no_compact && r.blocks_evicted > 0) Check(store->Compact());
    StoreStats s = Check(store->GetStats());
    if (c->json) {
      PrintJson(EvictJson(r, s));
    } else {
      std::printf("evicted %llu blocks (%s); store now holds %s in %llu blocks\n",
                  static_cast<unsigned long long>(r.blocks_evicted), FormatBytes(r.bytes_freed).c_str(),
                  FormatBytes(s.stored_bytes).c_str(), static_cast<unsigned long long>(s.blocks));
      if (s.stored_bytes > *ParseSize(*to))
        std::printf("note: pinned blocks alone exceed the target\n");
    }
  });
}

void RegisterBudget(CLI::App& app) {
  auto c = std::make_shared<Common>();
  auto size = std::make_shared<std::string>();
  CLI::App* sub = AddStoreCommand(
      app, "budget",
      "Show or set the store's byte budget (stored block data). Writes beyond it evict\n"
      "least-recently-used unpinned blocks. 'none' removes the budget.",
      c.get());
  sub->add_option("size", *size, "New budget, e.g. 50G, or 'none'");
  sub->callback([=] {
    if (size->empty()) {
      auto store = OpenForRead(c->store);
      StoreStats s = Check(store->GetStats());
      if (c->json) PrintJson({{"byte_budget", s.byte_budget}, {"stored_bytes", s.stored_bytes}});
      else std::printf("budget %s, stored %s\n", s.byte_budget ? FormatBytes(s.byte_budget).c_str() : "none",
                       FormatBytes(s.stored_bytes).c_str());
      return;
    }
    uint64_t bytes = 0;
    if (*size != "none") {
      auto b = ParseSize(*size);
      if (!b || *b == 0) Fail("budget must be a size like 50G, or 'none'");
      bytes = *b;
    }
    auto store = OpenForWrite(c->store);
    EvictResult r = Check(store->SetBudget(bytes));
    if (r.blocks_evicted > 0) Check(store->Compact());
    StoreStats s = Check(store->GetStats());
    if (c->json) PrintJson(EvictJson(r, s));
    else std::printf("budget set to %s; evicted %llu blocks\n", bytes ? FormatBytes(bytes).c_str() : "none",
                     static_cast<unsigned long long>(r.blocks_evicted));
  });
}

void RegisterCompact(CLI::App& app) {
  auto c = std::make_shared<Common>();
  CLI::App* sub = AddStoreCommand(
      app, "compact", "Compact the store and collect blob garbage so deleted blocks' space returns", c.get());
  sub->callback([=] {
    auto store = OpenForWrite(c->store);
    StoreStats before = Check(store->GetStats());
    Check(store->Compact());
    StoreStats after = Check(store->GetStats());
    if (c->json) {
      PrintJson({{"blob_file_bytes_before", before.total_blob_file_bytes},
                 {"blob_file_bytes_after", after.total_blob_file_bytes},
                 {"sst_file_bytes_after", after.sst_file_bytes}});
    } else {
      std::printf("compacted: blob files %s -> %s, sst files %s\n",
                  FormatBytes(before.total_blob_file_bytes).c_str(),
                  FormatBytes(after.total_blob_file_bytes).c_str(), FormatBytes(after.sst_file_bytes).c_str());
    }
  });
}

void RegisterPin(CLI::App& app, bool pin) {
  auto c = std::make_shared<Common>();
  auto refs = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddStoreCommand(app, pin ? "pin" : "unpin",
                                  pin ? "Pin blocks: eviction never removes them" : "Unpin blocks", c.get());
  sub->add_option("blocks", *refs, "Block ids or names")->required();
  sub->callback([=] {
    auto store = OpenForWrite(c->store);
    nlohmann::json done = nlohmann::json::array();
    for (const auto& ref : *refs) {
      BlockId id = ResolveBlock(store.get(), ref);
      Check(pin ? store->Pin(id) : store->Unpin(id));
      done.push_back(id.ToHex());
      if (!c->json) std::printf("%s %s\n", pin ? "pinned" : "unpinned", id.ToHex().c_str());
    }
    if (c->json) PrintJson({{pin ? "pinned" : "unpinned", done}});
  });
}

}  // namespace

void RegisterAdminCommands(CLI::App& app) {
  RegisterLs(app);
  RegisterStat(app);
  RegisterShow(app);
  RegisterVerify(app);
  RegisterRm(app);
  RegisterEvict(app);
  RegisterBudget(app);
  RegisterCompact(app);
  RegisterPin(app, true);
  RegisterPin(app, false);
}

}  // namespace blockkv::cli
