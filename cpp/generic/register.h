// Registration of a device-generic kernel (cpp/src/generic): for the op `name` on the non-CPU dispatch keys
// (CUDA, MPS, XPU; registering a key needs no such device at build or load time), and for every backend as the op
// `name_generic` (same schema, defined beside the registration), which is how tests force the generic path on the
// CPU and compare it with the C++ CPU kernel.
#pragma once

#include <torch/library.h>

#define ATTNSCOPE_REGISTER_GENERIC(name, kernel)                                                         \
  TORCH_LIBRARY_IMPL(attnscope, CompositeExplicitAutograd, m) { m.impl(#name "_generic", &kernel); }    \
  TORCH_LIBRARY_IMPL(attnscope, CUDA, m) { m.impl(#name, &kernel); }                                   \
  TORCH_LIBRARY_IMPL(attnscope, MPS, m) { m.impl(#name, &kernel); }                                    \
  TORCH_LIBRARY_IMPL(attnscope, XPU, m) { m.impl(#name, &kernel); }
