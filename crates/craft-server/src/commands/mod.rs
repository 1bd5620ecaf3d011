//! One file per client command (and one for joining and leaving). Each is
//! an `impl World` block: the rules of the protocol applied to the game
//! loop's state.

mod block;
mod chunk;
mod drafts;
pub(crate) mod history;
mod light;
mod login;
mod position;
mod session;
mod sign;
mod talk;
mod version;
