// The pybind11 half of attnscope._C. Importing the module also registers the TORCH_LIBRARY ops that are
// linked into the same library. Bindings forward to the core and hold no math.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "attnscope/build_info.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "attnscope C++ core (LibTorch + Eigen); the ops live under torch.ops.attnscope";
  m.def("build_info", &attnscope::build_info, "What the extension was built with (torch, compiler, Eigen).");
}
