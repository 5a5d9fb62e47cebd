// The Autograd kernel of an op that has no backward.
//
// Without one, PyTorch's fallback returns outputs that claim to require grad while their backward does nothing (or
// only warns). This kernel instead refuses, with an error naming the op and the argument, any input that requires
// grad while grad mode is on; otherwise it runs the op below autograd, so its outputs never require grad.
// Register it per op: TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("op", attnscope::refuse_autograd()); }
#pragma once

#include <torch/library.h>

namespace attnscope {

torch::CppFunction refuse_autograd();

}  // namespace attnscope
