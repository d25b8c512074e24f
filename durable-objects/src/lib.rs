//! Sunnylive's Durable Objects. (The ChatRoom lands with the chat issue.)
