//! Installation order: a deterministic topological order of packages by their requirements.
//!
//! libsolv's `transaction_order` depends on the order of ids inside the pool (string ids, the
//! order of requirements), which differs between a repository parsed from XML and the same one
//! read from a `.solv` cache. This order depends only on the dependency graph and on the caller's
//! ranking of the packages, so the same packages always come out in the same order.
//!
//! Strategy (the one rpm uses too): providers before the packages that require them; inside a
//! dependency cycle only `Requires(pre)` edges count; what is still cyclic goes by rank.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// "`from` must be installed before `to`", because `to` requires something `from` provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Edge {
    pub(crate) from: usize,
    pub(crate) to: usize,
    /// The requirement is a `Requires(pre)` (needed while installing, not just at run time).
    pub(crate) prerequisite: bool,
}

/// Which edges count at one level of cycle breaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdgeKinds {
    All,
    PrerequisitesOnly,
}

/// Marks a node Tarjan's algorithm has not reached yet.
const UNVISITED: usize = usize::MAX;
/// Marks a node outside the set being ordered.
const NOT_IN_NODES: usize = usize::MAX;

/// Orders nodes `0..node_count` (ranked: a lower number goes first whenever the edges allow it)
/// so that every edge's `from` precedes its `to`, except where cycles make that impossible.
pub(crate) fn installation_order(node_count: usize, edges: &[Edge]) -> Vec<usize> {
    let mut successors: Vec<Vec<(usize, bool)>> = vec![Vec::new(); node_count];
    for edge in edges {
        if edge.from != edge.to && edge.from < node_count && edge.to < node_count {
            successors[edge.from].push((edge.to, edge.prerequisite));
        }
    }
    for list in &mut successors {
        // Keep one edge per target, a prerequisite one if there is any.
        list.sort_unstable_by_key(|&(to, prerequisite)| (to, !prerequisite));
        list.dedup_by_key(|&mut (to, _)| to);
    }
    let all: Vec<usize> = (0..node_count).collect();
    let mut order = Vec::with_capacity(node_count);
    order_nodes(&all, &successors, EdgeKinds::All, &mut order);
    order
}

/// Appends `nodes` (ascending) to `order`: the components of the graph restricted to `nodes`
/// and `kinds` in topological order, smallest first; inside a cycle, prerequisites only, then rank.
fn order_nodes(nodes: &[usize], successors: &[Vec<(usize, bool)>], kinds: EdgeKinds, order: &mut Vec<usize>) {
    // Node -> its index in `nodes` (NOT_IN_NODES for the others): dense, one slot per node.
    let mut local = vec![NOT_IN_NODES; successors.len()];
    for (index, &node) in nodes.iter().enumerate() {
        local[node] = index;
    }
    let local_successors: Vec<Vec<usize>> = nodes
        .iter()
        .map(|node| {
            successors[*node]
                .iter()
                .filter(|(_, prerequisite)| kinds == EdgeKinds::All || *prerequisite)
                .map(|(to, _)| local[*to])
                .filter(|index| *index != NOT_IN_NODES)
                .collect()
        })
        .collect();
    let (component_of, component_count) = strongly_connected_components(&local_successors);

    let mut members: Vec<Vec<usize>> = vec![Vec::new(); component_count];
    for (index, &component) in component_of.iter().enumerate() {
        members[component].push(index);
    }
    let mut component_successors: Vec<Vec<usize>> = vec![Vec::new(); component_count];
    for (index, targets) in local_successors.iter().enumerate() {
        for &target in targets {
            if component_of[index] != component_of[target] {
                component_successors[component_of[index]].push(component_of[target]);
            }
        }
    }
    let mut incoming = vec![0usize; component_count];
    for list in &mut component_successors {
        list.sort_unstable();
        list.dedup();
        for &target in list.iter() {
            incoming[target] += 1;
        }
    }

    // Members are ascending, so a component's first member is its smallest rank.
    let mut ready: BinaryHeap<Reverse<(usize, usize)>> = (0..component_count)
        .filter(|component| incoming[*component] == 0)
        .map(|component| Reverse((members[component][0], component)))
        .collect();
    while let Some(Reverse((_, component))) = ready.pop() {
        let component_nodes: Vec<usize> = members[component].iter().map(|&index| nodes[index]).collect();
        match (component_nodes.len(), kinds) {
            (1, _) | (_, EdgeKinds::PrerequisitesOnly) => order.extend(&component_nodes),
            (_, EdgeKinds::All) => {
                order_nodes(&component_nodes, successors, EdgeKinds::PrerequisitesOnly, order)
            }
        }
        for &target in &component_successors[component] {
            incoming[target] -= 1;
            if incoming[target] == 0 {
                ready.push(Reverse((members[target][0], target)));
            }
        }
    }
}

/// Tarjan's algorithm, iterative (dependency chains can be long): the component of every node
/// and the number of components.
fn strongly_connected_components(successors: &[Vec<usize>]) -> (Vec<usize>, usize) {
    let node_count = successors.len();
    let mut index = vec![UNVISITED; node_count];
    let mut low_link = vec![0; node_count];
    let mut on_stack = vec![false; node_count];
    let mut component_of = vec![UNVISITED; node_count];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut component_count = 0;
    // (node, position of the next successor to look at)
    let mut call_stack: Vec<(usize, usize)> = Vec::new();

    for root in 0..node_count {
        if index[root] != UNVISITED {
            continue;
        }
        index[root] = next_index;
        low_link[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        call_stack.push((root, 0));
        while let Some(&(node, position)) = call_stack.last() {
            if let Some(&next) = successors[node].get(position) {
                if let Some(frame) = call_stack.last_mut() {
                    frame.1 += 1;
                }
                if index[next] == UNVISITED {
                    index[next] = next_index;
                    low_link[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    call_stack.push((next, 0));
                } else if on_stack[next] {
                    low_link[node] = low_link[node].min(index[next]);
                }
                continue;
            }
            call_stack.pop();
            if let Some(&(parent, _)) = call_stack.last() {
                low_link[parent] = low_link[parent].min(low_link[node]);
            }
            if low_link[node] == index[node] {
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component_of[member] = component_count;
                    if member == node {
                        break;
                    }
                }
                component_count += 1;
            }
        }
    }
    (component_of, component_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: usize, to: usize) -> Edge {
        Edge { from, to, prerequisite: false }
    }

    fn prerequisite(from: usize, to: usize) -> Edge {
        Edge { from, to, prerequisite: true }
    }

    #[test]
    fn orders_table() {
        let cases: Vec<(&str, usize, Vec<Edge>, Vec<usize>)> = vec![
            ("no edges keeps rank order", 3, vec![], vec![0, 1, 2]),
            ("chain against rank", 3, vec![edge(2, 1), edge(1, 0)], vec![2, 1, 0]),
            ("independent parts interleave by rank", 4, vec![edge(3, 0), edge(2, 1)], vec![2, 1, 3, 0]),
            ("cycle goes by rank", 2, vec![edge(0, 1), edge(1, 0)], vec![0, 1]),
            ("prerequisite decides inside a cycle", 2, vec![edge(0, 1), prerequisite(1, 0)], vec![1, 0]),
            (
                "cycle ordered as a whole after its providers",
                4,
                vec![edge(3, 1), edge(1, 2), edge(2, 1), edge(2, 0)],
                vec![3, 1, 2, 0],
            ),
            (
                "self edges and duplicates are ignored",
                2,
                vec![edge(1, 1), edge(1, 0), edge(1, 0)],
                vec![1, 0],
            ),
            ("prerequisite cycle goes by rank", 2, vec![prerequisite(0, 1), prerequisite(1, 0)], vec![0, 1]),
        ];
        for (name, node_count, edges, expected) in cases {
            assert_eq!(installation_order(node_count, &edges), expected, "{name}");
        }
    }

    #[test]
    fn long_chain_does_not_overflow_the_stack() {
        let node_count = 200_000;
        let edges: Vec<Edge> = (1..node_count).map(|to| edge(node_count - to, node_count - to - 1)).collect();
        let order = installation_order(node_count, &edges);
        assert_eq!(order.first(), Some(&(node_count - 1)));
        assert_eq!(order.last(), Some(&0));
        let cycle: Vec<Edge> = (0..node_count).map(|from| edge(from, (from + 1) % node_count)).collect();
        assert_eq!(installation_order(node_count, &cycle), (0..node_count).collect::<Vec<_>>());
    }
}
