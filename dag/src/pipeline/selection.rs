//! Which models a selector names in this pipeline (the selector's syntax
//! is `crate::select`'s; this is its meaning over the graph).

use super::Pipeline;
use crate::select::{Atom, Selector};
use jobs::decl::did_you_mean;
use petgraph::graph::NodeIndex;
use petgraph::visit::{Bfs, Reversed};
use std::collections::BTreeSet;

impl Pipeline {
    /// The selected models, in the pipeline's topological order. Unknown
    /// model names and tags no model has are errors.
    pub fn select(&self, sel: &Selector) -> Result<Vec<NodeIndex>, String> {
        let p = self;
        if sel.is_all() {
            return Ok(p.topo_order().to_vec());
        }
        let mut chosen: BTreeSet<NodeIndex> = BTreeSet::new();
        for term in sel.terms() {
            let seeds: Vec<NodeIndex> = match &term.atom {
                Atom::Model(name) => match p.node(name) {
                    Some(n) => vec![n],
                    None => {
                        return Err(format!(
                            "no model named `{name}`{}",
                            did_you_mean(name, p.names())
                        ));
                    }
                },
                Atom::Layer(l) => p
                    .graph
                    .node_indices()
                    .filter(|n| p.graph[*n].layer == *l)
                    .collect(),
                Atom::Tag(tag) => {
                    let v: Vec<NodeIndex> = p
                        .graph
                        .node_indices()
                        .filter(|n| p.graph[*n].tags.contains(tag))
                        .collect();
                    if v.is_empty() {
                        let mut tags: BTreeSet<&str> = BTreeSet::new();
                        for m in p.graph.node_weights() {
                            tags.extend(m.tags.iter().map(String::as_str));
                        }
                        return Err(format!(
                            "no model has tag `{tag}`{} (tags: {})",
                            did_you_mean(tag, tags.iter().copied()),
                            tags.into_iter().collect::<Vec<_>>().join(", ")
                        ));
                    }
                    v
                }
            };
            for seed in seeds {
                chosen.insert(seed);
                if term.upstream {
                    let rev = Reversed(&p.graph);
                    let mut bfs = Bfs::new(rev, seed);
                    while let Some(n) = bfs.next(rev) {
                        chosen.insert(n);
                    }
                }
                if term.downstream {
                    let mut bfs = Bfs::new(&p.graph, seed);
                    while let Some(n) = bfs.next(&p.graph) {
                        chosen.insert(n);
                    }
                }
            }
        }
        Ok(p.topo_order()
            .iter()
            .copied()
            .filter(|n| chosen.contains(n))
            .collect())
    }
}
