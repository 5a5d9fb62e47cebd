// Each dot product accumulates in one 32-byte vector of partial sums (lane u holds d = u mod lanes, in
// increasing d), then adds the lanes in a fixed tree order. With -ffp-contract=off and without -ffast-math,
// every (query, key) pair gets the same sequence of IEEE operations whether its key is taken in a block of four
// or alone, and whichever rows share its chunk. target_clones picks an AVX2 build at load time where present.
#include "attnscope/logits.h"

#include <cstring>

namespace attnscope {
namespace {

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(32)));
  static constexpr int lanes = 8;
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(32)));
  static constexpr int lanes = 4;
};

template <typename T>
inline typename Vec<T>::type load(const T* p) {
  typename Vec<T>::type v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

template <typename T>
inline T finish(typename Vec<T>::type acc, const T* q, const T* k, int64_t d0, int64_t head_dim) {
  T lane[Vec<T>::lanes];
  std::memcpy(lane, &acc, sizeof(acc));
  T sum;
  if constexpr (Vec<T>::lanes == 8) {
    sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  } else {
    sum = (lane[0] + lane[1]) + (lane[2] + lane[3]);
  }
  for (int64_t d = d0; d < head_dim; ++d) sum += q[d] * k[d];
  return sum;
}

template <typename T>
__attribute__((always_inline)) inline void row_logits_impl(const T* q, const T* k, int64_t k_len, int64_t head_dim,
                                                           int64_t ldk, T scale, T* out) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  const int64_t body = head_dim - head_dim % L;
  int64_t j = 0;
  for (; j + 4 <= k_len; j += 4) {
    const T* k0 = k + j * ldk;
    const T* k1 = k0 + ldk;
    const T* k2 = k1 + ldk;
    const T* k3 = k2 + ldk;
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t d = 0; d < body; d += L) {
      const V qv = load(q + d);
      a0 += qv * load(k0 + d);
      a1 += qv * load(k1 + d);
      a2 += qv * load(k2 + d);
      a3 += qv * load(k3 + d);
    }
    out[j] = finish<T>(a0, q, k0, body, head_dim) * scale;
    out[j + 1] = finish<T>(a1, q, k1, body, head_dim) * scale;
    out[j + 2] = finish<T>(a2, q, k2, body, head_dim) * scale;
    out[j + 3] = finish<T>(a3, q, k3, body, head_dim) * scale;
  }
  for (; j < k_len; ++j) {
    const T* k0 = k + j * ldk;
    V a0 = {};
    for (int64_t d = 0; d < body; d += L) a0 += load(q + d) * load(k0 + d);
    out[j] = finish<T>(a0, q, k0, body, head_dim) * scale;
  }
}

}  // namespace

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ATTNSCOPE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ATTNSCOPE_CLONES
#endif

ATTNSCOPE_CLONES void row_logits(const float* q, const float* k, int64_t k_len, int64_t head_dim, int64_t ldk,
                                 float scale, float* out) {
  row_logits_impl(q, k, k_len, head_dim, ldk, scale, out);
}

ATTNSCOPE_CLONES void row_logits(const double* q, const double* k, int64_t k_len, int64_t head_dim, int64_t ldk,
                                 double scale, double* out) {
  row_logits_impl(q, k, k_len, head_dim, ldk, scale, out);
}

}  // namespace attnscope
