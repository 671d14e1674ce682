//! The order of a flush's inserts and deletes across the foreign-key graph.
//!
//! Inserts: an object goes after every object it depends on in the same flush: the parents
//! it is linked to (`Session::link`) and the pending objects whose key its foreign keys hold.
//! Objects are grouped by depth in that graph (roots first), then by entity in the order the
//! entities were first added, so that each group is one batched insert and a child's group
//! comes after its parents' keys are known. A tree of one table added leaves first works the
//! same way: each level is a group.
//!
//! Deletes: an object goes before the objects its foreign keys point to.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use orm_core::{EntityMeta, Error, Key, Result};

use crate::handle::{Columns, Doomed, Erased};

/// An entity's identity for the maps below (see `EntityMeta::is`).
fn meta_id(m: &'static EntityMeta) -> (&'static str, &'static str) {
    (m.table, m.name)
}

/// The objects to insert, in insert order, split into groups of one entity each.
pub(crate) struct Groups<'a> {
    objects: Vec<&'a Arc<dyn Erased>>,
    bounds: Vec<std::ops::Range<usize>>,
}

impl<'a> Groups<'a> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[&'a Arc<dyn Erased>]> {
        self.bounds.iter().map(|r| &self.objects[r.clone()])
    }
}

/// Runs of one entity, in order.
fn runs(objs: &[Arc<dyn Erased>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for run in objs.chunk_by(|a, b| a.entity().is(b.entity())) {
        out.push(start..start + run.len());
        start += run.len();
    }
    out
}

/// Orders the objects to insert (see the module's comment). `claimed` lists the objects
/// with links, when the flush's claim has already put each object's position in `objs` on
/// it (`Erased::slot`); without it, the positions are put there now and every object is
/// looked at. Only objects with links or referenced keys are visited; none is copied.
pub(crate) fn insert_groups<'a>(
    objs: &'a [Arc<dyn Erased>],
    claimed: Option<&[usize]>,
) -> Result<Groups<'a>> {
    let plain = || Groups {
        bounds: runs(objs),
        objects: objs.iter().collect(),
    };
    let references = objs
        .chunk_by(|a, b| a.entity().is(b.entity()))
        .any(|g| g[0].entity().foreign_keys().next().is_some());
    if !references {
        return Ok(plain());
    }
    let n = objs.len();
    let scanned: Vec<usize>;
    let linked = match claimed {
        Some(l) => l,
        None => {
            for (i, o) in objs.iter().enumerate() {
                o.slot()
                    .store(u32::try_from(i).unwrap_or(u32::MAX), Ordering::Relaxed);
            }
            scanned = (0..n)
                .filter(|&i| objs[i].meta().waits_for_parent())
                .collect();
            &scanned
        }
    };
    // (child, parent) pairs; a parent whose slot does not point back to it is not in this
    // flush.
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for &i in linked {
        let m = objs[i].meta();
        for l in m.links().iter().filter(|l| l.done == 0) {
            let p = usize::try_from(l.parent.slot().load(Ordering::Relaxed)).unwrap_or(usize::MAX);
            if p < n && Arc::ptr_eq(&objs[p], &l.parent) {
                edges.push((i, p));
            }
        }
    }
    // Pending objects with an assigned key, of the entities that are referenced: a foreign
    // key holding such a key is a dependency as well.
    let entity_runs = runs(objs);
    let mut referenced: Vec<(&str, &str)> = Vec::new();
    for r in &entity_runs {
        for (_, fk) in objs[r.start].entity().foreign_keys() {
            let id = meta_id(fk.target());
            if !referenced.contains(&id) {
                referenced.push(id);
            }
        }
    }
    let mut keyed: HashMap<((&str, &str), Key), usize> = HashMap::new();
    for r in &entity_runs {
        let meta = objs[r.start].entity();
        let id = meta_id(meta);
        // Generated keys are not known before the insert: nothing can hold them yet.
        if referenced.contains(&id) && meta.key_column().generated == orm_core::Generated::No {
            for i in r.clone() {
                if let Some(k) = objs[i].value_key() {
                    keyed.insert((id, k), i);
                }
            }
        }
    }
    if !keyed.is_empty() {
        for r in &entity_runs {
            if objs[r.start].entity().foreign_keys().next().is_none() {
                continue;
            }
            for i in r.clone() {
                for (target, key) in objs[i].references() {
                    if let Some(&p) = keyed.get(&(meta_id(target), key))
                        && p != i
                    {
                        edges.push((i, p));
                    }
                }
            }
        }
    }
    if edges.is_empty() {
        return Ok(plain());
    }
    let depth = depths(n, &edges).map_err(|cycle| {
        let names: Vec<&str> = cycle.iter().map(|&i| objs[i].entity().name).collect();
        Error::DependencyCycle {
            cycle: names.join(" -> "),
        }
    })?;
    // Entities in the order they were first added.
    let mut rank: Vec<(&str, &str)> = Vec::new();
    let mut entity_rank = vec![0; n];
    for r in &entity_runs {
        let id = meta_id(objs[r.start].entity());
        let k = rank.iter().position(|&e| e == id).unwrap_or_else(|| {
            rank.push(id);
            rank.len() - 1
        });
        entity_rank[r.clone()].fill(k);
    }
    // A stable bucket sort by (depth, entity): each bucket is one group.
    let ranks = rank.len();
    let nbuckets = (depth.iter().max().copied().unwrap_or(0) + 1) * ranks;
    let bucket = |i: usize| depth[i] * ranks + entity_rank[i];
    let mut sizes = vec![0usize; nbuckets];
    for i in 0..n {
        sizes[bucket(i)] += 1;
    }
    let mut bounds = Vec::new();
    let mut next = vec![0usize; nbuckets];
    let mut start = 0;
    for (b, &size) in sizes.iter().enumerate() {
        next[b] = start;
        if size > 0 {
            bounds.push(start..start + size);
        }
        start += size;
    }
    let mut order = vec![0usize; n];
    for i in 0..n {
        let b = bucket(i);
        order[next[b]] = i;
        next[b] += 1;
    }
    Ok(Groups {
        objects: order.into_iter().map(|i| &objs[i]).collect(),
        bounds,
    })
}

/// The depth of each of `n` nodes given (child, parent) edges: 0 without parents, else one
/// more than its deepest parent. Or the nodes of a cycle.
fn depths(n: usize, edges: &[(usize, usize)]) -> std::result::Result<Vec<usize>, Vec<usize>> {
    // Children of each node, as one array sliced by offsets.
    let mut offsets = vec![0usize; n + 1];
    let mut waiting = vec![0usize; n];
    for &(c, p) in edges {
        offsets[p + 1] += 1;
        waiting[c] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut children = vec![0usize; edges.len()];
    for &(c, p) in edges {
        children[fill[p]] = c;
        fill[p] += 1;
    }
    let mut depth = vec![0; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &c in &children[offsets[i]..offsets[i + 1]] {
            depth[c] = depth[c].max(depth[i] + 1);
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(c);
            }
        }
    }
    if done == n {
        return Ok(depth);
    }
    // Walk parents from a node left over until one repeats: that is a cycle.
    let parent_of = |i: usize| {
        edges
            .iter()
            .find(|&&(c, p)| c == i && waiting[p] > 0)
            .map(|&(_, p)| p)
    };
    let start = (0..n).find(|&i| waiting[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut at = start;
    loop {
        let Some(next) = parent_of(at) else {
            return Err(path);
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path.split_off(pos);
            cycle.push(next);
            return Err(cycle);
        }
        path.push(next);
        at = next;
    }
}

/// The objects to delete, each before the objects (in the same flush) that its foreign keys
/// point to. Objects in a cycle keep their order, after the rest.
/// Borrowed as they are when no deleted entity has a foreign key (nothing to order).
pub(crate) fn delete_order(objs: &[Doomed]) -> Cow<'_, [Doomed]> {
    if objs.len() < 2
        || !objs
            .iter()
            .any(|o| o.entity().foreign_keys().next().is_some())
    {
        return Cow::Borrowed(objs);
    }
    let n = objs.len();
    let keyed: HashMap<((&str, &str), Key), usize> = objs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some(((meta_id(o.entity()), o.meta().key.clone()?), i)))
        .collect();
    // parents[i]: the objects i references; they wait for i.
    let mut referenced_by = vec![0usize; n];
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, o) in objs.iter().enumerate() {
        for (target, key) in o.references() {
            if let Some(&p) = keyed.get(&(meta_id(target), key))
                && p != i
            {
                parents[i].push(p);
                referenced_by[p] += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut emitted = vec![false; n];
    let mut ready: Vec<usize> = (0..n).rev().filter(|&i| referenced_by[i] == 0).collect();
    while let Some(i) = ready.pop() {
        emitted[i] = true;
        out.push(objs[i].clone());
        for &p in &parents[i] {
            referenced_by[p] -= 1;
            if referenced_by[p] == 0 {
                ready.push(p);
            }
        }
    }
    out.extend((0..n).filter(|&i| !emitted[i]).map(|i| objs[i].clone()));
    Cow::Owned(out)
}

/// The updates of a flush as batches, one batched `UPDATE` apiece: positions in `updates`
/// (each an object's position in `objects` and its changed columns) of the objects of one
/// entity whose changed columns are the same, in the order each batch first appears. An
/// update like the one before it (the common case: one field changed on every object of a
/// loop) joins that batch without a lookup.
pub(crate) fn update_batches(
    objects: &[Arc<dyn Erased>],
    updates: &[(usize, Columns)],
) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<((&str, &str), &Columns), usize> = HashMap::new();
    let mut last: Option<((&str, &str), &Columns, usize)> = None;
    for (i, (at, cols)) in updates.iter().enumerate() {
        let entity = meta_id(objects[*at].entity());
        if let Some((e, c, b)) = last
            && e == entity
            && c == cols
        {
            batches[b].push(i);
            continue;
        }
        let b = *index.entry((entity, cols)).or_insert_with(|| {
            batches.push(Vec::new());
            batches.len() - 1
        });
        batches[b].push(i);
        last = Some((entity, cols, b));
    }
    batches
}

/// The deletes of a flush (in [`delete_order`]) as batches of one entity each, one batched
/// `DELETE` apiece. When the foreign keys among the deleted entities form no cycle and no
/// entity references itself, the entities go children first and each is one batch: every
/// row is then deleted after the rows that reference it, as in the per-object order.
/// Otherwise (a tree in one table, a cycle) each object is its own batch, in that order.
pub(crate) fn delete_batches(objs: &[Doomed]) -> Vec<Vec<&Doomed>> {
    let mut entities: Vec<&'static EntityMeta> = Vec::new();
    for o in objs {
        if !entities.iter().any(|e| e.is(o.entity())) {
            entities.push(o.entity());
        }
    }
    let index = |m: &EntityMeta| entities.iter().position(|e| e.is(m));
    // edges[i]: the entities entity i references (among those deleted).
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); entities.len()];
    let mut self_referencing = false;
    for (i, e) in entities.iter().enumerate() {
        for (_, fk) in e.foreign_keys() {
            if let Some(j) = index(fk.target()) {
                self_referencing |= i == j;
                edges[i].push(j);
            }
        }
    }
    let one_each = || objs.iter().map(|o| vec![o]).collect();
    if self_referencing {
        return one_each();
    }
    // Children first: an entity goes once no entity left references it.
    let mut referencing = vec![0usize; entities.len()];
    for targets in &edges {
        for &j in targets {
            referencing[j] += 1;
        }
    }
    let mut order = Vec::with_capacity(entities.len());
    let mut ready: Vec<usize> = (0..entities.len())
        .rev()
        .filter(|&i| referencing[i] == 0)
        .collect();
    while let Some(i) = ready.pop() {
        order.push(i);
        for &j in &edges[i] {
            referencing[j] -= 1;
            if referencing[j] == 0 {
                ready.push(j);
            }
        }
    }
    if order.len() < entities.len() {
        return one_each();
    }
    order
        .into_iter()
        .map(|i| objs.iter().filter(|o| o.entity().is(entities[i])).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::depths;

    #[test]
    fn depth_follows_the_longest_chain() {
        // 2 -> 1 -> 0, 3 -> 0, 3 -> 2
        let edges = [(1, 0), (2, 1), (3, 0), (3, 2)];
        assert_eq!(depths(4, &edges).unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_cycle_is_reported_with_its_members() {
        let edges = [(1, 2), (2, 1)];
        let cycle = depths(3, &edges).unwrap_err();
        assert!(cycle.contains(&1) && cycle.contains(&2), "{cycle:?}");
    }
}
