// quadrature_rule: schema (a fragment of the attnscope library) and kernel. It takes no tensor, so it is
// registered for every backend at once (CompositeExplicitAutograd).
// Core: cpp/src/quadrature.cpp (attnscope/quadrature.h). Wrapper: python/attnscope/ops/quadrature.py.
#include <torch/library.h>

#include "attnscope/quadrature.h"
#include "attnscope/checks.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor> quadrature_rule_op(c10::string_view method, int64_t n) {
  check_quadrature_rule(std::string(method), n);
  auto r = quadrature_rule(std::string(method), n);
  return {r.first, r.second};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) { m.def("quadrature_rule(str method, int n) -> (Tensor, Tensor)"); }

TORCH_LIBRARY_IMPL(attnscope, CompositeExplicitAutograd, m) { m.impl("quadrature_rule", &quadrature_rule_op); }

}  // namespace attnscope
