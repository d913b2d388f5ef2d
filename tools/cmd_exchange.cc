// import / export: one block as a safetensors file (db/block_exchange.h).
#include <cstdio>

#include "db/block_exchange.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace blockkv::cli {

void RegisterExchangeCommands(CLI::App& app) {
  {
    struct Opts {
      std::string store, file, name;
      bool json = false, pin = false, create = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* sub = app.add_subcommand(
        "import",
        "Store one block from a safetensors file: tensors k.{layer} and v.{layer} of shape\n"
        "[tokens, kv_heads, head_dim] (BF16, F16 or F32) and __metadata__ with model_fingerprint\n"
        "(32 hex digits) and tokens (a JSON list of ints).");
    sub->add_option("store", o->store, "Path of the store")->required();
    sub->add_option("file", o->file, "The .safetensors file")->required();
    sub->add_option("--name", o->name, "Name (passage id) for the block; overrides the file's 'name'");
    sub->add_flag("--pin", o->pin, "Pin the block");
    sub->add_flag("--create", o->create, "Create the store if it does not exist");
    sub->add_flag("--json", o->json, "Print JSON");
    sub->callback([o] {
      BlockFile bf = Check(ReadBlockFile(o->file));
      if (!o->name.empty()) bf.put.name = o->name;
      bf.put.pinned = o->pin;
      auto store = OpenForWrite(o->store, o->create);
      BlockId id = Check(store->Put(bf.put));
      BlockMeta m = Check(store->GetMeta(id));
      if (o->json) PrintJson(MetaToJson(m, false));
      else std::printf("imported %s (%u tokens, %u layers, %s -> %s)\n", id.ToHex().c_str(), m.num_tokens(),
                       m.num_layers, FormatBytes(m.raw_bytes).c_str(), FormatBytes(m.stored_bytes).c_str());
    });
  }
  {
    struct Opts {
      std::string store, ref, file;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* sub = app.add_subcommand(
        "export", "Write one block to a safetensors file (the import format); bit-exact");
    sub->add_option("store", o->store, "Path of the store")->required();
    sub->add_option("block", o->ref, "Block id (or unique prefix) or name")->required();
    sub->add_option("file", o->file, "Output .safetensors file")->required();
    sub->add_flag("--json", o->json, "Print JSON");
    sub->callback([o] {
      auto store = OpenForRead(o->store);
      BlockId id = ResolveBlock(store.get(), o->ref);
      Check(WriteBlockFile(store.get(), id, o->file));
      if (o->json) PrintJson({{"id", id.ToHex()}, {"file", o->file}});
      else std::printf("exported %s to %s\n", id.ToHex().c_str(), o->file.c_str());
    });
  }
}

}  // namespace blockkv::cli
