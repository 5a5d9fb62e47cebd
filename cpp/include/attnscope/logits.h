// Row logits q_i . k_j with a fixed summation order, so a row's values never depend on which other rows
// are computed with it (the query chunk): every chunk size gives bit-identical probabilities.
#pragma once

#include <cstdint>

namespace attnscope {

// out[j] = scale * dot(q, k_j) for j < k_len; k rows are head_dim long, ldk apart.
void row_logits(const float* q, const float* k, int64_t k_len, int64_t head_dim, int64_t ldk, float scale,
                float* out);
void row_logits(const double* q, const double* k, int64_t k_len, int64_t head_dim, int64_t ldk, double scale,
                double* out);

}  // namespace attnscope
