//! The router's table of exact paths (routes without parameters), looked up
//! once per request.
//!
//! A path is keyed by its length and its first and last eight bytes
//! (overlapping in a short path): for a path of up to 16 bytes, as most
//! route paths are, those three words *are* the path, so a lookup compares
//! three integers and never calls `memcmp`; a longer path is compared whole
//! once its words match. Open addressing with linear probing over a table
//! at most half full. The table holds only the app's own paths and never
//! grows from requests, so a request path crafted to collide costs at most
//! a few probes: no need for SipHash's flooding resistance.

/// Paths this long or shorter are known exactly by their key.
const KEY_EXACT_MAX: usize = 16;

/// A path's length and first and last (up to) eight bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    len: usize,
    first: u64,
    last: u64,
}

impl Key {
    fn of(path: &[u8]) -> Key {
        let n = path.len();
        let word = |at: usize| u64::from_le_bytes(path[at..at + 8].try_into().expect("8"));
        let half =
            |at: usize| u64::from(u32::from_le_bytes(path[at..at + 4].try_into().expect("4")));
        let (first, last) = match n {
            8.. => (word(0), word(n - 8)),
            4..8 => (half(0), half(n - 4)),
            _ => (path.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b)), 0),
        };
        Key {
            len: n,
            first,
            last,
        }
    }

    fn hash(&self) -> u64 {
        let mix =
            |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        mix(mix(mix(0, self.len as u64), self.first), self.last)
    }
}

struct Entry<V> {
    key: Key,
    path: Box<[u8]>,
    value: V,
}

/// A map from exact paths to `V`.
pub(crate) struct PathTable<V> {
    entries: Vec<Entry<V>>,
    /// Entry index + 1 per slot; 0 is an empty slot. A power of two long.
    slots: Vec<u32>,
}

impl<V> Default for PathTable<V> {
    fn default() -> Self {
        PathTable {
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl<V: Default> PathTable<V> {
    /// The value of `path`, inserted as `V::default()` if absent.
    pub fn entry(&mut self, path: &[u8]) -> &mut V {
        let key = Key::of(path);
        let index = match self.find(key, path) {
            Some(index) => index,
            None => {
                self.entries.push(Entry {
                    key,
                    path: path.into(),
                    value: V::default(),
                });
                self.index_entries();
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].value
    }
}

impl<V> PathTable<V> {
    /// The value of `path`, if it is in the table.
    #[inline(always)] // into the connection's parse (see `scan_plain_fields`)
    pub fn get(&self, path: &[u8]) -> Option<&V> {
        let index = self.find(Key::of(path), path)?;
        Some(&self.entries[index].value)
    }

    // Inlined into `get`: a call would cost as much as the probe.
    #[inline(always)]
    fn find(&self, key: Key, path: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = key.hash() as usize & mask;
        loop {
            let index = self.slots[at].checked_sub(1)? as usize;
            let entry = &self.entries[index];
            if entry.key == key && (key.len <= KEY_EXACT_MAX || *entry.path == *path) {
                return Some(index);
            }
            at = (at + 1) & mask;
        }
    }

    /// Rebuilds the slots for the entries, keeping them at most half full.
    fn index_entries(&mut self) {
        let size = (self.entries.len() * 2).next_power_of_two().max(8);
        if self.slots.len() != size {
            self.slots = vec![0; size];
        } else {
            self.slots.fill(0);
        }
        let mask = size - 1;
        for (index, entry) in self.entries.iter().enumerate() {
            let mut at = entry.key.hash() as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = index as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_finds_its_own_value_and_near_misses_find_none() {
        // Lengths 0 to 40, pairs differing only in a middle byte (the same
        // key words), and paths one byte longer or shorter.
        let mut paths: Vec<Vec<u8>> = Vec::new();
        let alphabet = b"/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH";
        for len in 0..=40 {
            let base = alphabet[..len].to_vec();
            if len >= 3 {
                let mut middle = base.clone();
                middle[len / 2] = b'-';
                paths.push(middle);
            }
            paths.push(base);
        }
        let mut table = PathTable::<usize>::default();
        for (i, p) in paths.iter().enumerate() {
            *table.entry(p) = i + 1;
        }
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(
                table.get(p),
                Some(&(i + 1)),
                "{:?}",
                String::from_utf8_lossy(p)
            );
            let mut longer = p.clone();
            longer.push(b'~');
            assert_eq!(table.get(&longer), None);
            let mut changed = p.clone();
            if let Some(b) = changed.last_mut() {
                *b = b'~';
                assert_eq!(table.get(&changed), None);
            }
        }
        // Inserting again finds the same entry.
        let abc = paths.iter().position(|p| p == b"/abc").unwrap();
        assert_eq!(*table.entry(b"/abc"), abc + 1);
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let table = PathTable::<u8>::default();
        assert_eq!(table.get(b"/"), None);
    }
}
