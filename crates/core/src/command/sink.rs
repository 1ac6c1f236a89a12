//! Where extracted keys go: plain indexes, or indexes with how the
//! command uses each key. Shared by the key-spec walk (`keys`) and the
//! commands' own finders (`procs`).

use super::spec::KeySpecFlags;

/// A key argument: its index in the arguments and how the command uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub index: usize,
    pub flags: KeySpecFlags,
}

/// Where extracted keys go: plain indexes or [`KeyRef`]s.
pub(super) trait KeySink {
    /// Whether the sink keeps each key's flags (else only its index).
    const FLAGS: bool;
    fn push_key(&mut self, index: usize, flags: KeySpecFlags);
    fn len(&self) -> usize;
    fn truncate(&mut self, len: usize);
}

impl KeySink for Vec<usize> {
    const FLAGS: bool = false;
    fn push_key(&mut self, index: usize, _flags: KeySpecFlags) {
        self.push(index);
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

impl KeySink for Vec<KeyRef> {
    const FLAGS: bool = true;
    fn push_key(&mut self, index: usize, flags: KeySpecFlags) {
        self.push(KeyRef { index, flags });
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}
