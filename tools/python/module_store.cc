// blockkv._blockkv._Store: a BlockStore as Python sees it (listing, stats, verify, export to and
// import from numpy arrays or safetensors exchange files, pins, removal).
#include <pybind11/numpy.h>

#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "db/block_exchange.h"
#include "db/codec.h"
#include "db/dtype.h"
#include "tools/python/module.h"

namespace blockkv::python {

StatusOr<BlockId> ResolveBlockRef(BlockStore* store, const std::string& ref) {
  if (auto h = Hash128::FromHex(ref)) return BlockId(*h);
  StatusOr<BlockId> named = store->ResolveName(ref);
  if (named.ok() || !named.status().IsNotFound()) return named;
  return Status::NotFound("no block with id or name '" + ref + "' in " + store->path());
}

py::dict MetaDict(const BlockMeta& m, bool with_tokens) {
  py::dict d;
  d["id"] = m.id.ToHex();
  d["name"] = m.name;
  d["model_fingerprint"] = m.model.ToHex();
  d["tokens"] = m.num_tokens();
  d["layers"] = m.num_layers;
  d["kv_heads"] = m.kv_heads;
  d["head_dim"] = m.head_dim;
  d["dtype"] = DTypeName(m.dtype);
  d["codec"] = CodecName(m.codec);
  d["raw_bytes"] = m.raw_bytes;
  d["stored_bytes"] = m.stored_bytes;
  d["ratio"] = m.stored_bytes ? double(m.raw_bytes) / double(m.stored_bytes) : 0.0;
  d["pinned"] = m.pinned;
  d["created_micros"] = m.created_micros;
  d["last_access_micros"] = m.last_access_micros;
  if (with_tokens) d["token_ids"] = m.tokens;
  return d;
}

py::dict StatsDict(const StoreStats& s) {
  py::dict d;
  d["blocks"] = s.blocks;
  d["pinned_blocks"] = s.pinned_blocks;
  d["named_blocks"] = s.named_blocks;
  d["tokens"] = s.tokens;
  d["raw_bytes"] = s.raw_bytes;
  d["stored_bytes"] = s.stored_bytes;
  d["ratio"] = s.ratio();
  d["byte_budget"] = s.byte_budget;
  d["blob_file_bytes"] = s.total_blob_file_bytes;
  d["live_blob_file_bytes"] = s.live_blob_file_bytes;
  d["sst_file_bytes"] = s.sst_file_bytes;
  d["memtable_bytes"] = s.memtable_bytes;
  return d;
}

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::shared_ptr<StoreHandle> OpenStore(const std::string& path, bool read_only, bool create,
                                       const std::string& codec) {
  StoreOptions o;
  if (read_only) {
    // As the CLI's read-only commands: a secondary instance works beside a live writer.
    o.mode = OpenMode::kSecondary;
    o.create_if_missing = false;
  } else {
    o.create_if_missing = create;
  }
  if (!codec.empty()) {
    const std::optional<Codec> c = ParseCodec(codec);
    if (!c)
      throw StatusError(
          Status::InvalidArgument("codec must be raw or zstd-split, got '" + codec + "'"));
    o.codec = *c;
  }
  auto h = std::make_shared<StoreHandle>();
  h->path = path;
  h->read_only = read_only;
  {
    py::gil_scoped_release release;
    h->store = ValueOrThrow(BlockStore::Open(path, o));
  }
  return h;
}

void CloseStore(StoreHandle& h) {
  py::gil_scoped_release release;
  std::unique_lock lock(h.mu);
  h.store.reset();
}

py::list List(const StoreHandle& h, const std::optional<std::string>& model, bool pinned_only,
              uint64_t limit) {
  ListOptions lo;
  lo.pinned_only = pinned_only;
  if (model) {
    const std::optional<Hash128> fp = Hash128::FromHex(*model);
    if (!fp)
      throw StatusError(
          Status::InvalidArgument("model must be 32 hex digits, got '" + *model + "'"));
    lo.model = ModelFingerprint(*fp);
  }
  std::vector<BlockMeta> metas = WithStore(h, [&](BlockStore* s) {
    std::vector<BlockMeta> out;
    ThrowIfError(s->List(lo, [&](const BlockMeta& m) {
      out.push_back(m);
      return limit == 0 || out.size() < limit;
    }));
    return out;
  });
  py::list l;
  for (const BlockMeta& m : metas) l.append(MetaDict(m, false));
  return l;
}

py::dict Verify(const StoreHandle& h) {
  const VerifyReport r = WithStore(h, [](BlockStore* s) { return ValueOrThrow(s->Verify()); });
  py::list bad;
  for (const auto& [id, why] : r.bad_blocks) {
    py::dict b;
    b["id"] = id.ToHex();
    b["problem"] = why;
    bad.append(b);
  }
  py::dict d;
  d["ok"] = r.ok();
  d["blocks_checked"] = r.blocks_checked;
  d["values_checked"] = r.values_checked;
  d["bytes_checked"] = r.bytes_checked;
  d["bad_blocks"] = bad;
  d["file_problems"] = r.file_problems;
  return d;
}

py::dict Show(const StoreHandle& h, const std::string& ref, bool tokens) {
  const BlockMeta m = WithStore(h, [&](BlockStore* s) {
    return ValueOrThrow(s->GetMeta(ValueOrThrow(ResolveBlockRef(s, ref))));
  });
  return MetaDict(m, tokens);
}

// The block's keys and values as float32 arrays (layers, tokens, kv_heads, head_dim), with its
// metadata.
py::dict Export(const StoreHandle& h, const std::string& ref) {
  const BlockMeta m = WithStore(h, [&](BlockStore* s) {
    return ValueOrThrow(s->GetMeta(ValueOrThrow(ResolveBlockRef(s, ref))));
  });
  const std::vector<py::ssize_t> shape = {m.num_layers, m.num_tokens(), m.kv_heads, m.head_dim};
  py::array_t<float> keys(shape), values(shape);
  float* kp = keys.mutable_data();
  float* vp = values.mutable_data();
  WithStore(h, [&](BlockStore* s) {
    const size_t per_layer = size_t{m.num_tokens()} * m.kv_heads * m.head_dim;
    const uint64_t tb = m.tensor_bytes();
    const bool direct = m.dtype == DType::kF32;  // read straight into the arrays
    std::vector<std::vector<uint8_t>> staged(direct ? 0 : 2 * m.num_layers,
                                             std::vector<uint8_t>(tb));
    std::vector<LayerRequest> reqs(m.num_layers);
    for (uint32_t l = 0; l < m.num_layers; ++l) {
      reqs[l].id = m.id;
      reqs[l].layer = l;
      reqs[l].tensor_bytes = tb;
      reqs[l].k_out = direct ? static_cast<void*>(kp + l * per_layer) : staged[2 * l].data();
      reqs[l].v_out = direct ? static_cast<void*>(vp + l * per_layer) : staged[2 * l + 1].data();
    }
    ThrowIfError(s->GetLayers(reqs));
    if (!direct) {
      for (uint32_t l = 0; l < m.num_layers; ++l) {
        ToFloat(m.dtype, staged[2 * l].data(), kp + l * per_layer, per_layer);
        ToFloat(m.dtype, staged[2 * l + 1].data(), vp + l * per_layer, per_layer);
      }
    }
    return 0;
  });
  py::dict d = MetaDict(m, true);
  d["keys"] = keys;
  d["values"] = values;
  return d;
}

std::string ExportFile(const StoreHandle& h, const std::string& ref, const std::string& path) {
  return WithStore(h, [&](BlockStore* s) {
    const BlockId id = ValueOrThrow(ResolveBlockRef(s, ref));
    ThrowIfError(WriteBlockFile(s, id, path));
    return id.ToHex();
  });
}

// Stores a block from float arrays (layers, tokens, kv_heads, head_dim), kept as `dtype`.
py::dict ImportArrays(const StoreHandle& h, const FloatArray& keys, const FloatArray& values,
                      const std::string& model_fingerprint, const std::vector<int32_t>& tokens,
                      const std::string& name, const std::string& dtype, bool pin) {
  if (keys.ndim() != 4 || values.ndim() != 4)
    throw StatusError(
        Status::InvalidArgument("keys and values must be 4-d arrays (layers, tokens, kv_heads, "
                                "head_dim)"));
  for (int i = 0; i < 4; ++i)
    if (keys.shape(i) != values.shape(i))
      throw StatusError(Status::InvalidArgument("keys and values differ in shape"));
  if (keys.shape(1) != static_cast<py::ssize_t>(tokens.size()))
    throw StatusError(Status::InvalidArgument("the arrays hold " + std::to_string(keys.shape(1)) +
                                              " tokens, tokens " + "lists " +
                                              std::to_string(tokens.size())));
  const std::optional<Hash128> fp = Hash128::FromHex(model_fingerprint);
  if (!fp)
    throw StatusError(Status::InvalidArgument("model_fingerprint must be 32 hex digits, got '" +
                                              model_fingerprint + "'"));
  const std::optional<DType> dt = ParseDType(dtype);
  if (!dt)
    throw StatusError(
        Status::InvalidArgument("dtype must be f32, bf16 or f16, got '" + dtype + "'"));
  BlockToPut put;
  put.model = ModelFingerprint(*fp);
  put.tokens = tokens;
  put.num_layers = static_cast<uint32_t>(keys.shape(0));
  put.kv_heads = static_cast<uint32_t>(keys.shape(2));
  put.head_dim = static_cast<uint32_t>(keys.shape(3));
  put.dtype = *dt;
  put.name = name;
  put.pinned = pin;
  const float* kp = keys.data();
  const float* vp = values.data();
  const size_t per_layer = size_t(keys.shape(1)) * put.kv_heads * put.head_dim;
  const BlockMeta m = WithStore(h, [&](BlockStore* s) {
    std::vector<std::vector<uint8_t>> converted;
    if (put.dtype != DType::kF32) converted.resize(2 * put.num_layers);
    for (uint32_t l = 0; l < put.num_layers; ++l) {
      const float* k = kp + l * per_layer;
      const float* v = vp + l * per_layer;
      if (put.dtype == DType::kF32) {
        put.k.push_back(k);
        put.v.push_back(v);
        continue;
      }
      converted[2 * l].resize(per_layer * DTypeSize(put.dtype));
      converted[2 * l + 1].resize(per_layer * DTypeSize(put.dtype));
      FromFloat(put.dtype, k, converted[2 * l].data(), per_layer);
      FromFloat(put.dtype, v, converted[2 * l + 1].data(), per_layer);
      put.k.push_back(converted[2 * l].data());
      put.v.push_back(converted[2 * l + 1].data());
    }
    const BlockId id = ValueOrThrow(s->Put(put));
    return ValueOrThrow(s->GetMeta(id));
  });
  return MetaDict(m, false);
}

// Stores the block of a safetensors exchange file (db/block_exchange.h), as `blockkv import` does.
py::dict ImportFile(const StoreHandle& h, const std::string& path, const std::string& name,
                    bool pin) {
  const BlockMeta m = WithStore(h, [&](BlockStore* s) {
    BlockFile bf = ValueOrThrow(ReadBlockFile(path));
    if (!name.empty()) bf.put.name = name;
    bf.put.pinned = pin;
    const BlockId id = ValueOrThrow(s->Put(bf.put));
    return ValueOrThrow(s->GetMeta(id));
  });
  return MetaDict(m, false);
}

template <Status (BlockStore::*Op)(const BlockId&)>
void ByRef(const StoreHandle& h, const std::string& ref) {
  WithStore(h, [&](BlockStore* s) {
    ThrowIfError((s->*Op)(ValueOrThrow(ResolveBlockRef(s, ref))));
    return 0;
  });
}

void Refresh(StoreHandle& h) {
  py::gil_scoped_release release;
  std::unique_lock lock(h.mu);  // TryCatchUp must run alone
  if (!h.store) throw StatusError(Status::InvalidArgument("store " + h.path + " is closed"));
  ThrowIfError(h.store->TryCatchUp());
}

}  // namespace

void BindStore(py::module_& m) {
  py::class_<StoreHandle, std::shared_ptr<StoreHandle>>(m, "_Store")
      .def(py::init(&OpenStore), py::arg("path"), py::arg("read_only") = false,
           py::arg("create") = true, py::arg("codec") = "")
      .def_readonly("path", &StoreHandle::path)
      .def_readonly("read_only", &StoreHandle::read_only)
      .def_property_readonly("closed",
                             [](const StoreHandle& h) {
                               std::shared_lock lock(h.mu);
                               return h.store == nullptr;
                             })
      .def("close", &CloseStore)
      .def("ls", &List, py::arg("model") = py::none(), py::arg("pinned_only") = false,
           py::arg("limit") = 0)
      .def("stat",
           [](const StoreHandle& h) {
             return StatsDict(
                 WithStore(h, [](BlockStore* s) { return ValueOrThrow(s->GetStats()); }));
           })
      .def("show", &Show, py::arg("ref"), py::arg("tokens") = false)
      .def("resolve",
           [](const StoreHandle& h, const std::string& ref) {
             return WithStore(
                 h, [&](BlockStore* s) { return ValueOrThrow(ResolveBlockRef(s, ref)).ToHex(); });
           })
      .def("verify", &Verify)
      .def("export", &Export, py::arg("ref"))
      .def("export_file", &ExportFile, py::arg("ref"), py::arg("path"))
      .def("import_arrays", &ImportArrays, py::arg("keys"), py::arg("values"),
           py::arg("model_fingerprint"), py::arg("tokens"), py::arg("name") = "",
           py::arg("dtype") = "f32", py::arg("pin") = false)
      .def("import_file", &ImportFile, py::arg("path"), py::arg("name") = "",
           py::arg("pin") = false)
      .def("rm", &ByRef<&BlockStore::Delete>, py::arg("ref"))
      .def("pin", &ByRef<&BlockStore::Pin>, py::arg("ref"))
      .def("unpin", &ByRef<&BlockStore::Unpin>, py::arg("ref"))
      .def("compact",
           [](const StoreHandle& h) {
             WithStore(h, [](BlockStore* s) {
               ThrowIfError(s->Compact());
               return 0;
             });
           })
      .def("refresh", &Refresh);
}

}  // namespace blockkv::python
