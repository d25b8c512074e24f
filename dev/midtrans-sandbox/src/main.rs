//! Starts the Midtrans stand-in on 127.0.0.1:$SUNNYLIVE_MIDTRANS_PORT (default 8790; 0 picks a free port) with
//! the server key from `MIDTRANS_SERVER_KEY` (default: the development key in `.dev.vars`). Prints one line,
//! `midtrans-sandbox listening on http://127.0.0.1:<port>`, once it accepts connections.

use std::net::SocketAddr;

use midtrans_sandbox::{router, Config, DEFAULT_PORT, DEFAULT_SERVER_KEY};

#[tokio::main]
async fn main() {
    let port = match std::env::var("SUNNYLIVE_MIDTRANS_PORT") {
        Ok(p) if !p.is_empty() => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("SUNNYLIVE_MIDTRANS_PORT={p:?} is not a port number");
                std::process::exit(2);
            }
        },
        _ => DEFAULT_PORT,
    };
    let server_key = std::env::var("MIDTRANS_SERVER_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER_KEY.to_string());
    // Loopback only: this service hands out "payments" to anyone who asks.
    let listener = match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("midtrans-sandbox: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let public_url = std::env::var("MIDTRANS_SANDBOX_PUBLIC_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://127.0.0.1:{bound}"));
    let app = router(Config {
        server_key,
        public_url: public_url.trim_end_matches('/').to_string(),
        notify_origin: std::env::var("MIDTRANS_SANDBOX_NOTIFY_ORIGIN")
            .ok()
            .filter(|u| !u.is_empty()),
    });
    println!("midtrans-sandbox listening on http://127.0.0.1:{bound}");
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        ctrl_c.await.unwrap_or(());
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        eprintln!("midtrans-sandbox: server error: {e}");
        std::process::exit(1);
    }
}
