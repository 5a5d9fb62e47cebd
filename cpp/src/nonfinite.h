// Internal to the core: whether a tensor holds NaN or infinity, for the door checks (checks.cpp).
#pragma once

#include <ATen/ATen.h>

namespace attnscope {
namespace detail {

// True when a floating tensor holds NaN or +-inf (NaN or +inf only with allow_neg_inf). CPU tensors are read once,
// by their bit patterns, with no temporary tensor (the door checks run on every call of an op, and five ATen passes
// over q and k cost as much as the attention itself at short lengths); other devices use ATen's isfinite.
bool has_nonfinite(const at::Tensor& t, bool allow_neg_inf);

// The same test element by element, as a bool tensor (ATen ops, any device): where the error path looks.
at::Tensor nonfinite_mask(const at::Tensor& t, bool allow_neg_inf);

}  // namespace detail
}  // namespace attnscope
