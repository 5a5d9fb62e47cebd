#include "attnscope/maxflow.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

namespace attnscope {

namespace {

std::atomic<uint64_t> next_graph_id{1};

// Residuals at or below this fraction of the largest capacity count as zero: Dinic stays exact on the
// bottleneck arc (it is set to exactly 0), and the crumbs that subtraction leaves elsewhere cannot start new
// phases that move nothing.
constexpr double kRelativeEps = 1e-14;

}  // namespace

// ------------------------------------------------------------------------------------------------------
// FlowGraph

FlowGraph::FlowGraph(int32_t num_nodes) : num_nodes_(num_nodes) {
  TORCH_CHECK_VALUE(num_nodes >= 0, "a flow graph needs num_nodes >= 0, got ", num_nodes);
}

void FlowGraph::add_edge(int32_t u, int32_t v, double capacity) {
  TORCH_CHECK(!finalized_, "add_edge after finalize(): a finalized FlowGraph is read-only");
  TORCH_CHECK_VALUE(u >= 0 && u < num_nodes_ && v >= 0 && v < num_nodes_, "edge (", u, ", ", v,
                    ") has a node outside 0..", num_nodes_ - 1);
  TORCH_CHECK_VALUE(std::isfinite(capacity) && capacity >= 0.0, "edge (", u, ", ", v,
                    ") needs a finite capacity >= 0, got ", capacity);
  pending_from_.push_back(u);
  pending_to_.push_back(v);
  pending_cap_.push_back(capacity);
}

void FlowGraph::finalize() {
  TORCH_CHECK(!finalized_, "finalize() called twice");
  const int64_t m = static_cast<int64_t>(pending_from_.size());
  // Counting sort of the 2m arcs by tail node; arc order within a node follows insertion order.
  first_.assign(static_cast<size_t>(num_nodes_) + 1, 0);
  for (int64_t e = 0; e < m; ++e) {
    ++first_[pending_from_[e] + 1];
    ++first_[pending_to_[e] + 1];
  }
  for (int32_t u = 0; u < num_nodes_; ++u) first_[u + 1] += first_[u];
  std::vector<int64_t> fill(first_.begin(), first_.end() - 1);
  head_.resize(2 * m);
  rev_.resize(2 * m);
  cap_.resize(2 * m);
  for (int64_t e = 0; e < m; ++e) {
    const int32_t u = pending_from_[e], v = pending_to_[e];
    const int64_t a = fill[u]++, b = fill[v]++;
    head_[a] = v;
    rev_[a] = b;
    cap_[a] = pending_cap_[e];
    head_[b] = u;
    rev_[b] = a;
    cap_[b] = 0.0;
    max_cap_ = std::max(max_cap_, pending_cap_[e]);
  }
  std::vector<int32_t>().swap(pending_from_);
  std::vector<int32_t>().swap(pending_to_);
  std::vector<double>().swap(pending_cap_);
  id_ = next_graph_id.fetch_add(1);
  finalized_ = true;
}

// ------------------------------------------------------------------------------------------------------
// Dinic

double MaxFlowWorkspace::max_flow(const FlowGraph& g, int32_t source, int32_t sink) {
  return solve(g, source, sink, nullptr);
}

double MaxFlowWorkspace::max_flow(const FlowGraph& g, int32_t source, int32_t sink,
                                  const std::vector<int32_t>& first_levels) {
  TORCH_CHECK_VALUE(static_cast<int64_t>(first_levels.size()) == g.num_nodes_, "first_levels has ",
                    first_levels.size(), " entries for a graph of ", g.num_nodes_, " nodes");
  return solve(g, source, sink, &first_levels);
}

double MaxFlowWorkspace::solve(const FlowGraph& g, int32_t source, int32_t sink,
                               const std::vector<int32_t>* first_levels) {
  TORCH_CHECK(g.finalized_, "max_flow needs a finalized FlowGraph (call finalize() after the last add_edge)");
  const int32_t n = g.num_nodes_;
  TORCH_CHECK_VALUE(source >= 0 && source < n, "source ", source, " is outside the graph's nodes 0..", n - 1);
  TORCH_CHECK_VALUE(sink >= 0 && sink < n, "sink ", sink, " is outside the graph's nodes 0..", n - 1);
  TORCH_CHECK_VALUE(source != sink, "source and sink must differ, got both = ", source);

  // Reset the residual capacities: all of them for a new graph, else only the arcs the last solve changed.
  if (bound_graph_ != g.id_ || touched_overflow_) {
    res_.assign(g.cap_.begin(), g.cap_.end());
    bound_graph_ = g.id_;
  } else {
    for (int64_t a : touched_) res_[a] = g.cap_[a];
  }
  touched_.clear();
  touched_overflow_ = false;
  level_.resize(n);
  queue_.resize(n);
  iter_.resize(n);
  eps_ = g.max_cap_ * kRelativeEps;

  double flow = 0.0;
  if (first_levels != nullptr) {
    // Any level function whose arcs step +1 yields a valid blocking flow; the searches after it decide maximality.
    std::copy(first_levels->begin(), first_levels->end(), level_.begin());
    TORCH_CHECK_VALUE(level_[source] == 0 && level_[sink] > 0, "first_levels must put the source at level 0 and the "
                      "sink above it, got ", level_[source], " and ", level_[sink]);
    flow += augment(g, source, sink);
  }
  while (bfs(g, source, sink)) flow += augment(g, source, sink);
  return flow;
}

// Levels by breadth-first search over arcs with residual capacity; stops expanding at the sink's level.
bool MaxFlowWorkspace::bfs(const FlowGraph& g, int32_t source, int32_t sink) {
  std::fill(level_.begin(), level_.end(), -1);
  level_[source] = 0;
  int64_t qhead = 0, qtail = 0;
  queue_[qtail++] = source;
  while (qhead < qtail) {
    const int32_t u = queue_[qhead++];
    if (level_[sink] >= 0 && level_[u] >= level_[sink]) break;
    for (int64_t a = g.first_[u], end = g.first_[u + 1]; a < end; ++a) {
      const int32_t v = g.head_[a];
      if (level_[v] < 0 && res_[a] > eps_) {
        level_[v] = level_[u] + 1;
        queue_[qtail++] = v;
      }
    }
  }
  return level_[sink] >= 0;
}

// A blocking flow in the level graph: depth-first search with current-arc pointers and an explicit stack
// (paths can be as long as the graph has nodes, too deep for recursion).
double MaxFlowWorkspace::augment(const FlowGraph& g, int32_t source, int32_t sink) {
  const int32_t n = g.num_nodes_;
  for (int32_t u = 0; u < n; ++u) iter_[u] = g.first_[u];
  const int32_t sink_level = level_[sink];
  const size_t touched_limit = static_cast<size_t>(g.num_arcs());
  double total = 0.0;
  path_.clear();
  int32_t u = source;
  while (true) {
    if (u == sink) {
      double f = std::numeric_limits<double>::infinity();
      for (int64_t a : path_) f = std::min(f, res_[a]);
      size_t cut = path_.size();
      for (size_t i = 0; i < path_.size(); ++i) {
        const int64_t a = path_[i], r = g.rev_[a];
        res_[a] -= f;
        res_[r] += f;
        if (!touched_overflow_) {
          touched_.push_back(a);
          touched_.push_back(r);
        }
        if (cut == path_.size() && res_[a] <= eps_) cut = i;
      }
      if (touched_.size() > touched_limit) {  // a full copy is cheaper than replaying this list
        touched_overflow_ = true;
        touched_.clear();
      }
      total += f;
      // Back to the tail of the first saturated arc; its current arc skips it from now on.
      path_.resize(cut);
      u = path_.empty() ? source : g.head_[path_.back()];
      continue;
    }
    bool advanced = false;
    const int32_t next_level = level_[u] + 1;
    for (int64_t end = g.first_[u + 1]; iter_[u] < end; ++iter_[u]) {
      const int64_t a = iter_[u];
      const int32_t v = g.head_[a];
      if (level_[v] == next_level && res_[a] > eps_ && (v == sink || next_level < sink_level)) {
        path_.push_back(a);
        u = v;
        advanced = true;
        break;
      }
    }
    if (advanced) continue;
    if (u == source) break;
    level_[u] = -1;  // dead end for the rest of this phase
    path_.pop_back();
    u = path_.empty() ? source : g.head_[path_.back()];
    ++iter_[u];
  }
  return total;
}

// ------------------------------------------------------------------------------------------------------
// The layered attention graph

FlowGraph layered_attention_graph(const at::Tensor& caps) {
  TORCH_CHECK_VALUE(caps.dim() == 3 && caps.size(1) == caps.size(2),
                    "caps must be [layers, length, length], got shape ", caps.sizes());
  TORCH_CHECK_TYPE(caps.scalar_type() == at::kDouble, "caps must be float64, got ", caps.scalar_type());
  const int64_t layers = caps.size(0), length = caps.size(1);
  const int64_t nodes = (layers + 1) * length;
  TORCH_CHECK_VALUE(nodes < std::numeric_limits<int32_t>::max(), "the attention graph would have ", nodes,
                    " nodes, more than this solver indexes");
  const at::Tensor c = caps.contiguous();
  const double* p = c.data_ptr<double>();
  FlowGraph g(static_cast<int32_t>(nodes));
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t i = 0; i < length; ++i) {
      const double* row = p + (l * length + i) * length;
      for (int64_t j = 0; j < length; ++j) {
        if (row[j] > 0.0) {
          g.add_edge(static_cast<int32_t>((l + 1) * length + i), static_cast<int32_t>(l * length + j), row[j]);
        }
      }
    }
  }
  g.finalize();
  return g;
}

at::Tensor layered_max_flow(const at::Tensor& caps, at::OptionalIntArrayRef rows, bool normalize) {
  TORCH_CHECK_VALUE(caps.dim() == 4 && caps.size(2) == caps.size(3),
                    "caps must be [layers, batch, length, length], got shape ", caps.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(caps.scalar_type()), "caps must be a floating tensor, got ", caps.scalar_type());
  TORCH_CHECK_VALUE(caps.device().is_cpu(), "caps must be on the CPU, got ", caps.device());
  const int64_t layers = caps.size(0), batch = caps.size(1), length = caps.size(2);
  TORCH_CHECK_VALUE(layers >= 1, "attention flow needs at least one layer, got caps of shape ", caps.sizes());
  if (caps.numel() > 0) {
    auto [lo, hi] = at::aminmax(caps);  // NaN propagates into both
    TORCH_CHECK_VALUE(lo.item<double>() >= 0.0 && std::isfinite(hi.item<double>()),
                      "caps must be finite and >= 0, got min ", lo.item<double>(), " and max ", hi.item<double>());
  }

  std::vector<int64_t> sources;
  if (rows.has_value()) {
    for (int64_t r : *rows) {
      TORCH_CHECK_VALUE(r >= 0 && r < length, "rows has ", r, ", out of range for ", length,
                        " query positions (valid: 0..", length - 1, ")");
      sources.push_back(r);
    }
  } else {
    for (int64_t r = 0; r < length; ++r) sources.push_back(r);
  }
  const int64_t num_rows = static_cast<int64_t>(sources.size());
  at::Tensor out = at::zeros({batch, num_rows, length}, caps.options().dtype(at::kDouble));
  if (batch == 0 || num_rows == 0 || length == 0) return out;

  const at::Tensor c = caps.to(at::kDouble).contiguous();
  auto acc = out.accessor<double, 3>();
  const int64_t pairs = num_rows * length;
  // Every arc steps one layer down, so before any flow moves the distance from a top node to (l, j) is
  // layers - l: the first phase needs no search.
  std::vector<int32_t> first_levels(static_cast<size_t>((layers + 1) * length));
  for (int64_t l = 0; l <= layers; ++l) {
    std::fill_n(first_levels.begin() + l * length, length, static_cast<int32_t>(layers - l));
  }
  for (int64_t b = 0; b < batch; ++b) {
    const FlowGraph g = layered_attention_graph(c.select(/*dim=*/1, b));
    // Pairs differ a lot in cost, so threads pull them one at a time instead of taking fixed slices.
    std::atomic<int64_t> next{0};
    const int64_t tasks = std::min<int64_t>(at::get_num_threads(), pairs);
    at::parallel_for(0, tasks, /*grain_size=*/1, [&](int64_t t0, int64_t t1) {
      MaxFlowWorkspace ws;
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t p = next.fetch_add(1); p < pairs; p = next.fetch_add(1)) {
          const int64_t r = p / length, tok = p % length;
          acc[b][r][tok] = ws.max_flow(g, static_cast<int32_t>(layers * length + sources[r]),
                                       static_cast<int32_t>(tok), first_levels);
        }
      }
    });
  }
  if (normalize) {
    at::Tensor sums = out.sum(/*dim=*/-1, /*keepdim=*/true);
    out = at::where(sums > 0, out / sums.clamp_min(std::numeric_limits<double>::min()), out);
  }
  return out;
}

}  // namespace attnscope
