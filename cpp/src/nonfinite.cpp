#include "nonfinite.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace attnscope {
namespace detail {
namespace {

// An IEEE format by its storage: the exponent bits and the pattern of -inf.
template <typename Bits, Bits kExponent, Bits kNegInf>
struct Format {
  // Whether any of n values from p (read as bits) is NaN or infinite (-inf allowed when allow_neg_inf). The loop
  // has no early exit and no float compare, so the compiler vectorises it.
  static bool any_bad(const void* p, int64_t n, bool allow_neg_inf) {
    return allow_neg_inf ? scan<true>(static_cast<const unsigned char*>(p), n)
                         : scan<false>(static_cast<const unsigned char*>(p), n);
  }

  template <bool kAllowNegInf>
  static bool scan(const unsigned char* bytes, int64_t n) {
    unsigned bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      Bits u;
      std::memcpy(&u, bytes + i * static_cast<int64_t>(sizeof(Bits)), sizeof(Bits));
      const bool special = (u & kExponent) == kExponent;  // NaN or an infinity
      bad |= static_cast<unsigned>(kAllowNegInf ? special && u != kNegInf : special);
    }
    return bad != 0;
  }
};

using F64 = Format<uint64_t, 0x7ff0000000000000ull, 0xfff0000000000000ull>;
using F32 = Format<uint32_t, 0x7f800000u, 0xff800000u>;
using F16 = Format<uint16_t, 0x7c00u, 0xfc00u>;
using BF16 = Format<uint16_t, 0x7f80u, 0xff80u>;

bool (*scanner(at::ScalarType t))(const void*, int64_t, bool) {
  switch (t) {
    case at::kDouble: return &F64::any_bad;
    case at::kFloat: return &F32::any_bad;
    case at::kHalf: return &F16::any_bad;
    case at::kBFloat16: return &BF16::any_bad;
    default: return nullptr;
  }
}

}  // namespace

at::Tensor nonfinite_mask(const at::Tensor& t, bool allow_neg_inf) {
  return allow_neg_inf ? at::logical_or(at::isnan(t), at::isposinf(t)) : at::logical_not(at::isfinite(t));
}

bool has_nonfinite(const at::Tensor& t, bool allow_neg_inf) {
  auto scan = t.device().is_cpu() ? scanner(t.scalar_type()) : nullptr;
  if (scan == nullptr) {
    return nonfinite_mask(t, allow_neg_inf).any().item<bool>();
  }
  std::atomic<bool> found{false};
  const auto* base = static_cast<const unsigned char*>(t.const_data_ptr());
  const int64_t item = static_cast<int64_t>(t.element_size());
  if (t.is_non_overlapping_and_dense() && std::all_of(t.strides().begin(), t.strides().end(),
                                                      [](int64_t s) { return s >= 0; })) {
    // The values fill numel consecutive slots from the data pointer (a transposed or permuted view included).
    at::parallel_for(0, t.numel(), 65536, [&](int64_t begin, int64_t end) {
      if (scan(base + begin * item, end - begin, allow_neg_inf)) found.store(true, std::memory_order_relaxed);
    });
    return found.load();
  }
  // Otherwise rows of the last dimension; a tensor whose last dimension is strided is copied first.
  const at::Tensor c = (t.dim() == 0 || t.stride(-1) == 1) ? t : t.contiguous();
  const at::Tensor rows = c.dim() == 0 ? c.reshape({1, 1}) : c.dim() == 1 ? c.unsqueeze(0) : c;
  const auto* rows_base = static_cast<const unsigned char*>(rows.const_data_ptr());
  const int64_t width = rows.size(-1), n_rows = rows.numel() / std::max<int64_t>(width, 1), dims = rows.dim();
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(width, 1));  // ~64k values per task
  at::parallel_for(0, n_rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end && !found.load(std::memory_order_relaxed); ++r) {
      int64_t offset = 0, rest = r;  // row r's offset from its index over the leading dimensions
      for (int64_t d = dims - 2; d >= 0; --d) {
        offset += (rest % rows.size(d)) * rows.stride(d);
        rest /= rows.size(d);
      }
      if (scan(rows_base + offset * item, width, allow_neg_inf)) found.store(true, std::memory_order_relaxed);
    }
  });
  return found.load();
}

}  // namespace detail
}  // namespace attnscope
