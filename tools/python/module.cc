// The extension module `blockkv._blockkv`: the error translator, the version, make_model; the
// engine and the store are bound in module_engine.cc and module_store.cc.
#include "tools/python/module.h"

#include <optional>
#include <string>

#include "attention/synthetic_model.h"
#include "db/dtype.h"
#include "db/version.h"

namespace blockkv::python {

py::object JsonToPython(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return py::float_(j.get<double>());
    case nlohmann::json::value_t::string:
      return py::str(j.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      py::list l;
      for (const nlohmann::json& v : j) l.append(JsonToPython(v));
      return l;
    }
    case nlohmann::json::value_t::object: {
      py::dict d;
      for (auto it = j.begin(); it != j.end(); ++it)
        d[py::str(it.key())] = JsonToPython(it.value());
      return d;
    }
    case nlohmann::json::value_t::binary:
      break;
  }
  return py::bytes(std::string(j.get_binary().begin(), j.get_binary().end()));
}

namespace {

// Code name ("NotFound", ...) -> Python exception class, registered by the package at import. A
// strong reference kept for the life of the process (never released: the translator may run until
// finalization).
PyObject* g_error_classes = nullptr;

void RaiseStatus(const Status& s) {
  const char* code = CodeName(s.code());
  PyObject* cls =
      g_error_classes != nullptr ? PyDict_GetItemString(g_error_classes, code) : nullptr;
  if (cls == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, s.ToString().c_str());
    return;
  }
  PyObject* inst = PyObject_CallFunction(cls, "ss", s.message().c_str(), code);
  if (inst == nullptr) return;  // constructing it raised: that error stands
  PyErr_SetObject(cls, inst);
  Py_DECREF(inst);
}

void RegisterErrors(py::dict classes) {
  Py_XDECREF(g_error_classes);
  g_error_classes = classes.ptr();
  Py_INCREF(g_error_classes);
}

std::string MakeModel(const std::string& dir, const std::string& preset, uint64_t seed,
                      const std::string& arch, const std::string& dtype, std::optional<int> layers,
                      std::optional<int> heads, std::optional<int> kv_heads,
                      std::optional<int> head_dim) {
  SyntheticModelSpec spec = ValueOrThrow(SyntheticPreset(preset, arch));
  spec.seed = seed;
  const std::optional<DType> dt = ParseDType(dtype);
  if (!dt)
    throw StatusError(
        Status::InvalidArgument("dtype must be bf16, f16 or f32, got '" + dtype + "'"));
  spec.dtype = *dt;
  const auto positive = [](std::optional<int> v, const char* what) {
    if (v && *v <= 0)
      throw StatusError(Status::InvalidArgument(std::string(what) + " must be positive"));
  };
  positive(layers, "layers");
  positive(heads, "heads");
  positive(kv_heads, "kv_heads");
  positive(head_dim, "head_dim");
  if (layers) spec.num_layers = *layers;
  if (heads) spec.num_heads = *heads;
  if (kv_heads) spec.num_kv_heads = *kv_heads;
  if (head_dim) spec.head_dim = *head_dim;
  // As `blockkv make-model`: overriding the heads or their width sets the hidden size to match.
  if (heads || head_dim) spec.hidden_size = spec.num_heads * spec.head_dim;
  if (spec.num_heads % spec.num_kv_heads != 0)
    throw StatusError(Status::InvalidArgument("kv_heads must divide heads"));
  py::gil_scoped_release release;
  ThrowIfError(WriteSyntheticModel(spec, dir));
  return dir;
}

}  // namespace

}  // namespace blockkv::python

PYBIND11_MODULE(_blockkv, m) {
  namespace py = pybind11;
  using namespace blockkv::python;
  m.doc() = "blockkv's native layer; use the `blockkv` package, which documents and wraps it.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      RaiseStatus(e.status());
    }
  });
  m.def("_register_errors", &RegisterErrors, py::arg("classes"),
        "Sets the exception class raised for each Status code name (the package does this at "
        "import).");
  m.def("version", [] { return std::string(blockkv::Version()); });
#if BLOCKKV_HAVE_CUDA
  m.attr("have_cuda") = true;
#else
  m.attr("have_cuda") = false;
#endif
  m.def("make_model", &MakeModel, py::arg("dir"), py::arg("preset") = "tiny", py::arg("seed") = 1,
        py::arg("arch") = "", py::arg("dtype") = "bf16", py::arg("layers") = py::none(),
        py::arg("heads") = py::none(), py::arg("kv_heads") = py::none(),
        py::arg("head_dim") = py::none());
  m.def("preset_names", [] { return blockkv::SyntheticPresetNames(); });
  m.def("arch_names", [] { return blockkv::SyntheticArchNames(); });

  BindEngine(m);
  BindStore(m);
}
