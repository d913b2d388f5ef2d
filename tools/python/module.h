// The pybind11 extension `blockkv._blockkv`: pieces shared by its files (module.cc: errors,
// versions, make_model; module_engine.cc: the engine; module_store.cc: the store).
//
// The extension is a translation layer only: Python objects in, library calls, Python objects out.
// The Python package (tools/python/blockkv/__init__.py) wraps these classes in documented ones.
//
// Errors: a non-OK Status becomes a StatusError, which the module's exception translator raises as
// the blockkv exception class registered for its code (blockkv.NotFoundError, ...; blockkv.Error
// otherwise), carrying the Status message. The GIL is released around every call into blockkv that
// can take time.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "db/block_store.h"
#include "db/status.h"

namespace blockkv::python {

namespace py = pybind11;

// A non-OK Status on its way to Python.
class StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status s) : std::runtime_error(s.message()), status_(std::move(s)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}
template <typename T>
T ValueOrThrow(StatusOr<T> v) {
  if (!v.ok()) throw StatusError(v.status());
  return std::move(v).value();
}

// A store shared by the Python Store object and any Engine opened over it. Calls take `mu` shared;
// TryCatchUp (secondary mode), which must run alone, takes it exclusively. Closing drops the
// pointer: calls in flight keep the store alive until they finish.
struct StoreHandle {
  std::shared_ptr<BlockStore> store;
  mutable std::shared_mutex mu;
  std::string path;
  bool read_only = false;
};

// Runs f(BlockStore*) with the GIL released and the handle's lock held shared; returns what f
// returns (C++ values: no Python object may be touched inside). Throws InvalidArgument (ValueError)
// once the store was closed.
template <typename F>
auto WithStore(const StoreHandle& h, F&& f) {
  py::gil_scoped_release release;
  std::shared_lock lock(h.mu);
  if (!h.store) throw StatusError(Status::InvalidArgument("store " + h.path + " is closed"));
  return f(h.store.get());
}

// A block given as a full id (32 hex digits) or a name. NotFound names `ref`.
StatusOr<BlockId> ResolveBlockRef(BlockStore* store, const std::string& ref);

// The Python value of a JSON value (dicts, lists, str, int, float, bool, None).
py::object JsonToPython(const nlohmann::json& j);

// Python values from a BlockMeta (the keys of `blockkv ls --json`; times as Unix microseconds).
py::dict MetaDict(const BlockMeta& m, bool with_tokens);
// Python values from StoreStats (the keys of `blockkv stat --json`).
py::dict StatsDict(const StoreStats& s);

void BindEngine(py::module_& m);
void BindStore(py::module_& m);

}  // namespace blockkv::python
