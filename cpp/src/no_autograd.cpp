// See no_autograd.h.
#include "attnscope/no_autograd.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>

namespace attnscope {
namespace {

void refuse_autograd_kernel(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  if (c10::GradMode::is_enabled()) {
    const auto& arguments = op.schema().arguments();
    const size_t n = arguments.size(), first = stack->size() - n;
    for (size_t i = 0; i < n; ++i) {
      const c10::IValue& v = (*stack)[first + i];
      TORCH_CHECK(!(v.isTensor() && v.toTensor().requires_grad()), op.schema().name(), " is not differentiable, but ",
                  arguments[i].name(), " requires grad: pass detached inputs (x.detach()) or call it under "
                  "torch.no_grad()");
    }
  }
  op.redispatchBoxed(keys & c10::after_autograd_keyset, stack);
}

}  // namespace

torch::CppFunction refuse_autograd() { return torch::CppFunction::makeFromBoxedFunction<&refuse_autograd_kernel>(); }

}  // namespace attnscope
