//! Idle, prepare and check hooks: callbacks that run once every tick in their
//! phase until removed (libuv's `uv_idle_t`, `uv_prepare_t`, `uv_check_t`).
//!
//! An active idle hook makes the poll phase non-blocking, as in libuv. Hooks
//! keep the loop alive unless unreferenced.

use crate::event_loop::Loop;

/// Which per-tick phase a hook runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// Runs every tick before prepare; while any is active, poll does not block.
    Idle,
    /// Runs every tick just before the poll phase.
    Prepare,
    /// Runs every tick just after the poll phase, before immediates.
    Check,
}

/// Identifies a hook for [`Loop::remove_hook`] and [`Loop::unref_hook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId {
    kind: HookKind,
    key: u32,
    generation: u32,
}

impl HookId {
    pub(crate) fn kind(self) -> HookKind {
        self.kind
    }
}

type HookFn = Box<dyn FnMut(&Loop)>;

struct Slot {
    generation: u32,
    in_use: bool,
    referenced: bool,
    /// `None` while running.
    callback: Option<HookFn>,
}

/// The hooks of one kind, run in insertion order.
pub(crate) struct HookList {
    kind: HookKind,
    slots: Vec<Slot>,
    free: Vec<u32>,
    active: usize,
    referenced: usize,
}

impl HookList {
    pub fn new(kind: HookKind) -> Self {
        HookList {
            kind,
            slots: Vec::new(),
            free: Vec::new(),
            active: 0,
            referenced: 0,
        }
    }

    pub fn active(&self) -> usize {
        self.active
    }

    pub fn referenced(&self) -> usize {
        self.referenced
    }

    pub fn add(&mut self, callback: HookFn) -> HookId {
        let key = match self.free.pop() {
            Some(k) => k,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    in_use: false,
                    referenced: false,
                    callback: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[key as usize];
        slot.in_use = true;
        slot.referenced = true;
        slot.callback = Some(callback);
        self.active += 1;
        self.referenced += 1;
        HookId {
            kind: self.kind,
            key,
            generation: slot.generation,
        }
    }

    fn slot_mut(&mut self, id: HookId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.key as usize)
            .filter(|s| s.in_use && s.generation == id.generation)
    }

    pub fn remove(&mut self, id: HookId) -> bool {
        let Some(slot) = self.slot_mut(id) else {
            return false;
        };
        slot.in_use = false;
        slot.callback = None;
        slot.generation = slot.generation.wrapping_add(1);
        let referenced = slot.referenced;
        self.free.push(id.key);
        self.active -= 1;
        if referenced {
            self.referenced -= 1;
        }
        true
    }

    pub fn set_referenced(&mut self, id: HookId, referenced: bool) -> bool {
        let Some(slot) = self.slot_mut(id) else {
            return false;
        };
        if std::mem::replace(&mut slot.referenced, referenced) != referenced {
            crate::event_loop::count_reference(&mut self.referenced, referenced);
        }
        true
    }

    /// Number of slots to visit this tick (hooks added meanwhile wait a tick).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Takes the callback at `index` out for running.
    pub fn take(&mut self, index: usize) -> Option<(HookId, HookFn)> {
        let slot = self.slots.get_mut(index)?;
        if !slot.in_use {
            return None;
        }
        let callback = slot.callback.take()?;
        Some((
            HookId {
                kind: self.kind,
                key: index as u32,
                generation: slot.generation,
            },
            callback,
        ))
    }

    /// Puts a callback back unless its hook was removed while it ran.
    pub fn put_back(&mut self, id: HookId, callback: HookFn) {
        if let Some(slot) = self.slot_mut(id) {
            slot.callback = Some(callback);
        }
    }
}
