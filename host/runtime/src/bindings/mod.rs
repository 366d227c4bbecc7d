//! Host bindings, one module per released version of `talon:plugin`
//! (see `wit/README.md`): a version's folder is frozen, and so is its
//! binding here. The 0.1.0 items are re-exported at this level because
//! tools and skills are only loaded through 0.1.0 so far.

mod v0_1_0;
pub(crate) mod v0_1_0_hand;
pub(crate) mod v0_2_0;
pub(crate) mod v0_2_0_hand;

pub use v0_1_0::*;
