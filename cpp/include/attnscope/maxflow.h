// Maximum flow with double capacities (Dinic's algorithm), and attention flow on the layered attention graph.
//
// The graph is stored once in compressed sparse rows; every arc has a paired reverse arc. A solve works on a
// private copy of the residual capacities (a MaxFlowWorkspace), so one graph serves many (source, sink) pairs
// from many threads at once.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace attnscope {

// A directed graph for max-flow. Build with add_edge, then finalize() once; after that it is read-only.
class FlowGraph {
 public:
  explicit FlowGraph(int32_t num_nodes);

  // Adds the arc u -> v with capacity `capacity` (>= 0, finite) and its reverse arc (capacity 0).
  void add_edge(int32_t u, int32_t v, double capacity);
  // Lays the arcs out per node (CSR). Called once, before any solve.
  void finalize();

  int32_t num_nodes() const { return num_nodes_; }
  int64_t num_arcs() const { return static_cast<int64_t>(head_.size()); }
  bool finalized() const { return finalized_; }
  // A process-unique id given by finalize(); workspaces use it to know whose capacities they hold.
  uint64_t id() const { return id_; }

 private:
  friend class MaxFlowWorkspace;
  int32_t num_nodes_;
  bool finalized_ = false;
  uint64_t id_ = 0;
  std::vector<int32_t> pending_from_, pending_to_;
  std::vector<double> pending_cap_;
  // CSR: the arcs of node u are [first_[u], first_[u + 1]).
  std::vector<int64_t> first_;
  std::vector<int32_t> head_;   // arc -> target node
  std::vector<int64_t> rev_;    // arc -> its reverse arc
  std::vector<double> cap_;     // arc -> initial capacity
  double max_cap_ = 0.0;
};

// Per-thread scratch for solving max-flow problems on one FlowGraph (or graphs of at most its size).
class MaxFlowWorkspace {
 public:
  // The max-flow value from `source` to `sink`; source == sink is rejected.
  // Residual capacities below a tolerance relative to the largest capacity (1e-14 of it) count as saturated,
  // so floating-point crumbs do not spawn extra phases; the value is exact up to that tolerance per cut arc.
  double max_flow(const FlowGraph& g, int32_t source, int32_t sink);
  // Same, with the levels of the first phase given instead of searched (source at 0, sink above it). Any labels
  // give the right value, since the searches that follow decide maximality; with the breadth-first distances in
  // the graph of positive capacities the first phase is a true Dinic phase. The layered attention graph knows them
  // in advance (layer depth), which saves one search over the whole graph per pair.
  double max_flow(const FlowGraph& g, int32_t source, int32_t sink, const std::vector<int32_t>& first_levels);

 private:
  double solve(const FlowGraph& g, int32_t source, int32_t sink, const std::vector<int32_t>* first_levels);
  bool bfs(const FlowGraph& g, int32_t source, int32_t sink);
  double augment(const FlowGraph& g, int32_t source, int32_t sink);

  std::vector<double> res_;
  std::vector<int32_t> level_, queue_;
  std::vector<int64_t> iter_, path_;
  // Arcs whose residual changed since the last reset, so the next solve on the same graph restores only those.
  std::vector<int64_t> touched_;
  bool touched_overflow_ = false;
  uint64_t bound_graph_ = 0;  // FlowGraph::id() whose capacities res_ holds (0: none)
  double eps_ = 0.0;
};

// The layered attention graph of Abnar & Zuidema (2020): node (l, i) for l = 0..layers, position i; the arc
// (l + 1, i) -> (l, j) carries capacity caps[l][i][j] (layer l's attention of query i on key j). Arcs of zero
// capacity are left out. Node (l, i) has id l * length + i.
// `caps` is [layers, length, length], float64, contiguous, non-negative and finite.
FlowGraph layered_attention_graph(const at::Tensor& caps);

// Attention flow: max-flow from the top-layer node of each output position in `rows` (all positions when
// absent) to the bottom-layer node of each input token, for every batch item.
// `caps` is [layers, batch, length, length] (any floating dtype; solved in float64), non-negative, finite.
// Returns [batch, rows, length] float64; normalize divides each output row by its sum (rows summing to 0 stay 0).
// Pairs are solved in parallel with at::parallel_for.
at::Tensor layered_max_flow(const at::Tensor& caps, at::OptionalIntArrayRef rows, bool normalize);

}  // namespace attnscope
