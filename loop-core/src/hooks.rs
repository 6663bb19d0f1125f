//! Idle, prepare and check hooks: callbacks that run once every tick in their
//! phase until removed (libuv's `uv_idle_t`, `uv_prepare_t`, `uv_check_t`).
//!
//! An active idle hook makes the poll phase non-blocking, as in libuv. Hooks
//! keep the loop alive unless unreferenced.

use crate::event_loop::Loop;
use crate::handle_slots::{HandleSlots, SlotId};

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

/// The hooks of one kind, run in insertion order.
pub(crate) struct HookList {
    kind: HookKind,
    slots: HandleSlots<HookFn>,
}

impl HookList {
    pub fn new(kind: HookKind) -> Self {
        HookList {
            kind,
            slots: HandleSlots::new(),
        }
    }

    pub fn active(&self) -> usize {
        self.slots.live()
    }

    pub fn referenced(&self) -> usize {
        self.slots.referenced()
    }

    fn slot_id(id: HookId) -> SlotId {
        SlotId {
            key: id.key,
            generation: id.generation,
        }
    }

    pub fn add(&mut self, callback: HookFn) -> HookId {
        let SlotId { key, generation } = self.slots.insert(callback);
        HookId {
            kind: self.kind,
            key,
            generation,
        }
    }

    pub fn remove(&mut self, id: HookId) -> bool {
        self.slots.remove(Self::slot_id(id))
    }

    pub fn set_referenced(&mut self, id: HookId, referenced: bool) -> bool {
        self.slots.set_referenced(Self::slot_id(id), referenced)
    }

    /// Number of slots to visit this tick (hooks added meanwhile wait a tick).
    pub fn slot_count(&self) -> usize {
        self.slots.slot_count()
    }

    /// Takes the callback at `index` out for running.
    pub fn take(&mut self, index: usize) -> Option<(HookId, HookFn)> {
        let (SlotId { key, generation }, callback) = self.slots.take_at(index)?;
        Some((
            HookId {
                kind: self.kind,
                key,
                generation,
            },
            callback,
        ))
    }

    /// Puts a callback back unless its hook was removed while it ran.
    pub fn put_back(&mut self, id: HookId, callback: HookFn) {
        self.slots.put_back(Self::slot_id(id), callback);
    }
}
