//! Donations: the rules every donation input follows (`rules`: amounts, donor names, messages, order ids, each
//! limit once) and the status state machine (`status`: what a Midtrans outcome does to a stored donation).

mod rules;
mod status;

pub use rules::*;
pub use status::*;
