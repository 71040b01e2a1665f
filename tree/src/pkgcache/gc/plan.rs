//! Which packages to evict: a pure computation over what the inventory found. Packages go least recently
//! used first (ties by NEVRA, so the choice is the same on every run), never one that is protected, until
//! the cache is no larger than the maximum. What a package's eviction takes out of the cache is what only
//! it held: its RPM file and the objects no remaining package reaches; an object the kept tree still
//! links stays on disk until the tree goes. The kept tree goes as soon as an eviction leaves it linking an
//! object that no package reaches any more: it then holds packages the cache no longer has, and the next
//! compose would replace those paths anyway. Objects that no package reaches to begin with (the trees
//! composes committed, imports a killed run left) and stale downloads of unknown packages always go.

use std::time::SystemTime;

/// A cached package as the planner sees it.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub nevra: String,
    pub last_used: SystemTime,
    /// In the caller's keep set: never evicted.
    pub protected: bool,
    /// Indices into [`Accounting::objects`] of everything its commit reaches.
    pub objects: Vec<usize>,
    /// Its downloaded RPM, removed with it.
    pub download_bytes: u64,
}

/// One object, for the planner.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PlannedObject {
    pub bytes: u64,
    /// The kept tree links to it: its bytes stay in the cache while the tree does.
    pub in_tree: bool,
    /// Reachable from a ref that is not a package's (never evicted).
    pub rooted: bool,
}

/// Everything the cache holds, in bytes (see `inventory` for how they are counted).
#[derive(Debug, Clone, Default)]
pub(super) struct Accounting {
    pub objects: Vec<PlannedObject>,
    /// The kept tree's own inodes (not cached objects).
    pub tree_bytes: u64,
    /// What stays whatever happens: the repository's own files, downloads too recent to judge.
    pub fixed_bytes: u64,
    /// Downloads that go whatever happens (partial ones and those of no cached package, not used for a
    /// while).
    pub stale_download_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Indices into the candidates, in the order they are evicted.
    pub evict: Vec<usize>,
    pub drop_tree: bool,
    /// The cache's size once the plan is carried out.
    pub size_after: u64,
    /// `false` when the protected packages alone keep the cache above the maximum.
    pub target_reached: bool,
}

/// The plan for a cache of `candidates` and `accounting` that must end no larger than `max_size`
/// (`None`: evict nothing, only remove what no package reaches).
pub(super) fn plan(candidates: &[Candidate], accounting: &Accounting, max_size: Option<u64>) -> Plan {
    let objects = &accounting.objects;
    let mut references: Vec<u32> = objects.iter().map(|object| u32::from(object.rooted)).collect();
    for candidate in candidates {
        for &object in &candidate.objects {
            references[object] += 1;
        }
    }
    let mut state = State {
        size: accounting.fixed_bytes
            + accounting.stale_download_bytes
            + accounting.tree_bytes
            + candidates.iter().map(|candidate| candidate.download_bytes).sum::<u64>()
            + objects.iter().map(|object| object.bytes).sum::<u64>(),
        removed: vec![false; objects.len()],
        tree_kept: true,
        tree_stale: false,
    };
    state.size -= accounting.stale_download_bytes;
    for (index, count) in references.iter().enumerate() {
        if *count == 0 {
            state.release(objects, index, false);
        }
    }
    let mut order: Vec<usize> = (0..candidates.len()).filter(|index| !candidates[*index].protected).collect();
    order.sort_by(|first, second| {
        let (first, second) = (&candidates[*first], &candidates[*second]);
        (first.last_used, &first.nevra).cmp(&(second.last_used, &second.nevra))
    });
    let mut evict = Vec::new();
    if let Some(max_size) = max_size {
        for index in order {
            if state.size <= max_size {
                break;
            }
            let candidate = &candidates[index];
            state.size -= candidate.download_bytes;
            for &object in &candidate.objects {
                references[object] -= 1;
                if references[object] == 0 {
                    state.release(objects, object, true);
                }
            }
            if state.tree_stale && state.tree_kept {
                state.drop_tree(accounting);
            }
            evict.push(index);
        }
    }
    Plan {
        evict,
        drop_tree: !state.tree_kept,
        size_after: state.size,
        target_reached: max_size.is_none_or(|max_size| state.size <= max_size),
    }
}

struct State {
    size: u64,
    /// Objects whose file goes.
    removed: Vec<bool>,
    tree_kept: bool,
    /// An eviction left the tree linking an object no package reaches.
    tree_stale: bool,
}

impl State {
    fn release(&mut self, objects: &[PlannedObject], index: usize, by_eviction: bool) {
        self.removed[index] = true;
        let object = objects[index];
        if object.in_tree && self.tree_kept {
            self.tree_stale |= by_eviction;
        } else {
            self.size -= object.bytes;
        }
    }

    fn drop_tree(&mut self, accounting: &Accounting) {
        self.tree_kept = false;
        self.size -= accounting.tree_bytes;
        for (object, removed) in accounting.objects.iter().zip(&self.removed) {
            if *removed && object.in_tree {
                self.size -= object.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn candidate(nevra: &str, last_used: u64, objects: &[usize], download_bytes: u64) -> Candidate {
        Candidate {
            nevra: nevra.to_string(),
            last_used: at(last_used),
            protected: false,
            objects: objects.to_vec(),
            download_bytes,
        }
    }

    fn object(bytes: u64) -> PlannedObject {
        PlannedObject { bytes, in_tree: false, rooted: false }
    }

    fn in_tree(bytes: u64) -> PlannedObject {
        PlannedObject { bytes, in_tree: true, rooted: false }
    }

    struct Case {
        name: &'static str,
        candidates: Vec<Candidate>,
        accounting: Accounting,
        max_size: Option<u64>,
        evicted: &'static [&'static str],
        drop_tree: bool,
        size_after: u64,
        target_reached: bool,
    }

    /// Three packages of 100 bytes of objects and 10 of RPM each: `old` (used at 1), `middle` (2),
    /// `new` (3), plus 5 bytes of repository files.
    fn three_packages() -> (Vec<Candidate>, Accounting) {
        let candidates = vec![
            candidate("new-1-1.noarch", 3, &[2], 10),
            candidate("old-1-1.noarch", 1, &[0], 10),
            candidate("middle-1-1.noarch", 2, &[1], 10),
        ];
        let accounting = Accounting {
            objects: vec![object(100), object(100), object(100)],
            fixed_bytes: 5,
            ..Accounting::default()
        };
        (candidates, accounting)
    }

    #[test]
    fn evicts_least_recently_used_first_until_under_the_maximum() {
        let (three, accounting) = three_packages();
        let protect = |mut candidates: Vec<Candidate>, nevra: &str| {
            for candidate in &mut candidates {
                candidate.protected |= candidate.nevra == nevra;
            }
            candidates
        };
        let unreachable = Accounting {
            objects: vec![object(100), object(100), object(100), object(40)],
            stale_download_bytes: 7,
            ..accounting.clone()
        };
        let shared = vec![
            candidate("a-1-1.noarch", 1, &[0, 1], 0),
            candidate("b-1-1.noarch", 2, &[1], 0),
            candidate("c-1-1.noarch", 3, &[2], 0),
        ];
        let tied = vec![candidate("z-1-1.noarch", 1, &[0], 10), candidate("y-1-1.noarch", 1, &[1], 10)];
        let cases = [
            Case {
                name: "no maximum: nothing evicted",
                candidates: three.clone(),
                accounting: accounting.clone(),
                max_size: None,
                evicted: &[],
                drop_tree: false,
                size_after: 335,
                target_reached: true,
            },
            Case {
                name: "already small enough",
                candidates: three.clone(),
                accounting: accounting.clone(),
                max_size: Some(335),
                evicted: &[],
                drop_tree: false,
                size_after: 335,
                target_reached: true,
            },
            Case {
                name: "one over: the oldest goes",
                candidates: three.clone(),
                accounting: accounting.clone(),
                max_size: Some(334),
                evicted: &["old-1-1.noarch"],
                drop_tree: false,
                size_after: 225,
                target_reached: true,
            },
            Case {
                name: "two go, oldest first",
                candidates: three.clone(),
                accounting: accounting.clone(),
                max_size: Some(200),
                evicted: &["old-1-1.noarch", "middle-1-1.noarch"],
                drop_tree: false,
                size_after: 115,
                target_reached: true,
            },
            Case {
                name: "a protected package is skipped, not counted",
                candidates: protect(three.clone(), "old-1-1.noarch"),
                accounting: accounting.clone(),
                max_size: Some(300),
                evicted: &["middle-1-1.noarch"],
                drop_tree: false,
                size_after: 225,
                target_reached: true,
            },
            Case {
                name: "protected packages alone are too big: everything else goes",
                candidates: protect(protect(three.clone(), "old-1-1.noarch"), "new-1-1.noarch"),
                accounting: accounting.clone(),
                max_size: Some(100),
                evicted: &["middle-1-1.noarch"],
                drop_tree: false,
                size_after: 225,
                target_reached: false,
            },
            Case {
                name: "unreachable objects and stale downloads go without evicting",
                candidates: three.clone(),
                accounting: unreachable,
                max_size: Some(335),
                evicted: &[],
                drop_tree: false,
                size_after: 335,
                target_reached: true,
            },
            Case {
                name: "an object shared with a remaining package stays",
                candidates: shared,
                accounting: Accounting {
                    objects: vec![object(100), object(100), object(100)],
                    ..Accounting::default()
                },
                max_size: Some(150),
                evicted: &["a-1-1.noarch", "b-1-1.noarch"],
                drop_tree: false,
                size_after: 100,
                target_reached: true,
            },
            Case {
                name: "equal use times: by NEVRA",
                candidates: tied,
                accounting: Accounting { objects: vec![object(100), object(100)], ..Accounting::default() },
                max_size: Some(150),
                evicted: &["y-1-1.noarch"],
                drop_tree: false,
                size_after: 110,
                target_reached: true,
            },
        ];
        for case in cases {
            check(case);
        }
    }

    #[test]
    fn the_kept_tree_goes_once_it_links_an_evicted_object() {
        let candidates = vec![
            candidate("old-1-1.noarch", 1, &[0], 0),
            candidate("used-1-1.noarch", 2, &[1, 2], 0),
            candidate("new-1-1.noarch", 3, &[3], 0),
        ];
        // The last compose used `used` and `new`: the tree links their objects; object 4 is no package's
        // any more (a package evicted earlier) but the tree still holds it.
        let accounting = Accounting {
            objects: vec![object(100), in_tree(100), in_tree(50), in_tree(100), in_tree(30)],
            tree_bytes: 20,
            ..Accounting::default()
        };
        let cases = [
            Case {
                name: "the tree holds what no package reaches: it stays when nothing is evicted",
                candidates: candidates.clone(),
                accounting: accounting.clone(),
                max_size: None,
                evicted: &[],
                drop_tree: false,
                size_after: 400,
                target_reached: true,
            },
            Case {
                name: "evicting a package the tree does not use keeps it",
                candidates: candidates.clone(),
                accounting: accounting.clone(),
                max_size: Some(300),
                evicted: &["old-1-1.noarch"],
                drop_tree: false,
                size_after: 300,
                target_reached: true,
            },
            Case {
                name: "evicting one the tree uses drops it, with what only it held",
                candidates: candidates.clone(),
                accounting: accounting.clone(),
                max_size: Some(250),
                evicted: &["old-1-1.noarch", "used-1-1.noarch"],
                drop_tree: true,
                size_after: 100,
                target_reached: true,
            },
        ];
        for case in cases {
            check(case);
        }
    }

    fn check(case: Case) {
        let plan = plan(&case.candidates, &case.accounting, case.max_size);
        let evicted: Vec<&str> =
            plan.evict.iter().map(|index| case.candidates[*index].nevra.as_str()).collect();
        assert_eq!(evicted, case.evicted, "{}", case.name);
        assert_eq!(plan.drop_tree, case.drop_tree, "{}: tree dropped", case.name);
        assert_eq!(plan.size_after, case.size_after, "{}: size after", case.name);
        assert_eq!(plan.target_reached, case.target_reached, "{}: target reached", case.name);
    }
}
