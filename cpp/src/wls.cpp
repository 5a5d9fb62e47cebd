// Weighted least squares and weighted lasso (see attnscope/wls.h).
//
// The direct solver works on the sqrt(w)-scaled, weighted-centred design A and target t and never forms AᵀA
// (that would square the condition number). It reduces A [n, k] to its triangular factor R [k, k] with a blocked
// Householder QR (backward stable, applied to t as Qᵀt), then takes the SVD of the small R (one-sided Jacobi; divide-and-conquer for many columns).
// The singular values of R are those of A, so this is the SVD least-squares solve of LAPACK's gelsd/numpy's lstsq
// at the price of a QR: it gives the numerical rank with a relative cut-off we control, the true condition number
// σ_max/σ_min, and the minimum-norm solution when A is rank deficient. A column-pivoted QR or a complete
// orthogonal decomposition would be slightly cheaper, but their rank decisions rest on the diagonal of R, which can
// miss near-deficiency that the singular values show (Kahan's matrix), and they only estimate the condition.
// Ridge is solved as the augmented least-squares problem [A; sqrt(λ) I] c ≈ [t; 0], again without normal equations.
#include "attnscope/wls.h"

#include <Eigen/QR>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace attnscope {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  throw std::invalid_argument(s.str());
}

// Sizes, finiteness and weights; every message names the argument and what was observed.
void validate(const char* fn, const Eigen::Ref<const MatrixXd>& X, const Eigen::Ref<const VectorXd>& y,
              const Eigen::Ref<const VectorXd>& w) {
  const Index n = X.rows(), p = X.cols();
  if (y.size() != n) fail(fn, ": y must have one value per row of X: X is [", n, ", ", p, "], y has ", y.size());
  if (w.size() != n) fail(fn, ": w must have one weight per row of X: X is [", n, ", ", p, "], w has ", w.size());
  for (Index i = 0; i < n; ++i) {
    if (!std::isfinite(w[i]) || w[i] < 0) fail(fn, ": w must be finite and >= 0, got w[", i, "] = ", w[i]);
  }
  if (!(w.array() > 0).any()) fail(fn, ": w must have at least one positive weight (all ", n, " are 0)");
  if (!X.allFinite()) {
    for (Index j = 0; j < p; ++j) {
      for (Index i = 0; i < n; ++i) {
        if (!std::isfinite(X(i, j))) fail(fn, ": X must be finite, got X[", i, ", ", j, "] = ", X(i, j));
      }
    }
  }
  for (Index i = 0; i < n; ++i) {
    if (!std::isfinite(y[i])) fail(fn, ": y must be finite, got y[", i, "] = ", y[i]);
  }
}

// The scaled problem A c ≈ t with A = sqrt(w) (X - x̄), t = sqrt(w) (y - ȳ); x̄, ȳ are weighted means when the
// intercept is fitted, zero otherwise (ȳ = the fixed intercept when one is given).
struct Scaled {
  MatrixXd A;
  VectorXd t;
  Eigen::RowVectorXd x_mean;
  double y_mean = 0.0;
};

Scaled scale_and_centre(const Eigen::Ref<const MatrixXd>& X, const Eigen::Ref<const VectorXd>& y,
                        const Eigen::Ref<const VectorXd>& w, bool centre, double y_offset) {
  Scaled s;
  const double sw = w.sum();
  if (centre) {
    s.x_mean = (w.transpose() * X) / sw;
    s.y_mean = w.dot(y) / sw;
  } else {
    s.x_mean = Eigen::RowVectorXd::Zero(X.cols());
    s.y_mean = y_offset;
  }
  const VectorXd sqrt_w = w.cwiseSqrt();
  s.A = sqrt_w.asDiagonal() * (X.rowwise() - s.x_mean);
  s.t = sqrt_w.cwiseProduct(y.array().matrix() - VectorXd::Constant(y.size(), s.y_mean));
  return s;
}

struct Lstsq {
  VectorXd x;
  int rank = 0;
  double condition = std::numeric_limits<double>::quiet_NaN();
};

// Minimum-norm solution of min ‖A x - t‖² + ridge ‖x‖² (see the file comment for the method).
Lstsq min_norm_lstsq(MatrixXd A, VectorXd t, double ridge, double rcond, Index n_for_eps) {
  const Index k = A.cols();
  Lstsq out;
  if (k == 0) {
    out.x = VectorXd(0);
    return out;
  }
  if (ridge > 0) {
    MatrixXd aug(A.rows() + k, k);
    aug << A, std::sqrt(ridge) * MatrixXd::Identity(k, k);
    VectorXd taug(t.size() + k);
    taug << t, VectorXd::Zero(k);
    A = std::move(aug);
    t = std::move(taug);
  }
  MatrixXd R;
  VectorXd qt;
  if (A.rows() > k) {
    Eigen::HouseholderQR<MatrixXd> qr(A);
    qt = (qr.householderQ().adjoint() * t).head(k);
    R = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
  } else {  // no more rows than columns: the SVD takes A as it is
    R = std::move(A);
    qt = std::move(t);
  }
  // One-sided Jacobi is the most accurate SVD but O(k³) with a large constant; above a few hundred columns
  // divide-and-conquer (also backward stable, as LAPACK's gelsd) is several times faster.
  constexpr Index kJacobiMaxCols = 128;
  MatrixXd U, V;
  VectorXd s;  // descending, min(rows, k) of them
  if (k <= kJacobiMaxCols) {
    Eigen::JacobiSVD<MatrixXd> svd(R, Eigen::ComputeThinU | Eigen::ComputeThinV);
    U = svd.matrixU(), V = svd.matrixV(), s = svd.singularValues();
  } else {
    Eigen::BDCSVD<MatrixXd> svd(R, Eigen::ComputeThinU | Eigen::ComputeThinV);
    U = svd.matrixU(), V = svd.matrixV(), s = svd.singularValues();
  }
  const double s_max = s.size() > 0 ? s[0] : 0.0;
  const double cut = rcond >= 0 ? rcond * s_max
                                : std::numeric_limits<double>::epsilon() * double(std::max(n_for_eps, k)) * s_max;
  int rank = 0;
  while (rank < s.size() && s[rank] > cut) ++rank;
  const VectorXd proj = (U.leftCols(rank).transpose() * qt).cwiseQuotient(s.head(rank));
  out.x = V.leftCols(rank) * proj;
  out.rank = rank;
  // A k-column matrix has k singular values; fewer rows than columns means zeros among them.
  const double s_min = s.size() == k ? s[k - 1] : 0.0;
  out.condition = s_min > 0 ? s_max / s_min : std::numeric_limits<double>::infinity();
  return out;
}

// scikit-learn's r2_score(y, X c + b, sample_weight=w), including its rules for a zero denominator.
double weighted_r2(const Eigen::Ref<const MatrixXd>& X, const Eigen::Ref<const VectorXd>& y,
                   const Eigen::Ref<const VectorXd>& w, const VectorXd& coef, double intercept) {
  const VectorXd resid = y - (X * coef).array().matrix() - VectorXd::Constant(y.size(), intercept);
  const double num = w.dot(resid.cwiseAbs2());
  const double y_bar = w.dot(y) / w.sum();
  const double den = w.dot((y.array() - y_bar).square().matrix());
  if (num == 0) return 1.0;
  if (den == 0) return 0.0;
  return 1.0 - num / den;
}

}  // namespace

WlsResult weighted_least_squares(const Eigen::Ref<const MatrixXd>& X, const Eigen::Ref<const VectorXd>& y,
                                 const Eigen::Ref<const VectorXd>& w, const WlsOptions& opt) {
  constexpr const char* fn = "weighted_least_squares";
  validate(fn, X, y, w);
  if (!std::isfinite(opt.ridge) || opt.ridge < 0) fail(fn, ": ridge must be finite and >= 0, got ", opt.ridge);
  if (std::isnan(opt.rcond) || std::isinf(opt.rcond)) fail(fn, ": rcond must be finite, got ", opt.rcond);
  if (opt.fixed_intercept && !std::isfinite(*opt.fixed_intercept)) {
    fail(fn, ": fixed_intercept must be finite, got ", *opt.fixed_intercept);
  }
  if (opt.coef_sum && !std::isfinite(*opt.coef_sum)) fail(fn, ": coef_sum must be finite, got ", *opt.coef_sum);
  const Index n = X.rows(), p = X.cols();
  if (opt.coef_sum && p == 0) fail(fn, ": coef_sum needs at least one coefficient, X has 0 columns");

  const bool centre = opt.fit_intercept && !opt.fixed_intercept;
  Scaled s = scale_and_centre(X, y, w, centre, opt.fixed_intercept.value_or(0.0));

  WlsResult res;
  Index free = p;
  if (!opt.coef_sum) {
    Lstsq ls = min_norm_lstsq(std::move(s.A), std::move(s.t), opt.ridge, opt.rcond, n);
    res.coef = std::move(ls.x);
    res.rank = ls.rank;
    res.condition = ls.condition;
  } else {
    // Σc = S: c = (S/p) 1 + N z with N [p, p-1] an orthonormal basis of 1⊥ (the last p-1 columns of the Householder
    // reflector H = I - 2vvᵀ/vᵀv, v = 1/√p + e1, which maps 1/√p to -e1). As (S/p) 1 ⟂ N z, ‖c‖² = ‖c0‖² + ‖z‖²:
    // the minimum-norm and the ridge solutions in z are those in c.
    free = p - 1;
    const double c0 = *opt.coef_sum / double(p);
    s.t -= c0 * s.A.rowwise().sum();
    VectorXd v = VectorXd::Constant(p, 1.0 / std::sqrt(double(p)));
    v[0] += 1.0;
    const double beta = 2.0 / v.squaredNorm();
    const MatrixXd AH = s.A - beta * (s.A * v) * v.transpose();
    Lstsq ls = min_norm_lstsq(AH.rightCols(free), std::move(s.t), opt.ridge, opt.rcond, n);
    VectorXd z0(p);
    z0 << 0.0, ls.x;
    VectorXd coef = z0 - beta * v.dot(z0) * v;
    coef.array() += c0;
    // Rounding leaves Σc off by a few ulps of ‖c‖; spreading the remainder evenly makes it exact to rounding of S.
    coef.array() += (*opt.coef_sum - coef.sum()) / double(p);
    res.coef = std::move(coef);
    res.rank = ls.rank;
    res.condition = ls.condition;
  }
  if (opt.fixed_intercept) {
    res.intercept = *opt.fixed_intercept;
  } else if (centre) {
    res.intercept = s.y_mean - s.x_mean.dot(res.coef);
  } else {
    res.intercept = 0.0;
  }
  res.rank_deficient = opt.ridge == 0 && res.rank < free;
  res.r2 = weighted_r2(X, y, w, res.coef, res.intercept);
  res.n_iter = 0;
  res.converged = true;
  return res;
}

WlsResult weighted_lasso(const Eigen::Ref<const MatrixXd>& X, const Eigen::Ref<const VectorXd>& y,
                         const Eigen::Ref<const VectorXd>& w, const LassoOptions& opt) {
  constexpr const char* fn = "weighted_lasso";
  validate(fn, X, y, w);
  if (!std::isfinite(opt.alpha) || opt.alpha < 0) fail(fn, ": alpha must be finite and >= 0, got ", opt.alpha);
  if (opt.max_iter < 1) fail(fn, ": max_iter must be >= 1, got ", opt.max_iter);
  if (!std::isfinite(opt.tol) || opt.tol < 0) fail(fn, ": tol must be finite and >= 0, got ", opt.tol);
  const Index p = X.cols();

  // scikit-learn rescales the weights to sum to n and minimises (1/2n) Σ w'_i r_i² + alpha ‖c‖₁, which is
  // (1/2Σw) Σ w_i r_i² + alpha ‖c‖₁ for the weights as given. Multiplied by Σw: ½‖t - A c‖² + l1 ‖c‖₁.
  const Scaled s = scale_and_centre(X, y, w, opt.fit_intercept, 0.0);
  const MatrixXd& A = s.A;
  const VectorXd& t = s.t;
  const double l1 = opt.alpha * w.sum();
  const VectorXd col_norm2 = A.colwise().squaredNorm().transpose();
  const double gap_tol = opt.tol * t.squaredNorm();

  VectorXd coef = VectorXd::Zero(p);
  VectorXd r = t;  // residual t - A c
  // scikit-learn's duality gap for the lasso (enet_coordinate_descent with l2_reg = 0).
  auto duality_gap = [&]() {
    const double r_norm2 = r.squaredNorm();
    const double dual_norm = p > 0 ? (A.transpose() * r).cwiseAbs().maxCoeff() : 0.0;
    double scale = 1.0, gap = r_norm2;
    if (dual_norm > l1) {
      scale = l1 / dual_norm;
      gap = 0.5 * r_norm2 * (1.0 + scale * scale);
    }
    return gap + l1 * coef.lpNorm<1>() - scale * r.dot(t);
  };

  WlsResult res;
  res.converged = false;
  for (int it = 0; it < opt.max_iter; ++it) {
    double max_change = 0.0, max_coef = 0.0;
    for (Index j = 0; j < p; ++j) {
      if (col_norm2[j] == 0) continue;  // a constant (or all-zero-weight) column keeps coefficient 0
      const double old = coef[j];
      const double rho = A.col(j).dot(r) + col_norm2[j] * old;
      const double mag = std::max(std::abs(rho) - l1, 0.0);
      const double upd = std::copysign(mag, rho) / col_norm2[j];
      if (upd != old) {
        r.noalias() -= (upd - old) * A.col(j);
        coef[j] = upd;
      }
      max_change = std::max(max_change, std::abs(upd - old));
      max_coef = std::max(max_coef, std::abs(upd));
    }
    res.n_iter = it + 1;
    // Like scikit-learn: the gap is checked when the largest update is small relative to the coefficients.
    if (max_coef == 0 || max_change / max_coef <= opt.tol || it == opt.max_iter - 1) {
      if (duality_gap() <= gap_tol) {
        res.converged = true;
        break;
      }
    }
  }
  res.intercept = opt.fit_intercept ? s.y_mean - s.x_mean.dot(coef) : 0.0;
  res.coef = std::move(coef);
  res.r2 = weighted_r2(X, y, w, res.coef, res.intercept);
  res.rank = -1;
  res.rank_deficient = false;
  res.condition = std::numeric_limits<double>::quiet_NaN();
  return res;
}

}  // namespace attnscope
