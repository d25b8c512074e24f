//! The stand-in's memory: orders by id and by Snap token, what each order's payer did, every notification sent
//! and what the receiver answered, and the switches the end-to-end suite flips (outage, muted notifications).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha512};

/// One Snap order, as created by `POST /snap/v1/transactions`.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub order_id: String,
    pub token: String,
    pub gross_amount: u64,
    /// Display lines for the payment page: (name, price, quantity).
    pub items: Vec<(String, u64, u64)>,
    /// From `X-Override-Notification` (Midtrans accepts up to 3, comma-separated).
    pub notification_urls: Vec<String>,
    /// From `callbacks.finish`.
    pub finish_url: Option<String>,
    pub created_at: String,
    /// The Snap create body as received, for tests that check what the worker asked for.
    pub request: Value,
    /// The transaction as the status API reports it: `None` until the payer picks a payment method.
    pub transaction: Option<Value>,
    pub notifications: Vec<SentNotification>,
}

impl Order {
    /// True once the payer's flow has ended: nothing on the payment page can change it any more.
    pub fn is_finished(&self) -> bool {
        self.transaction
            .as_ref()
            .and_then(|t| t["transaction_status"].as_str())
            .is_some_and(|s| matches!(s, "settlement" | "deny" | "expire" | "cancel" | "failure"))
    }
}

/// One notification and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct SentNotification {
    pub sent_at: String,
    pub url: Option<String>,
    pub transaction_status: String,
    pub status_code: String,
    pub body: Value,
    /// Not sent because `/_control/mute-notifications` was on.
    pub muted: bool,
    /// Whether this was a `/_control/replay`.
    pub replay: bool,
    pub answer_status: Option<u16>,
    pub answer_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Switches flipped by `/_control/*`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Switches {
    /// `Some(status)`: Snap create answers this status (503 unless told otherwise).
    pub outage: Option<u16>,
    /// During an outage, the status API fails too.
    pub outage_status_api: bool,
    /// Payments still happen (the status API sees them) but no notification is sent.
    pub mute_notifications: bool,
}

#[derive(Default)]
struct Inner {
    orders: HashMap<String, Order>,
    tokens: HashMap<String, String>,
    switches: Switches,
}

/// All state behind one lock. No `await` ever happens while it is held.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
    counter: AtomicU64,
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in another handler must not wedge the stand-in for the rest of a test run.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh UUID-shaped id (tokens, transaction ids). Unique, not secret: hashed from a counter, the clock and
    /// the process id, which is all a local stand-in needs.
    pub fn new_uuid(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let h = hex::encode(Sha512::digest(format!("{n}/{nanos}/{}", std::process::id())));
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }

    pub fn switches(&self) -> Switches {
        self.lock().switches.clone()
    }

    pub fn update_switches(&self, f: impl FnOnce(&mut Switches)) -> Switches {
        let mut inner = self.lock();
        f(&mut inner.switches);
        inner.switches.clone()
    }

    /// Stores a new order; `false` when the order id is taken.
    pub fn insert(&self, order: Order) -> bool {
        let mut inner = self.lock();
        if inner.orders.contains_key(&order.order_id) {
            return false;
        }
        inner.tokens.insert(order.token.clone(), order.order_id.clone());
        inner.orders.insert(order.order_id.clone(), order);
        true
    }

    pub fn get(&self, order_id: &str) -> Option<Order> {
        self.lock().orders.get(order_id).cloned()
    }

    pub fn by_token(&self, token: &str) -> Option<Order> {
        let inner = self.lock();
        inner.tokens.get(token).and_then(|id| inner.orders.get(id)).cloned()
    }

    /// Runs `f` on one order under the lock.
    pub fn with_order<T>(&self, order_id: &str, f: impl FnOnce(&mut Order) -> T) -> Option<T> {
        self.lock().orders.get_mut(order_id).map(f)
    }

    /// Forgets every order and resets the switches.
    pub fn reset(&self) {
        let mut inner = self.lock();
        *inner = Inner::default();
    }
}
