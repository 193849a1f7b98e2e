//! The HTTP listener: actix-server running actix-http's service for the App on one bound
//! listener, with an admission step in front of every connection.
//!
//! Builds for one listener what `HttpServer` builds (keep-alive, the first-request timeout, the
//! TLS handshake timeout, HTTP/1 half-close, graceful close of keep-alive connections at
//! shutdown), and before any of it:
//! 1. the connection takes a slot (`admission::Slots`: at most `connections_per_source_max`
//!    from one source address, `connections_max` in total) and holds it for its whole life, or
//!    is closed at once and counted;
//! 2. it must send its first bytes within the hello timeout, or is closed: a socket that only
//!    connects never reaches the TLS acceptor, whose handshakes in progress actix bounds per
//!    worker (256), so idle sockets cannot hold the handshake capacity.
//!
//! It must not look into requests: routes and their limits live in the App.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{HttpService, KeepAlive, Request, Response, TlsAcceptorConfig};
use actix_server::{GracefulShutdownSignal, Server};
use actix_service::{map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use futures_util::future::LocalBoxFuture;

use crate::admission::{AdmissionMetrics, Listener, Listing, SlotLimits, Slots};

/// How long an idle keep-alive connection stays open: 5 s (actix's default, named here because
/// `client::Client` keeps its idle connections for less, so it never reuses one the broker is
/// closing).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How long a client may take to close its side once the server closed a connection, as in
/// actix-web's `HttpServer`.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Room above `connections_max` in each worker's own bound for connections the admission step
/// is closing.
const REFUSALS_IN_FLIGHT_MAX: usize = 1024;

/// How long a graceful stop waits for the requests in flight (after the leaderships were handed
/// away) before it closes the connections still open, in seconds.
const STOP_WAIT_S: u64 = 5;

/// The connection bounds and deadlines of the listener.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    pub workers: usize,
    /// Open connections at once, all sources together.
    pub connections_max: usize,
    /// Open connections at once from one source address (an IPv6 /64).
    pub connections_per_source_max: usize,
    /// Deadline for a connection's first bytes, from its accept.
    pub hello_timeout: Duration,
    /// Deadline for the TLS handshake once its first bytes arrived.
    pub handshake_timeout: Duration,
    /// Deadline for the head of the first request once the connection is set up.
    pub request_head_timeout: Duration,
}

/// Serves the App made by `app` on `listener` (HTTPS with `tls`, plain HTTP with `None`).
/// Signals are not handled here: the caller stops the server through its handle.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    app: F,
    limits: &ConnectionLimits,
    metrics: AdmissionMetrics,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let slot_limits = SlotLimits {
        total_max: limits.connections_max,
        per_source_max: limits.connections_per_source_max,
        // Every client is unlisted: nothing is kept for particular sources on this listener.
        unlisted_max: limits.connections_max,
    };
    let slots = Slots::new(Listener::Http, slot_limits, metrics);
    let builder = Server::build()
        .workers(limits.workers)
        // Per worker, and above the total: a worker at its bound stops accepting, and the
        // connections left in the backlog would wait instead of being closed by the step.
        .max_concurrent_connections(limits.connections_max + REFUSALS_IN_FLIGHT_MAX)
        // A stopping broker answers the requests in flight, but an event stream or a long poll
        // does not hold the stop past this.
        .shutdown_timeout(STOP_WAIT_S)
        .disable_signals();
    let shutdown = builder.graceful_shutdown_signal();
    let name = format!("palisade-http-{}", listener.local_addr()?);
    let limits = limits.clone();
    // One HTTP service per worker, as `HttpServer` builds it; the App's configuration is the
    // default one, since nothing in the API reads the scheme or host from it (the client
    // address a route sees comes from the socket).
    macro_rules! http_service {
        () => {
            HttpService::build()
                .graceful_shutdown_signal(close_on(shutdown.clone()))
                .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
                .client_request_timeout(limits.request_head_timeout)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .h1_allow_half_closed(true)
                .finish(map_config(
                    app()
                        .into_factory()
                        .map_err(|error| error.into().error_response()),
                    |()| AppConfig::default(),
                ))
        };
    }
    let builder = match tls {
        Some(config) => builder.listen(name, listener, move || {
            let handshake =
                TlsAcceptorConfig::default().handshake_timeout(limits.handshake_timeout);
            let service = http_service!().rustls_0_23_with_config(config.clone(), handshake);
            Admitted::new(slots.clone(), limits.hello_timeout, service)
        })?,
        None => builder.listen(name, listener, move || {
            Admitted::new(slots.clone(), limits.hello_timeout, http_service!().tcp())
        })?,
    };
    Ok(builder.run())
}

/// The graceful-shutdown notification actix-http's dispatchers wait on to close keep-alive
/// connections, as `HttpServer` passes it.
fn close_on(
    shutdown: GracefulShutdownSignal,
) -> impl Fn() -> LocalBoxFuture<'static, ()> + 'static {
    move || {
        let shutdown = shutdown.clone();
        Box::pin(async move { shutdown.notified().await })
    }
}

/// The service factory that puts the admission step in front of `inner`.
struct Admitted<F> {
    slots: Slots,
    hello_timeout: Duration,
    inner: F,
}

impl<F> Admitted<F> {
    fn new(slots: Slots, hello_timeout: Duration, inner: F) -> Admitted<F> {
        Admitted {
            slots,
            hello_timeout,
            inner,
        }
    }
}

impl<F> ServiceFactory<TcpStream> for Admitted<F>
where
    F: ServiceFactory<TcpStream, Config = (), Response = ()>,
    F::Future: 'static,
    F::Service: 'static,
    <F::Service as Service<TcpStream>>::Future: 'static,
{
    type Response = ();
    type Error = F::Error;
    type Config = ();
    type Service = AdmittedService<F::Service>;
    type InitError = F::InitError;
    type Future = LocalBoxFuture<'static, Result<Self::Service, Self::InitError>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let slots = self.slots.clone();
        let hello_timeout = self.hello_timeout;
        let inner = self.inner.new_service(());
        Box::pin(async move {
            Ok(AdmittedService {
                slots,
                hello_timeout,
                inner: std::rc::Rc::new(inner.await?),
            })
        })
    }
}

/// One worker's admission step.
struct AdmittedService<S> {
    slots: Slots,
    hello_timeout: Duration,
    inner: std::rc::Rc<S>,
}

impl<S> Service<TcpStream> for AdmittedService<S>
where
    S: Service<TcpStream, Response = ()> + 'static,
    S::Future: 'static,
{
    type Response = ();
    type Error = S::Error;
    type Future = LocalBoxFuture<'static, Result<(), S::Error>>;

    // Ready when the TLS acceptor is: a worker whose handshakes are all in progress takes no
    // more connections until one ends.
    actix_service::forward_ready!(inner);

    fn call(&self, tcp: TcpStream) -> Self::Future {
        let slot = match tcp.peer_addr() {
            Ok(source) => self.slots.try_take(source.ip(), Listing::Unlisted).ok(),
            Err(_) => None,
        };
        let Some(slot) = slot else {
            // Dropping the socket closes it; the refusal is counted by `try_take`.
            return Box::pin(async { Ok(()) });
        };
        let inner = self.inner.clone();
        let hello_timeout = self.hello_timeout;
        Box::pin(async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(hello_timeout, tcp.peek(&mut first)).await {
                Ok(Ok(read)) if read > 0 => {}
                // Closed or failed: dropping the socket closes it.
                Ok(_) => return Ok(()),
                Err(_) => {
                    slot.count_hello_timeout();
                    // Given back before the socket closes, so its source may connect again.
                    drop(slot);
                    return Ok(());
                }
            }
            // The acceptor was ready when this connection was accepted; if another took its
            // last handshake since, it runs one more than its bound for a moment.
            let outcome = inner.call(tcp).await;
            drop(slot);
            outcome
        })
    }
}
