//! Storage for loop handles (hooks, I/O sources): a slot per handle, reused
//! after removal with a new generation so a stale id never reaches a new
//! handle, and a count of the handles that keep the loop alive.
//!
//! A handle's value (its callback) is taken out while it runs and put back
//! after, unless the handle was removed meanwhile: callbacks may add and
//! remove handles, including themselves.

/// A handle's place: (slot index, generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SlotId {
    pub key: u32,
    pub generation: u32,
}

struct Slot<T> {
    generation: u32,
    in_use: bool,
    referenced: bool,
    /// `None` while free or while the value is taken out.
    value: Option<T>,
}

pub(crate) struct HandleSlots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
    referenced: usize,
}

impl<T> HandleSlots<T> {
    pub fn new() -> Self {
        HandleSlots {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            referenced: 0,
        }
    }

    /// Handles stored.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Handles that keep the loop alive.
    pub fn referenced(&self) -> usize {
        self.referenced
    }

    /// Slots ever used (a run over `0..slot_count()` visits every handle).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Stores a new, referenced handle.
    pub fn insert(&mut self, value: T) -> SlotId {
        let key = match self.free.pop() {
            Some(k) => k,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    in_use: false,
                    referenced: false,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[key as usize];
        slot.in_use = true;
        slot.referenced = true;
        slot.value = Some(value);
        self.live += 1;
        self.referenced += 1;
        SlotId {
            key,
            generation: slot.generation,
        }
    }

    fn slot_mut(&mut self, id: SlotId) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(id.key as usize)
            .filter(|s| s.in_use && s.generation == id.generation)
    }

    /// Removes a handle. False if it was already gone.
    pub fn remove(&mut self, id: SlotId) -> bool {
        let Some(slot) = self.slot_mut(id) else {
            return false;
        };
        slot.in_use = false;
        slot.value = None;
        slot.generation = slot.generation.wrapping_add(1);
        let referenced = slot.referenced;
        self.free.push(id.key);
        self.live -= 1;
        if referenced {
            self.referenced -= 1;
        }
        true
    }

    /// Sets whether a handle keeps the loop alive. False if it is gone.
    pub fn set_referenced(&mut self, id: SlotId, referenced: bool) -> bool {
        let Some(slot) = self.slot_mut(id) else {
            return false;
        };
        if std::mem::replace(&mut slot.referenced, referenced) != referenced {
            crate::event_loop::count_reference(&mut self.referenced, referenced);
        }
        true
    }

    /// Takes a handle's value out to run it.
    pub fn take(&mut self, id: SlotId) -> Option<T> {
        self.slot_mut(id)?.value.take()
    }

    /// Takes the value of whatever handle is in slot `key` out to run it.
    pub fn take_at(&mut self, key: usize) -> Option<(SlotId, T)> {
        let slot = self.slots.get_mut(key)?;
        if !slot.in_use {
            return None;
        }
        let value = slot.value.take()?;
        Some((
            SlotId {
                key: key as u32,
                generation: slot.generation,
            },
            value,
        ))
    }

    /// Puts a value back after it ran, unless its handle was removed (or
    /// given a new value) meanwhile. True if it went back.
    pub fn put_back(&mut self, id: SlotId, value: T) -> bool {
        match self.slot_mut(id) {
            Some(slot) if slot.value.is_none() => {
                slot.value = Some(value);
                true
            }
            _ => false,
        }
    }
}
