// Weighted least squares (optionally ridge-penalised or with exact KernelSHAP constraints) and weighted lasso:
// the linear surrogates of the perturbation methods (LIME, KernelSHAP). Eigen, double precision, no Python.
#pragma once

#include <Eigen/Dense>

#include <optional>

namespace attnscope {

struct WlsOptions {
  double ridge = 0.0;            // λ >= 0 in Σ w_i (y_i - b - x_i·c)² + λ‖c‖²; the intercept is not penalised
  bool fit_intercept = true;     // weighted centring of X and y (ignored when fixed_intercept is set)
  std::optional<double> fixed_intercept;  // b is this value, not fitted (exact KernelSHAP: b = f(baseline))
  std::optional<double> coef_sum;         // Σc = coef_sum exactly (exact KernelSHAP: f(x) - f(baseline))
  double rcond = 1e-10;          // singular values <= rcond * σ_max count as zero; < 0: machine eps * max(n, p)
};

struct LassoOptions {
  double alpha = 1.0;            // (1 / (2 Σw)) Σ w_i (y_i - b - x_i·c)² + alpha ‖c‖₁ (scikit-learn's Lasso)
  bool fit_intercept = true;
  int max_iter = 10000;          // coordinate-descent sweeps over all coefficients
  double tol = 1e-8;             // duality gap <= tol * Σ w_i (y_i - ȳ)² stops (scikit-learn's criterion)
};

// One result for both solvers. Fields a solver does not compute say so (see each function).
struct WlsResult {
  Eigen::VectorXd coef;          // [p]
  double intercept = 0.0;
  double r2 = 0.0;               // weighted R² on the given samples (scikit-learn's score(X, y, sample_weight))
  int rank = -1;                 // numerical rank of the centred, weighted design (after ridge augmentation)
  bool rank_deficient = false;   // rank < free coefficients, with ridge == 0
  double condition = 0.0;        // σ_max / σ_min of that design (inf when σ_min == 0)
  int n_iter = 0;                // coordinate-descent sweeps (0 for the direct solve)
  bool converged = true;         // false when the lasso stopped at max_iter with the duality gap above tolerance
};

// min Σ w_i (y_i - b - x_i·c)² + ridge ‖c‖², subject to the options' intercept and coefficient-sum constraints.
// X [n, p], y [n], w [n] finite and >= 0 with at least one positive weight. Rank-deficient problems return the
// minimum-norm solution (numpy.linalg.lstsq's) with rank_deficient set. Throws std::invalid_argument on bad input.
WlsResult weighted_least_squares(const Eigen::Ref<const Eigen::MatrixXd>& X, const Eigen::Ref<const Eigen::VectorXd>& y,
                                 const Eigen::Ref<const Eigen::VectorXd>& w, const WlsOptions& opt);

// scikit-learn's Lasso(alpha, fit_intercept).fit(X, y, sample_weight=w) by cyclic coordinate descent.
// rank = -1 and condition = NaN: the design's spectrum is not computed. Throws std::invalid_argument on bad input.
WlsResult weighted_lasso(const Eigen::Ref<const Eigen::MatrixXd>& X, const Eigen::Ref<const Eigen::VectorXd>& y,
                         const Eigen::Ref<const Eigen::VectorXd>& w, const LassoOptions& opt);

}  // namespace attnscope
