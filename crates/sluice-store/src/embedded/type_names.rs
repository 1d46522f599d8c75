//! The writer's shared copies of event type names.
//!
//! A staged event used to keep its type as a slice of the request body until its batch
//! was published, after the sync. By then the body had left the core's caches: the
//! batch's `pwrite` and the next batch's staging pass megabytes through them. Publishing
//! read each type name twice more (the index's interner and the checkpoint's), and
//! `perf` put ~6 % of the server's cycles under batch ingest in those two compares, most
//! of it waiting for memory. Staging now swaps the body's slice for one shared copy of
//! the name, read while the body is still hot; publishing compares that copy, which
//! stays cached because every event of the type points at it. The body's buffer is also
//! free to go as soon as its events are encoded, instead of after the sync.

use std::collections::HashSet;

use bytes::Bytes;

/// Distinct names kept. Types are few in practice; past this a producer inventing
/// types gets the old behaviour (the name stays a slice of its body), and memory stays
/// bounded.
const NAMES_MAX: usize = 4096;

/// One shared `Bytes` per distinct event type seen by the writer.
#[derive(Debug, Default)]
pub(super) struct TypeNames {
    names: HashSet<Bytes>,
    /// The last name handed out: most batches repeat one type.
    last: Bytes,
}

impl TypeNames {
    /// The shared copy of `name`, or `name` itself once the table is full.
    pub(super) fn shared(&mut self, name: &Bytes) -> Bytes {
        if self.last == *name {
            return self.last.clone();
        }
        let shared = match self.names.get(name) {
            Some(known) => known.clone(),
            None if self.names.len() < NAMES_MAX => {
                let copy = Bytes::copy_from_slice(name);
                self.names.insert(copy.clone());
                copy
            }
            None => return name.clone(),
        };
        self.last = shared.clone();
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_one_copy_per_name_and_stops_copying_when_full() {
        let mut names = TypeNames::default();
        let body = Bytes::from_static(b"xx order.created yy order.created");
        let first = names.shared(&body.slice(3..16));
        let second = names.shared(&body.slice(20..33));
        assert_eq!(first, "order.created");
        // The same allocation, not a slice of the body.
        assert_eq!(first.as_ptr(), second.as_ptr());
        assert!(!body.as_ptr_range().contains(&first.as_ptr()));
        let other = names.shared(&Bytes::from_static(b"b"));
        assert_eq!(names.shared(&body.slice(3..16)).as_ptr(), first.as_ptr());
        assert_eq!(other, "b");

        for i in names.names.len()..NAMES_MAX {
            names.shared(&Bytes::from(format!("t{i}")));
        }
        let late = Bytes::from_static(b"one.too.many");
        assert_eq!(names.shared(&late).as_ptr(), late.as_ptr());
        assert_eq!(names.names.len(), NAMES_MAX);
    }
}
