//! Sunnylive's pure core: newtypes for every outside input, tokens, stream-key derivation, Midtrans rules, and the
//! donation and chat-room state machines. Nothing here imports `worker` or reads a clock or a random source: callers
//! pass `now` and random bytes in, so every rule is unit-tested on the host in seconds.

pub mod account;
pub mod cache;
pub mod chat;
pub mod clip;
pub mod donation;
pub mod error;
pub mod hls;
pub mod ids;
pub mod midtrans;
pub mod moderation;
pub mod output;
pub mod page;
pub mod password;
pub mod rate_limit;
pub mod replay;
pub mod replica;
pub mod request_log;
pub mod secret;
pub mod sign_in;
pub mod stream;
pub mod stream_key;
pub mod token;
