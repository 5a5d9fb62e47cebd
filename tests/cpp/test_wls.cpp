// Weighted least squares and lasso against closed forms: exact fits, weighted means, the ridge normal equations,
// a KKT solve for the coefficient-sum constraint, soft-thresholding on an orthogonal design, and input checks.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>

#include "attnscope/wls.h"

namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

VectorXd positive_weights(int n) { return (VectorXd::Random(n).array() + 1.5).matrix(); }  // in [0.5, 2.5]

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(WeightedLeastSquares, ExactFitRecoversCoefficients) {
  std::srand(1);
  const MatrixXd X = MatrixXd::Random(30, 4);
  const VectorXd c = (VectorXd(4) << 1.0, -2.0, 0.5, 3.0).finished();
  const VectorXd y = (X * c).array() + 1.25;
  const attnscope::WlsResult r = attnscope::weighted_least_squares(X, y, positive_weights(30), {});
  EXPECT_LT((r.coef - c).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_NEAR(r.intercept, 1.25, 1e-12);
  EXPECT_NEAR(r.r2, 1.0, 1e-12);
  EXPECT_EQ(r.rank, 4);
  EXPECT_FALSE(r.rank_deficient);
  EXPECT_GE(r.condition, 1.0);
  EXPECT_TRUE(std::isfinite(r.condition));
}

TEST(WeightedLeastSquares, InterceptOnlyIsWeightedMean) {
  const VectorXd y = (VectorXd(4) << 1.0, 2.0, 4.0, 8.0).finished();
  const VectorXd w = (VectorXd(4) << 1.0, 0.0, 3.0, 0.5).finished();
  const attnscope::WlsResult r = attnscope::weighted_least_squares(MatrixXd(4, 0), y, w, {});
  EXPECT_EQ(r.coef.size(), 0);
  EXPECT_NEAR(r.intercept, (1.0 + 12.0 + 4.0) / 4.5, 1e-15);
  EXPECT_NEAR(r.r2, 0.0, 1e-15);  // the mean predicts nothing beyond itself
}

TEST(WeightedLeastSquares, RidgeMatchesNormalEquationsOnCentredData) {
  std::srand(2);
  const int n = 40, p = 5;
  const MatrixXd X = MatrixXd::Random(n, p);
  const VectorXd y = VectorXd::Random(n);
  const VectorXd w = positive_weights(n);
  const double lambda = 0.7;
  const Eigen::RowVectorXd xm = (w.transpose() * X) / w.sum();
  const double ym = w.dot(y) / w.sum();
  const MatrixXd Xc = X.rowwise() - xm;
  const VectorXd yc = y.array() - ym;
  const MatrixXd lhs = Xc.transpose() * w.asDiagonal() * Xc + lambda * MatrixXd::Identity(p, p);
  const VectorXd expected = lhs.ldlt().solve(Xc.transpose() * w.asDiagonal() * yc);
  attnscope::WlsOptions opt;
  opt.ridge = lambda;
  const attnscope::WlsResult r = attnscope::weighted_least_squares(X, y, w, opt);
  EXPECT_LT((r.coef - expected).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_NEAR(r.intercept, ym - xm.dot(expected), 1e-12);
  EXPECT_EQ(r.rank, p);
}

TEST(WeightedLeastSquares, CoefSumConstraintMatchesKktSolve) {
  std::srand(3);
  const int n = 25, p = 6;
  const MatrixXd X = MatrixXd::Random(n, p);
  const VectorXd y = VectorXd::Random(n);
  const VectorXd w = positive_weights(n);
  const double S = 2.5, b = 0.3;
  // KKT: [XᵀWX 1; 1ᵀ 0] [c; μ] = [XᵀW(y - b); S]
  MatrixXd K = MatrixXd::Zero(p + 1, p + 1);
  K.topLeftCorner(p, p) = X.transpose() * w.asDiagonal() * X;
  K.topRightCorner(p, 1).setOnes();
  K.bottomLeftCorner(1, p).setOnes();
  VectorXd rhs(p + 1);
  rhs << X.transpose() * w.asDiagonal() * (y.array() - b).matrix(), S;
  const VectorXd expected = K.fullPivLu().solve(rhs).head(p);
  attnscope::WlsOptions opt;
  opt.fixed_intercept = b;
  opt.coef_sum = S;
  const attnscope::WlsResult r = attnscope::weighted_least_squares(X, y, w, opt);
  EXPECT_NEAR(r.coef.sum(), S, 1e-12);
  EXPECT_LT((r.coef - expected).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_EQ(r.intercept, b);
  EXPECT_EQ(r.rank, p - 1);
  EXPECT_FALSE(r.rank_deficient);
}

TEST(WeightedLeastSquares, FixedInterceptIsNotFitted) {
  std::srand(4);
  const MatrixXd X = MatrixXd::Random(20, 3);
  const VectorXd c = (VectorXd(3) << 0.5, 1.5, -1.0).finished();
  const VectorXd y = (X * c).array() - 4.0;
  attnscope::WlsOptions opt;
  opt.fixed_intercept = -4.0;
  const attnscope::WlsResult r = attnscope::weighted_least_squares(X, y, positive_weights(20), opt);
  EXPECT_EQ(r.intercept, -4.0);
  EXPECT_LT((r.coef - c).cwiseAbs().maxCoeff(), 1e-12);
  // Without an intercept at all, the same data need one: the fit is worse.
  attnscope::WlsOptions none;
  none.fit_intercept = false;
  EXPECT_LT(attnscope::weighted_least_squares(X, y, positive_weights(20), none).r2, 0.99);
}

TEST(WeightedLeastSquares, DuplicatedColumnGivesMinimumNorm) {
  std::srand(5);
  const VectorXd a = VectorXd::Random(15);
  MatrixXd X(15, 2);
  X << a, a;
  const VectorXd y = 3.0 * a;
  const attnscope::WlsResult r = attnscope::weighted_least_squares(X, y, positive_weights(15), {});
  EXPECT_EQ(r.rank, 1);
  EXPECT_TRUE(r.rank_deficient);
  EXPECT_NEAR(r.coef[0], 1.5, 1e-12);
  EXPECT_NEAR(r.coef[1], 1.5, 1e-12);
  EXPECT_TRUE(std::isinf(r.condition) || r.condition > 1e12);
}

TEST(WeightedLasso, SoftThresholdsOnOrthogonalDesign) {
  // Centred, orthogonal columns with squared norm 4 (w = 1): c_j = S(x_jᵀ y, alpha n) / 4.
  MatrixXd X(4, 2);
  X << 1, 1, -1, 1, 1, -1, -1, -1;
  const VectorXd y = (VectorXd(4) << 3.0, 0.2, 1.0, -0.5).finished();
  const double alpha = 0.3, n = 4;
  attnscope::LassoOptions opt;
  opt.alpha = alpha;
  const attnscope::WlsResult r = attnscope::weighted_lasso(X, y, VectorXd::Ones(4), opt);
  const VectorXd yc = y.array() - y.mean();
  for (int j = 0; j < 2; ++j) {
    const double rho = X.col(j).dot(yc);
    const double expected = std::copysign(std::max(std::abs(rho) - alpha * n, 0.0), rho) / 4.0;
    EXPECT_NEAR(r.coef[j], expected, 1e-12) << "j=" << j;
  }
  EXPECT_NEAR(r.intercept, y.mean(), 1e-12);  // X is centred
  EXPECT_TRUE(r.converged);
  EXPECT_GE(r.n_iter, 1);
  // Large alpha: all coefficients are zero.
  opt.alpha = 100.0;
  EXPECT_EQ(attnscope::weighted_lasso(X, y, VectorXd::Ones(4), opt).coef.cwiseAbs().maxCoeff(), 0.0);
}

TEST(WeightedLeastSquares, RejectsBadInputNamingTheArgument) {
  const MatrixXd X = MatrixXd::Ones(3, 2);
  const VectorXd y = VectorXd::Ones(3), w = VectorXd::Ones(3);
  attnscope::WlsOptions opt;
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(X, VectorXd::Ones(2), w, opt); }).find("y must"),
            std::string::npos);
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(X, y, VectorXd::Ones(4), opt); }).find("w must"),
            std::string::npos);
  const VectorXd negative = (VectorXd(3) << 1.0, -1.0, 1.0).finished();
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(X, y, negative, opt); }).find("w[1] = -1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(X, y, VectorXd::Zero(3), opt); }).find("positive"),
            std::string::npos);
  MatrixXd bad = X;
  bad(2, 1) = std::nan("");
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(bad, y, w, opt); }).find("X[2, 1]"), std::string::npos);
  VectorXd bad_y = y;
  bad_y[0] = INFINITY;
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(X, bad_y, w, opt); }).find("y[0]"), std::string::npos);
  opt.ridge = -1.0;
  EXPECT_NE(error_of([&] { attnscope::weighted_least_squares(X, y, w, opt); }).find("ridge"), std::string::npos);
  attnscope::LassoOptions lopt;
  lopt.alpha = -0.1;
  EXPECT_NE(error_of([&] { attnscope::weighted_lasso(X, y, w, lopt); }).find("alpha"), std::string::npos);
}

}  // namespace
