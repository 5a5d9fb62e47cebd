// Each dot product accumulates in one 32-byte vector of partial sums (lane u holds d = u mod lanes, in
// increasing d), then adds the lanes in a fixed tree order. With -ffp-contract=off and without -ffast-math,
// every (query, key) pair gets the same sequence of IEEE operations whether its key is taken in a block of four
// or alone, and whichever rows share its chunk. target_clones picks an AVX2 build at load time where present.
#include "attnscope/logits.h"

#include <cstring>
#include <type_traits>

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

// Sums of 8 accumulators of 8 lanes each, in one vector (lane u = sum of acc[u]): three levels of pairwise adds.
// Which keys form a block depends only on the key range, never on the query chunk, so results stay chunk-free.
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

inline v8f pair_sums(v8f a, v8f b) {
  const v8i even = {0, 2, 4, 6, 8, 10, 12, 14};
  const v8i odd = {1, 3, 5, 7, 9, 11, 13, 15};
  return __builtin_shuffle(a, b, even) + __builtin_shuffle(a, b, odd);
}

inline v8f reduce8(const v8f* acc) {
  // Level 1 gives [a01 a23 a45 a67 b01 b23 b45 b67] (a01 = a0 + a1), level 2 [a0123 a4567 b0123 b4567 c.. d..],
  // level 3 the eight sums in order a..h.
  const v8f s01 = pair_sums(acc[0], acc[1]), s23 = pair_sums(acc[2], acc[3]);
  const v8f s45 = pair_sums(acc[4], acc[5]), s67 = pair_sums(acc[6], acc[7]);
  const v8f t0 = pair_sums(s01, s23), t1 = pair_sums(s45, s67);
  return pair_sums(t0, t1);
}

template <typename T>
__attribute__((always_inline)) inline void row_logits_impl(const T* q, const T* k, int64_t k_len, int64_t head_dim,
                                                           int64_t ldk, T scale, T* out) {
  using V = typename Vec<T>::type;
  constexpr int L = Vec<T>::lanes;
  const int64_t body = head_dim - head_dim % L;
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (body == head_dim) {  // eight keys at a time, reduced together
      for (; j + 8 <= k_len; j += 8) {
        v8f acc[8] = {};
        for (int64_t d = 0; d < body; d += L) {
          const v8f qv = load(q + d);
          for (int r = 0; r < 8; ++r) acc[r] += qv * load(k + (j + r) * ldk + d);
        }
        const v8f sums = reduce8(acc) * scale;
        std::memcpy(out + j, &sums, sizeof(sums));
      }
    }
  }
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
