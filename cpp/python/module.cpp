// The pybind11 half of attnscope._C. Importing the module also registers the TORCH_LIBRARY ops that are
// linked into the same library. Bindings forward to the core and hold no math.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "attnscope/build_info.h"
#include "attnscope/wls.h"

namespace py = pybind11;

namespace {

using MatRef = Eigen::Ref<const Eigen::MatrixXd>;
using VecRef = Eigen::Ref<const Eigen::VectorXd>;

void bind_wls(py::module_& m) {
  py::class_<attnscope::WlsResult>(m, "WlsResult", "Result of weighted_least_squares / weighted_lasso.")
      .def_property_readonly("coef", [](const attnscope::WlsResult& r) { return Eigen::VectorXd(r.coef); })
      .def_readonly("intercept", &attnscope::WlsResult::intercept)
      .def_readonly("r2", &attnscope::WlsResult::r2)
      .def_readonly("rank", &attnscope::WlsResult::rank)
      .def_readonly("rank_deficient", &attnscope::WlsResult::rank_deficient)
      .def_readonly("condition", &attnscope::WlsResult::condition)
      .def_readonly("n_iter", &attnscope::WlsResult::n_iter)
      .def_readonly("converged", &attnscope::WlsResult::converged);

  // Arguments are converted (a float64 column-major copy where needed) before the guard releases the GIL;
  // the solve touches only Eigen memory, and the result becomes a Python object after the GIL is back.
  m.def(
      "weighted_least_squares",
      [](const MatRef& X, const VecRef& y, const VecRef& w, double ridge, bool fit_intercept,
         std::optional<double> fixed_intercept, std::optional<double> coef_sum, double rcond) {
        attnscope::WlsOptions opt;
        opt.ridge = ridge;
        opt.fit_intercept = fit_intercept;
        opt.fixed_intercept = fixed_intercept;
        opt.coef_sum = coef_sum;
        opt.rcond = rcond;
        return attnscope::weighted_least_squares(X, y, w, opt);
      },
      py::arg("X"), py::arg("y"), py::arg("w"), py::kw_only(), py::arg("ridge") = 0.0,
      py::arg("fit_intercept") = true, py::arg("fixed_intercept") = py::none(), py::arg("coef_sum") = py::none(),
      py::arg("rcond") = 1e-10, py::call_guard<py::gil_scoped_release>(),
      "Weighted (ridge) least squares, minimum-norm when rank deficient; see attnscope.ops.weighted_least_squares.");
  m.def(
      "weighted_lasso",
      [](const MatRef& X, const VecRef& y, const VecRef& w, double alpha, bool fit_intercept, int max_iter,
         double tol) {
        attnscope::LassoOptions opt;
        opt.alpha = alpha;
        opt.fit_intercept = fit_intercept;
        opt.max_iter = max_iter;
        opt.tol = tol;
        return attnscope::weighted_lasso(X, y, w, opt);
      },
      py::arg("X"), py::arg("y"), py::arg("w"), py::kw_only(), py::arg("alpha"), py::arg("fit_intercept") = true,
      py::arg("max_iter") = 10000, py::arg("tol") = 1e-8, py::call_guard<py::gil_scoped_release>(),
      "Weighted lasso by coordinate descent (scikit-learn's Lasso with sample_weight); see attnscope.ops.weighted_lasso.");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "attnscope C++ core (LibTorch + Eigen); the ops live under torch.ops.attnscope";
  m.def("build_info", &attnscope::build_info, "What the extension was built with (torch, compiler, Eigen).");
  bind_wls(m);
}
