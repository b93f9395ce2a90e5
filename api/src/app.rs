//! `Application::build` binds the listener and wires everything; `run_until_stopped` serves
//! until SIGTERM or Ctrl-C and lets in-flight requests finish.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rand::RngExt;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::jwt::JwtKeys;
use crate::config::{Secret, Settings};
use crate::files::signing::FileSigner;
use crate::graphql::http::{EXPLORER_CSP, GraphqlState, graphql_get, graphql_post};
use crate::graphql::websocket::graphql_ws;
use crate::limits::RateLimits;
use crate::realtime::EventBus;
use crate::server::{self, ConnectionLimits};
use crate::service::{admins, retention};
use crate::state::{AppState, Inner};
use crate::{database, graphql, web};

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    connections: ConnectionLimits,
}

impl Application {
    /// Connects, migrates, makes sure an admin exists, and binds (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let jwt_secret = jwt_secret(&settings)?;
        let query_count = Arc::new(AtomicU64::new(0));
        let pool = database::connect(&settings).await?;
        let db = database::counted(&pool, query_count.clone());
        database::migrate(&db).await?;
        if let Some((admin, generated)) = admins::ensure_first_admin(
            &db,
            settings.admin_email.as_deref(),
            settings.admin_password.as_ref().map(Secret::expose),
        )
        .await
        .map_err(anyhow::Error::from)
        .context("cannot create the first admin")?
        {
            match generated {
                // Printed once, on purpose: there is no other way to learn it.
                Some(password) => tracing::warn!(
                    "created admin {} with password {password} (sign in at /admin666 and keep it safe; change it with `chatdesk admin passwd`)",
                    admin.email
                ),
                None => tracing::info!("created admin {}", admin.email),
            }
        }

        let descriptors = server::raise_descriptor_limit();
        let connections = ConnectionLimits::new(&settings, descriptors);
        let listener = TcpListener::bind(settings.bind)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", settings.bind))?;

        let notify =
            crate::notify::Notify::new(&settings, jwt_secret.expose().as_bytes(), pool.clone())?;
        let limits = RateLimits::connect(&settings).await?;
        tracing::info!(store = limits.store_name(), "rate limits");
        let hooks =
            crate::webhooks::Hooks::new(&settings, jwt_secret.expose().as_bytes(), pool.clone());
        hooks
            .refresh(&pool)
            .await
            .map_err(|error| anyhow::anyhow!("cannot read the webhook endpoints: {error}"))?;
        let bus = if settings.is_postgres() {
            // Its NOTIFYs go out in the background, not as part of any request.
            EventBus::postgres(pool)
        } else {
            EventBus::in_process()
        };
        let storage = crate::storage::from_settings(&settings.storage)
            .map_err(anyhow::Error::from)
            .context("CHATDESK_STORAGE")?;
        let state = AppState::new(Inner {
            jwt: JwtKeys::new(jwt_secret.expose().as_bytes()),
            visitor_chats: Default::default(),
            admin_rows: Default::default(),
            file_signer: FileSigner::new(jwt_secret.expose().as_bytes()),
            storage,
            bus,
            limits,
            query_count,
            local_address: listener.local_addr()?,
            open_sockets: Default::default(),
            notify,
            chat_subscriptions: Default::default(),
            hooks,
            db,
            settings,
        });
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
            connections,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then stops accepting and finishes in-flight requests.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (background, listening) = spawn_background_tasks(&self.state);
        // On Postgres, serve only once this instance hears the others (LISTEN is up): a
        // notice published meanwhile (a changed password, an erased chat) would be missed,
        // and what it should end would live on here. Connections wait in the backlog.
        if let Some(listening) = listening
            && tokio::time::timeout(LISTEN_READY_WAIT, listening)
                .await
                .is_err()
        {
            tracing::warn!("serving before the LISTEN connection is up (Postgres is slow)");
        }
        tracing::info!(address = %self.listener.local_addr()?, "chatdesk is listening");
        let result = server::serve(
            self.listener,
            self.router,
            self.connections,
            self.state.settings.header_read_timeout,
            stop,
        )
        .await;
        for task in background {
            task.abort();
        }
        result
    }
}

/// How long a starting instance waits for its LISTEN connection before serving anyway.
const LISTEN_READY_WAIT: Duration = Duration::from_secs(10);

/// The background tasks, and on Postgres a signal that fires once LISTEN is up.
fn spawn_background_tasks(
    state: &AppState,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    Option<tokio::sync::oneshot::Receiver<()>>,
) {
    let limits = state.limits.clone();
    let prune = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.prune().await;
        }
    });
    let jobs_state = state.clone();
    let jobs = tokio::spawn(async move {
        // Retention and the orphan sweep, hourly; the first run a minute after start.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let state = &jobs_state;
            match retention::run_jobs(
                &state.db,
                state.storage.as_ref(),
                &state.bus,
                &state.hooks,
                state.settings.retention_days,
                state.settings.chat_retention_days,
            )
            .await
            {
                Ok(report) => tracing::info!(?report, "retention and orphan sweep done"),
                Err(error) => {
                    tracing::warn!(error = error.report(), "retention and orphan sweep failed")
                }
            }
        }
    });
    // The recorder keeps every histogram sample until it is folded into the summaries; built
    // with `build_recorder` (not `install`) nothing does that unless we do, and an unscraped
    // server would hold 8 bytes per request for ever.
    let metrics = prometheus();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    });
    let forget = tokio::spawn(crate::service::erasure::forget_erased_chats(
        state.bus.clone(),
        state.clone(),
    ));
    let mut tasks = vec![prune, jobs, upkeep, forget];
    tasks.extend(state.notify.spawn_worker(&state.settings));
    tasks.extend(state.hooks.spawn());
    let mut listening = None;
    if state.settings.is_postgres() {
        let admins = state.clone();
        let (ready, ready_seen) = tokio::sync::oneshot::channel();
        listening = Some(ready_seen);
        tasks.push(tokio::spawn(state.bus.clone().listen(
            state.settings.database_url.clone(),
            ready,
            move |admin_id| admins.admin_rows.forget(admin_id),
        )));
    }
    (tasks, listening)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The configured secret, or one generated once and kept in the data folder. Several
/// Postgres-backed instances must share one, so there it must be configured.
fn jwt_secret(settings: &Settings) -> anyhow::Result<Secret> {
    if let Some(secret) = &settings.jwt_secret {
        if secret.expose().len() < 32 {
            anyhow::bail!("CHATDESK_JWT_SECRET must be at least 32 characters");
        }
        return Ok(secret.clone());
    }
    if settings.is_postgres() {
        anyhow::bail!(
            "CHATDESK_JWT_SECRET is required with Postgres (every instance must share it): set it to 32+ random characters"
        );
    }
    let path = settings.data_dir.join("jwt.secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(Secret::new(existing));
        }
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(|error| {
        anyhow::anyhow!("cannot create {}: {error}", settings.data_dir.display())
    })?;
    let bytes: [u8; 32] = rand::rng().random();
    let secret = crate::auth::visitor_token::hex(&bytes);
    write_private(&path, &secret)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    Ok(Secret::new(secret))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// A header value from our own settings; a value that cannot be one (a newline in the public
/// URL) leaves the header empty rather than failing the start.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Installing fails only when another recorder is set; then metrics go there and
            // ours renders empty, which is acceptable.
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

fn router(state: AppState) -> Router {
    let settings = &state.settings;
    let schema = graphql::build_schema(state.clone());
    let graphql_state = GraphqlState::new(state.clone(), schema);
    let graphql = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes()))
        .with_state(graphql_state);

    let clients = &settings.clients_dir;
    let admin_page = Router::new()
        .fallback_service(ServeDir::new(clients.join("admin")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            header_value(&web::admin_page_csp(settings)),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    let widget = Router::new()
        .fallback_service(ServeDir::new(clients.join("widget")))
        // Widgets are fetched by every page view of every host site: cache for an hour, then
        // revalidate (ETag/Last-Modified), so a new release spreads within the hour.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ));
    // The API explorer's script and style (its page is GET /graphql with Accept: text/html).
    let explorer = Router::new()
        .fallback_service(ServeDir::new(clients.join("explorer")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(EXPLORER_CSP),
        ));
    let demo = Router::new()
        .fallback_service(
            ServeDir::new(clients.join("demo"))
                .fallback(ServeFile::new(clients.join("demo/index.html"))),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            header_value(&web::demo_page_csp(settings)),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ));

    let metrics_handle = prometheus();
    Router::new()
        .merge(graphql)
        .route(
            "/api/chat/files/{id}",
            get(crate::downloads::files::original).with_state(state.clone()),
        )
        .route(
            "/api/chat/files/{id}/thumbnail",
            get(crate::downloads::files::thumbnail).with_state(state.clone()),
        )
        .route(
            "/api/notify/unsubscribe",
            get(crate::notify::web::unsubscribe_page)
                .post(crate::notify::web::unsubscribe)
                .with_state(state.clone()),
        )
        .route(
            "/api/chat/transcripts/{id}",
            get(crate::downloads::transcript::html).with_state(state.clone()),
        )
        .route(
            "/api/chat/transcripts/{id}/json",
            get(crate::downloads::transcript::json).with_state(state.clone()),
        )
        .route("/healthz", get(web::healthz))
        .route("/readyz", get(web::readyz).with_state(state.clone()))
        .route(
            "/metrics",
            get(web::metrics).with_state(web::MetricsState {
                handle: metrics_handle,
                token: settings.metrics_token.clone(),
            }),
        )
        .route(
            "/admin666",
            get(|| async { axum::response::Redirect::permanent("/admin666/") }),
        )
        .nest_service("/admin666/", admin_page)
        .nest_service("/widget", widget)
        .nest_service("/explorer", explorer)
        .fallback_service(demo)
        .layer(axum::middleware::from_fn(web::track_requests))
        .layer(web::cors(settings))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            let body =
                serde_json::json!({ "error": { "code": "INTERNAL", "message": "internal error" } });
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }))
}
