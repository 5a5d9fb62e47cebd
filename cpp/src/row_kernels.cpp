// Picks the row kernels' build for this machine once, at first use (see row_kernels.h).
#include "row_kernels.h"

#include <ATen/Version.h>

namespace attnscope {
namespace detail {

namespace DEFAULT {
const RowKernels& row_kernels_DEFAULT();
}
#if defined(ATTNSCOPE_HAVE_AVX2_KERNELS)
namespace AVX2 {
const RowKernels& row_kernels_AVX2();
}
#endif
#if defined(ATTNSCOPE_HAVE_AVX512_KERNELS)
namespace AVX512 {
const RowKernels& row_kernels_AVX512();
}
#endif

const RowKernels* row_kernels_build(const std::string& isa) {
  if (isa == "DEFAULT") return &DEFAULT::row_kernels_DEFAULT();
#if defined(ATTNSCOPE_HAVE_AVX2_KERNELS)
  if (isa == "AVX2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return &AVX2::row_kernels_AVX2();
  }
#endif
#if defined(ATTNSCOPE_HAVE_AVX512_KERNELS)
  // The instructions ATen's AVX512 capability needs (its cpuinfo check: AVX-512 F, BW, VL, DQ).
  if (isa == "AVX512" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
    return &AVX512::row_kernels_AVX512();
  }
#endif
  return nullptr;
}

namespace {

const RowKernels& pick() {
  // ATen's capability is its CPU check lowered by ATEN_CPU_CAPABILITY ("default" forces the baseline everywhere).
  const std::string aten = at::get_cpu_capability();
  const RowKernels* best = aten == "AVX512" ? row_kernels_build("AVX512") : nullptr;
  if (best == nullptr && (aten == "AVX2" || aten == "AVX512")) best = row_kernels_build("AVX2");
  return best ? *best : *row_kernels_build("DEFAULT");
}

}  // namespace

const RowKernels& row_kernels() {
  static const RowKernels& kernels = pick();
  return kernels;
}

}  // namespace detail

std::string attention_kernels_isa() { return detail::row_kernels().isa; }

}  // namespace attnscope
