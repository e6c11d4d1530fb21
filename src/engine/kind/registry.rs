//! The kinds a pipeline may name in `kind:`: a value the caller builds and hands to the engine
//! (the CLI gives it the recommender's kinds, a test its own), so the engine links no kind it
//! does not use — besides its own generic ones ([`select`](super::select)), which every
//! registry holds.

use super::StageKind;

/// The built-in kinds a pipeline may use, in the order "did you mean" lists them.
pub struct Registry {
    kinds: Vec<&'static dyn StageKind>,
}

impl Registry {
    /// A registry of `kinds` and the engine's own; their names must be distinct (a programming
    /// error otherwise).
    pub fn new(mut kinds: Vec<&'static dyn StageKind>) -> Registry {
        kinds.push(&super::select::Select);
        for (index, kind) in kinds.iter().enumerate() {
            assert!(
                kinds[..index]
                    .iter()
                    .all(|other| other.name() != kind.name()),
                "two kinds named `{}`",
                kind.name()
            );
        }
        Registry { kinds }
    }

    /// Looks a kind up by the name used in `kind:`.
    pub fn find(&self, name: &str) -> Option<&'static dyn StageKind> {
        self.kinds.iter().copied().find(|kind| kind.name() == name)
    }

    /// Every kind's name, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.iter().map(|kind| kind.name())
    }
}
