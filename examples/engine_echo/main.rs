//! `engine-echo`: a bare Engine.IO v4 server that sends every message back to
//! the session it came from, text as text and binary as binary.
//!
//! ```text
//! cargo run -p tidewire-examples --bin engine-echo
//! PORT=0 PING_INTERVAL_MS=200 PING_TIMEOUT_MS=200 RUST_LOG=debug cargo run -p tidewire-examples --bin engine-echo
//! ```
//!
//! Environment:
//! - `HOST` (default `127.0.0.1`) and `PORT` (default `3000`; `0` picks a free port);
//! - `PING_INTERVAL_MS`, `PING_TIMEOUT_MS`, `MAX_PAYLOAD` (bytes): engine options,
//!   the engine's defaults when unset;
//! - `RUST_LOG`: log filter (default `info`); logs go to stderr.
//! - `TIDEWIRE_HTTP=hyper`: serve with `axum::serve` (hyper) instead of the default
//!   lean HTTP/1.1 server `tidewire_engine::http1::serve` (docs/http1.md).
//!
//! Once bound it prints exactly one line, `listening on http://HOST:PORT`, to
//! stdout: the interop tests start it with `PORT=0` and read the real port
//! from that line. Engine.IO is served at the engine's default path
//! (`/socket.io/`); `GET /` answers with a short text page. Ctrl-C or SIGTERM
//! closes every session with a close packet and stops the server.

use std::{
    error::Error,
    io::{IsTerminal as _, Write as _},
    net::SocketAddr,
    process::ExitCode,
    str::FromStr,
    time::Duration,
};

use axum::{routing::get, Router};
use tidewire_engine::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Session};
use tracing_subscriber::EnvFilter;

/// Sends every message back where it came from.
struct Echo;

impl EngineHandler for Echo {
    type Data = ();

    fn on_open(&self, _session: &Session<()>) {
        tracing::debug!("session opened");
    }

    fn on_message(&self, session: &Session<()>, message: Message) {
        // A full outgoing queue closes the session on the engine side; nothing to do here.
        let _ = session.send_message(message);
    }

    fn on_close(&self, _session: &Session<()>, reason: CloseReason) {
        tracing::debug!(%reason, "session closed");
    }
}

/// Reads an optional environment variable, naming it in the error when it does not parse.
fn env_var<T>(name: &str) -> Result<Option<T>, Box<dyn Error>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("invalid {name}={raw:?}: {e}").into()),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("invalid {name}: {e}").into()),
    }
}

fn config_from_env() -> Result<EngineConfig, Box<dyn Error>> {
    let mut builder = EngineConfig::builder();
    if let Some(ms) = env_var::<u64>("PING_INTERVAL_MS")? {
        builder = builder.ping_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = env_var::<u64>("PING_TIMEOUT_MS")? {
        builder = builder.ping_timeout(Duration::from_millis(ms));
    }
    if let Some(bytes) = env_var::<usize>("MAX_PAYLOAD")? {
        builder = builder.max_payload(bytes);
    }
    Ok(builder.build())
}

async fn index() -> &'static str {
    "tidewire engine-echo\n\n\
     An Engine.IO v4 server (no Socket.IO layer) that echoes every message back to its sender.\n\
     Connect an engine.io-client (v6) with { path: '/socket.io/' }.\n"
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = env_var::<u16>("PORT")?.unwrap_or(3000);
    let config = config_from_env()?;

    let engine = Engine::new(config, Echo);
    let app = Router::new().route("/", get(index)).merge(engine.router());

    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot bind {host}:{port}: {e}"))?;
    // SocketAddr's Display brackets IPv6 addresses, so this is a usable URL either way.
    let local = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}")?;
        stdout.flush()?;
    }
    tracing::info!(%local, "engine-echo ready");

    // `engine.shutdown()` runs as soon as the signal arrives, before axum waits
    // for connections to drain: graceful shutdown waits for in-flight
    // requests, and a held long-poll would otherwise keep it waiting for up to
    // a ping interval. Closing the sessions answers those polls (and sends a
    // close packet on every WebSocket).
    let shutdown_engine = engine.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown_engine.shutdown().await;
    };
    if std::env::var("TIDEWIRE_HTTP").as_deref() == Ok("hyper") {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
    } else {
        tidewire_engine::http1::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
    }
    Ok(())
}
