//! Graph algorithms over the model DAG: cycles, named as whole chains, and a
//! deterministic topological order.

use jobs::decl::Model;
use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeSet, HashSet};

/// One cycle: `nodes[0] -> nodes[1] -> ... -> nodes[0]` (the first node is
/// repeated at the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub nodes: Vec<NodeIndex>,
}

/// One cycle per strongly connected component that has one, starting at
/// the component's alphabetically first model so messages are stable.
pub(super) fn cycles(g: &DiGraph<Model, ()>) -> Vec<Cycle> {
    let mut out = Vec::new();
    for scc in tarjan_scc(g) {
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let Some(&start) = scc.iter().min_by(|a, b| g[**a].name.cmp(&g[**b].name)) else {
            continue;
        };
        if let Some(path) = path_back(g, start, &members) {
            out.push(Cycle { nodes: path });
        }
    }
    out.sort_by(|a, b| g[a.nodes[0]].name.cmp(&g[b.nodes[0]].name));
    out
}

/// A shortest path start -> ... -> start inside the component (BFS).
fn path_back(
    g: &DiGraph<Model, ()>,
    start: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Option<Vec<NodeIndex>> {
    let mut prev: std::collections::HashMap<NodeIndex, NodeIndex> = Default::default();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = g
            .neighbors_directed(n, Direction::Outgoing)
            .filter(|m| members.contains(m))
            .collect();
        next.sort_by(|a, b| g[*a].name.cmp(&g[*b].name));
        for m in next {
            if m == start {
                // Walk back n -> ... -> start, then read it forwards.
                let mut path = vec![n];
                while let Some(&p) = prev.get(path.last().unwrap_or(&start)) {
                    path.push(p);
                }
                path.reverse();
                path.push(start);
                return Some(path);
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    None
}

/// Kahn's algorithm, always taking the ready node that sorts first by
/// (layer, name): the same pipeline always lists in the same order.
pub(super) fn stable_topo_order(g: &DiGraph<Model, ()>) -> Vec<NodeIndex> {
    let key = |n: NodeIndex| (g[n].layer, g[n].name.clone(), n);
    let mut indegree: Vec<usize> = g
        .node_indices()
        .map(|n| g.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BTreeSet<_> = g
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .map(key)
        .collect();
    let mut order = Vec::with_capacity(g.node_count());
    while let Some(k) = ready.pop_first() {
        let n = k.2;
        order.push(n);
        for m in g.neighbors_directed(n, Direction::Outgoing) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.insert(key(m));
            }
        }
    }
    order
}
