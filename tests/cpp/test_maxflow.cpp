// Dinic max-flow against closed forms and a brute-force minimum cut; the layered attention graph against
// closed forms (one layer, identity, two layers).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

#include "attnscope/maxflow.h"

namespace {

using attnscope::FlowGraph;
using attnscope::MaxFlowWorkspace;

double solve(FlowGraph& g, int32_t s, int32_t t) {
  MaxFlowWorkspace ws;
  return ws.max_flow(g, s, t);
}

TEST(MaxFlow, SeriesIsTheSmallestCapacity) {
  FlowGraph g(4);
  g.add_edge(0, 1, 3.0);
  g.add_edge(1, 2, 0.25);
  g.add_edge(2, 3, 2.0);
  g.finalize();
  EXPECT_DOUBLE_EQ(solve(g, 0, 3), 0.25);
}

TEST(MaxFlow, ParallelIsTheSum) {
  FlowGraph g(4);
  g.add_edge(0, 1, 1.5);
  g.add_edge(1, 3, 1.5);
  g.add_edge(0, 2, 2.5);
  g.add_edge(2, 3, 2.5);
  g.add_edge(0, 3, 0.125);
  g.finalize();
  EXPECT_DOUBLE_EQ(solve(g, 0, 3), 4.125);
}

TEST(MaxFlow, SeriesOfParallelBlocks) {
  // s -> {a, b} -> m -> {c, d} -> t: min(1 + 2, 0.5 + 0.75) = 1.25.
  FlowGraph g(6);
  const int s = 0, a = 1, b = 2, m = 3, c = 4, t = 5;
  g.add_edge(s, a, 1.0);
  g.add_edge(a, m, 1.0);
  g.add_edge(s, b, 2.0);
  g.add_edge(b, m, 2.0);
  g.add_edge(m, c, 0.5);
  g.add_edge(c, t, 10.0);
  g.add_edge(m, t, 0.75);
  g.finalize();
  EXPECT_DOUBLE_EQ(solve(g, s, t), 1.25);
}

TEST(MaxFlow, NeedsFlowCancellation) {
  // The CLRS network (Cormen et al., fig. 26.1): max flow 23; greedy paths must be undone through reverse arcs.
  FlowGraph g(6);
  g.add_edge(0, 1, 16);
  g.add_edge(0, 2, 13);
  g.add_edge(1, 3, 12);
  g.add_edge(2, 1, 4);
  g.add_edge(3, 2, 9);
  g.add_edge(2, 4, 14);
  g.add_edge(4, 3, 7);
  g.add_edge(3, 5, 20);
  g.add_edge(4, 5, 4);
  g.finalize();
  EXPECT_DOUBLE_EQ(solve(g, 0, 5), 23.0);
}

TEST(MaxFlow, GivenFirstLevelsDoNotChangeTheValue) {
  FlowGraph g(6);
  g.add_edge(0, 1, 16);
  g.add_edge(0, 2, 13);
  g.add_edge(1, 3, 12);
  g.add_edge(2, 1, 4);
  g.add_edge(3, 2, 9);
  g.add_edge(2, 4, 14);
  g.add_edge(4, 3, 7);
  g.add_edge(3, 5, 20);
  g.add_edge(4, 5, 4);
  g.finalize();
  MaxFlowWorkspace ws;
  EXPECT_DOUBLE_EQ(ws.max_flow(g, 0, 5, {0, 1, 1, 2, 2, 3}), 23.0);  // the true distances
  EXPECT_DOUBLE_EQ(ws.max_flow(g, 0, 5, {0, 1, 2, 3, 4, 5}), 23.0);  // arbitrary labels
  EXPECT_DOUBLE_EQ(ws.max_flow(g, 0, 5, {0, 9, 9, 9, 9, 1}), 23.0);  // a first phase that moves nothing
  EXPECT_THROW(ws.max_flow(g, 0, 5, {0, 1}), c10::ValueError);
}

TEST(MaxFlow, UnreachableSinkHasZeroFlow) {
  FlowGraph g(4);
  g.add_edge(0, 1, 1.0);
  g.add_edge(2, 3, 1.0);
  g.add_edge(3, 0, 1.0);  // wrong direction
  g.finalize();
  EXPECT_EQ(solve(g, 0, 3), 0.0);
}

// Minimum s-t cut by enumerating every node subset containing s and not t.
double brute_force_min_cut(int n, const std::vector<std::tuple<int, int, double>>& edges, int s, int t) {
  double best = std::numeric_limits<double>::infinity();
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (!(mask >> s & 1u) || (mask >> t & 1u)) continue;
    double cut = 0.0;
    for (const auto& [u, v, c] : edges) {
      if ((mask >> u & 1u) && !(mask >> v & 1u)) cut += c;
    }
    best = std::min(best, cut);
  }
  return best;
}

TEST(MaxFlow, EqualsBruteForceMinCutOnRandomGraphs) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> cap(0.0, 1.0);
  std::bernoulli_distribution keep(0.45);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 3 + trial % 8;  // 3..10 nodes
    std::vector<std::tuple<int, int, double>> edges;
    FlowGraph g(n);
    for (int u = 0; u < n; ++u) {
      for (int v = 0; v < n; ++v) {
        if (u != v && keep(rng)) {
          edges.emplace_back(u, v, cap(rng));
          g.add_edge(u, v, std::get<2>(edges.back()));
        }
      }
    }
    g.finalize();
    MaxFlowWorkspace ws;  // reused across pairs: the reset must restore every residual
    for (int s = 0; s < n; ++s) {
      const int t = (s + 1 + trial) % n;
      if (s == t) continue;
      EXPECT_NEAR(ws.max_flow(g, s, t), brute_force_min_cut(n, edges, s, t), 1e-12)
          << "trial " << trial << " s=" << s << " t=" << t;
    }
  }
}

TEST(MaxFlow, WorkspaceMovesBetweenGraphs) {
  FlowGraph g1(3), g2(3);
  g1.add_edge(0, 1, 1.0);
  g1.add_edge(1, 2, 1.0);
  g2.add_edge(0, 2, 0.5);
  g1.finalize();
  g2.finalize();
  MaxFlowWorkspace ws;
  EXPECT_DOUBLE_EQ(ws.max_flow(g1, 0, 2), 1.0);
  EXPECT_DOUBLE_EQ(ws.max_flow(g2, 0, 2), 0.5);
  EXPECT_DOUBLE_EQ(ws.max_flow(g1, 0, 2), 1.0);
  EXPECT_DOUBLE_EQ(ws.max_flow(g1, 0, 2), 1.0);
}

TEST(MaxFlow, RejectsBadInput) {
  FlowGraph g(3);
  EXPECT_THROW(g.add_edge(0, 1, -1.0), c10::ValueError);
  EXPECT_THROW(g.add_edge(0, 1, std::numeric_limits<double>::quiet_NaN()), c10::ValueError);
  EXPECT_THROW(g.add_edge(0, 3, 1.0), c10::ValueError);
  g.add_edge(0, 1, 1.0);
  MaxFlowWorkspace ws;
  EXPECT_THROW(ws.max_flow(g, 0, 1), c10::Error);  // not finalized
  g.finalize();
  EXPECT_THROW(ws.max_flow(g, 0, 0), c10::ValueError);
  EXPECT_THROW(ws.max_flow(g, 0, 5), c10::ValueError);
  EXPECT_THROW(g.add_edge(1, 2, 1.0), c10::Error);  // read-only after finalize
}

// ---- the layered attention graph --------------------------------------------------------------------

at::Tensor row_stochastic(int64_t layers, int64_t batch, int64_t length) {
  at::Tensor a = at::rand({layers, batch, length, length}, at::kDouble);
  return a / a.sum(/*dim=*/-1, /*keepdim=*/true);
}

TEST(AttentionFlowGraph, SingleLayerFlowIsTheCapacity) {
  at::manual_seed(0);
  at::Tensor caps = row_stochastic(1, 3, 6);
  at::Tensor flow = attnscope::layered_max_flow(caps, std::nullopt, /*normalize=*/false);
  ASSERT_EQ(flow.sizes(), (at::IntArrayRef{3, 6, 6}));
  EXPECT_LE((flow - caps[0]).abs().max().item<double>(), 1e-15);
}

TEST(AttentionFlowGraph, IdentityLayersGiveIdentity) {
  at::Tensor caps = at::eye(5, at::kDouble).expand({4, 2, 5, 5});
  at::Tensor flow = attnscope::layered_max_flow(caps, std::nullopt, /*normalize=*/true);
  EXPECT_TRUE(at::equal(flow, at::eye(5, at::kDouble).expand({2, 5, 5})));
}

TEST(AttentionFlowGraph, TwoLayersAreDisjointPaths) {
  // With two layers every path is source -> (1, j) -> sink, so the flow is sum_j min(Â_1[o, j], Â_0[j, t]).
  at::manual_seed(1);
  at::Tensor caps = row_stochastic(2, 2, 7);
  at::Tensor flow = attnscope::layered_max_flow(caps, std::nullopt, /*normalize=*/false);
  for (int64_t b = 0; b < 2; ++b) {
    at::Tensor top = caps[1][b].unsqueeze(-1);  // [o, j, 1]
    at::Tensor bottom = caps[0][b].unsqueeze(0);  // [1, j, t]
    at::Tensor expected = at::minimum(top, bottom).sum(/*dim=*/1);
    EXPECT_LE((flow[b] - expected).abs().max().item<double>(), 1e-14);
  }
}

TEST(AttentionFlowGraph, RowsSelectRowsAndNormalizeDividesBySum) {
  at::manual_seed(2);
  at::Tensor caps = row_stochastic(4, 2, 9);
  at::Tensor full = attnscope::layered_max_flow(caps, std::nullopt, /*normalize=*/false);
  std::vector<int64_t> rows{8, 0, 3};
  at::Tensor some = attnscope::layered_max_flow(caps, rows, /*normalize=*/true);
  at::Tensor picked = full.index_select(/*dim=*/1, at::tensor(rows, at::kLong));
  EXPECT_LE((some - picked / picked.sum(-1, true)).abs().max().item<double>(), 1e-14);
}

TEST(AttentionFlowGraph, RejectsBadRowsAndCapacities) {
  at::Tensor caps = row_stochastic(2, 1, 4);
  std::vector<int64_t> rows{4};
  EXPECT_THROW(attnscope::layered_max_flow(caps, rows, true), c10::ValueError);
  at::Tensor nan = caps.clone();
  nan[1][0][2][3] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(attnscope::layered_max_flow(nan, std::nullopt, true), c10::ValueError);
  EXPECT_THROW(attnscope::layered_max_flow(-caps, std::nullopt, true), c10::ValueError);
}

}  // namespace
