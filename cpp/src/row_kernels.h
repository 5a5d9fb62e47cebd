// Internal to the core: the vectorised inner kernels of the attention drivers (logits, softmax, P.V), compiled
// once per CPU capability from cpp/src/isa/row_kernels_isa.cpp (as ATen compiles its own kernels) and picked
// at load time. Every kernel gives each output element one fixed sequence of operations, whichever rows or
// columns share its tile, so a row's values never depend on the query chunk.
#pragma once

#include <cstdint>
#include <string>

namespace attnscope {
namespace detail {

// A tile is kTileRows rows by one panel of kPanelBytes / sizeof(T) columns (two 32-byte vectors, or one 64-byte
// AVX-512 vector).
constexpr int kTileRows = 6;
constexpr int kPanelBytes = 64;
constexpr int kTilePanels = 2;  // panels per tile call
template <typename T>
constexpr int64_t panel_width() {
  return kPanelBytes / static_cast<int64_t>(sizeof(T));
}

template <typename T>
struct RowKernelsOf {
  // c[r, c] = scale * sum_{d < depth} a[r * lda + d] * B[d, c] for r < rows (<= kTileRows) and c < cols
  // (<= kTilePanels panels), B[d, c] = b[(c / panel) * panel_stride + d * panel + c % panel]: up to two consecutive
  // panels, panel_stride elements apart. Summed in increasing d with one multiply-add per term in every build
  // (fused in the AVX2 and AVX-512 builds, which therefore give one result).
  void (*tile)(const T* a, int64_t lda, int64_t rows, const T* b, int64_t panel_stride, int64_t depth, T scale,
               T* c, int64_t ldc, int64_t cols);
  // In place: row[j] = exp(row[j] - m) / (sum_j exp(row[j] - m) + exp(sink - m)), m the maximum over the row and
  // the sink (sink = -inf: none). A row whose maximum is -inf becomes zeros.
  void (*softmax)(T* row, int64_t n, T sink);
};

struct RowKernels {
  RowKernelsOf<float> f32;
  RowKernelsOf<double> f64;
  const char* isa;  // "AVX512", "AVX2" or "DEFAULT"
};

// The kernels for this machine: the widest build (AVX-512, then AVX2+FMA) that the CPU has and ATen's capability
// (ATEN_CPU_CAPABILITY) allows, else the baseline x86-64 build.
const RowKernels& row_kernels();

// One build by name ("AVX512", "AVX2", "DEFAULT"), or nullptr where it is not compiled in or this CPU cannot run
// it (tests).
const RowKernels* row_kernels_build(const std::string& isa);

template <typename T>
const RowKernelsOf<T>& row_kernels_of();
template <>
inline const RowKernelsOf<float>& row_kernels_of<float>() {
  return row_kernels().f32;
}
template <>
inline const RowKernelsOf<double>& row_kernels_of<double>() {
  return row_kernels().f64;
}

}  // namespace detail

// The instruction set the attention kernels run with ("AVX512", "AVX2" or "DEFAULT"), for build_info / show_config.
std::string attention_kernels_isa();

}  // namespace attnscope
