//! [`Queue`]: an owned libsolv `Queue` (a growable array of `Id`s) freed on drop.

#![allow(unsafe_code)]

use libsolv_sys as sys;

/// An initialised libsolv queue. The C struct holds no pointer to itself, so it may be moved.
pub(crate) struct Queue {
    raw: sys::Queue,
}

impl Queue {
    pub(crate) fn new() -> Self {
        let mut raw = sys::Queue::default();
        // SAFETY: `raw` is a valid, writable Queue struct; queue_init only initialises its fields.
        unsafe { sys::queue_init(&mut raw) };
        Queue { raw }
    }

    pub(crate) fn push(&mut self, id: sys::Id) {
        // SAFETY: `self.raw` was initialised by queue_init and is exclusively borrowed.
        unsafe { sys::queue_push(&mut self.raw, id) };
    }

    pub(crate) fn push2(&mut self, first: sys::Id, second: sys::Id) {
        // SAFETY: `self.raw` was initialised by queue_init and is exclusively borrowed.
        unsafe { sys::queue_push2(&mut self.raw, first, second) };
    }

    /// Removes all elements, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        // SAFETY: `self.raw` was initialised by queue_init and is exclusively borrowed.
        unsafe { sys::queue_empty(&mut self.raw) };
    }

    pub(crate) fn as_slice(&self) -> &[sys::Id] {
        let Ok(count) = usize::try_from(self.raw.count) else { return &[] };
        if count == 0 || self.raw.elements.is_null() {
            return &[];
        }
        // SAFETY: an initialised queue's `elements` points to `count` initialised Ids, and the
        // borrow of `self` keeps the queue from being changed or freed while the slice lives.
        unsafe { std::slice::from_raw_parts(self.raw.elements, count) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The pointer to pass to libsolv functions that read or fill a queue.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut sys::Queue {
        &mut self.raw
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `self.raw` was initialised by queue_init and is freed exactly once, here.
        unsafe { sys::queue_free(&mut self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back() {
        let mut queue = Queue::new();
        assert!(queue.is_empty());
        queue.push2(7, 8);
        for value in 0..500 {
            queue.push2(value, -value);
        }
        assert_eq!(&queue.as_slice()[..4], &[7, 8, 0, 0]);
        assert_eq!(queue.as_slice().len(), 1002);
        queue.clear();
        assert!(queue.is_empty());
        queue.push2(1, 2);
        assert_eq!(queue.as_slice(), &[1, 2]);
    }
}
