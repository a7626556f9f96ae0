//! The web board (`board.listen`): server-rendered HTML pages of the jobs this party schedules
//! (the list, a job with its DAG as SVG, a task with its attempts, log tail, outputs and metric
//! plots, the queue), one static script and one stylesheet compiled in. A job page keeps its
//! task statuses live from `/jobs/{id}/events`, Server-Sent Events fed by the same watch
//! (`App::watch_job`) `WatchJob` streams, so nothing reloads.
//!
//! It is an adapter like `grpc`: every page is one or two app calls and a render. Every value
//! that comes from a user (ids, names, reasons, logs, metric names) is escaped in [`pages`].
//! When `api.token_file` is set, every route (the static files too) asks for that token.

mod data;
mod pages;
mod svg;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use fedflow_core::JobStatus;
use fedflow_core::ids::JobId;
use fedflow_rpc::error::{Code, ServiceError};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, App};
use crate::domain::model::{Cursor, JobFilter, ListJobs};
use crate::events::Event;

/// The cookie a `?token=` login sets (the token, hex-encoded).
const COOKIE: &str = "fedflow_board_token";

/// Jobs per page of the job list.
const PAGE: u32 = 50;

/// Waiting jobs the queue page and a job's queue position look at.
const QUEUE_SCAN: u32 = 1_000;

/// Why a page could not be shown; rendered as an HTML page with its status code.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    App(#[from] app::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Error::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Error::App(e) => {
                let status = match e.code() {
                    Code::InvalidArgument => StatusCode::BAD_REQUEST,
                    Code::NotFound => StatusCode::NOT_FOUND,
                    Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
                    Code::FailedPrecondition => StatusCode::CONFLICT,
                    Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "board page failed");
                    (
                        status,
                        "internal error (see the scheduler's log)".to_owned(),
                    )
                } else {
                    (status, e.to_string())
                }
            }
        };
        (status, Html(pages::error(status.as_u16(), &message))).into_response()
    }
}

/// What every handler shares.
#[derive(Clone)]
struct Board {
    app: App,
    /// `api.token_file`'s token, hex-encoded as the cookie carries it; None: no token.
    token: Option<Arc<Token>>,
    shutdown: CancellationToken,
}

struct Token {
    plain: String,
    hex: String,
}

/// Serves the board on `listener` until `shutdown`; an open event stream ends with it.
pub(crate) fn serve(
    app: App,
    listener: TcpListener,
    token: Option<String>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + use<> {
    let board = Board {
        app,
        token: token.map(|plain| {
            Arc::new(Token {
                hex: hex(&plain),
                plain,
            })
        }),
        shutdown: shutdown.clone(),
    };
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        token = board.token.is_some(),
        "scheduler board serving"
    );
    let router = Router::new()
        .route("/", get(|| async { Redirect::to("/jobs") }))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/events", get(events))
        .route("/jobs/{id}/tasks/{component}", get(task))
        .route("/queue", get(queue))
        .route("/static/board.js", get(script))
        .route("/static/board.css", get(style))
        .layer(middleware::from_fn_with_state(board.clone(), gate))
        .with_state(board);
    async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "scheduler board stopped");
        }
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn same(sent: &str, expected: &str) -> bool {
    // Unequal lengths answer at once (`ct_eq` is false); equal lengths are compared in
    // constant time.
    bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token check: a bearer header, the login cookie, or a `?token=` that sets the cookie
/// and redirects to the same page without it (so the token leaves the address bar).
async fn gate(State(board): State<Board>, request: Request, next: Next) -> Response {
    let Some(token) = board.token.as_deref() else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|sent| same(sent.trim(), &token.plain))
        || cookie(headers).is_some_and(|sent| same(sent, &token.hex))
    {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or("");
    let sent = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(percent_decode);
    if sent.as_deref().is_some_and(|sent| same(sent, &token.plain)) {
        let mut response = Redirect::to(request.uri().path()).into_response();
        let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", token.hex);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Html(pages::error(
            401,
            "this board asks for the scheduler's client token (api.token_file): send \
             `Authorization: Bearer <token>`, or open /?token=<token> once in this browser",
        )),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"fedflow board\""),
    );
    response
}

/// The login cookie's value, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// `%XX` and `+` of a query value (what a browser sends for a typed token).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn job_id(id: String) -> Result<JobId, Error> {
    JobId::try_from(id).map_err(|e| Error::BadRequest(format!("job id: {e}")))
}

/// The job list's filters, as the form sends them.
#[derive(Debug, Default, Deserialize)]
struct JobsQuery {
    /// A job status; empty: any.
    #[serde(default)]
    status: String,
    /// A substring of the job id.
    #[serde(default)]
    q: String,
    /// The page token of the next page.
    #[serde(default)]
    page: String,
}

async fn jobs(
    State(board): State<Board>,
    Query(query): Query<JobsQuery>,
) -> Result<Html<String>, Error> {
    let mut filter = JobFilter::default();
    if !query.status.is_empty() {
        let status: JobStatus = query
            .status
            .parse()
            .map_err(|_| Error::BadRequest(format!("status: no status {:?}", query.status)))?;
        filter.statuses.push(status);
    }
    let text = query.q.trim();
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::BadRequest(
            "search: a job id holds only letters, digits, '_' and '-'".into(),
        ));
    }
    filter.text = text.to_owned();
    let after = match query.page.as_str() {
        "" => None,
        token => {
            Some(Cursor::from_token(token).map_err(|e| Error::BadRequest(format!("page: {e}")))?)
        }
    };
    let request = ListJobs {
        limit: PAGE,
        filter,
        after,
    };
    let (views, next) = board.app.job_views(&request).await?;
    Ok(Html(pages::jobs(
        board.app.party_id(),
        &query.status,
        text,
        &views,
        next.map(|c| c.to_token()).as_deref(),
    )))
}

async fn job(State(board): State<Board>, Path(id): Path<String>) -> Result<Html<String>, Error> {
    let id = job_id(id)?;
    let app = &board.app;
    let view = match app.job_view(&id).await {
        Ok(view) => view,
        Err(app::Error::NotFound(_)) => {
            if let Ok(app::Located::At(party)) = app.locate(&id).await {
                return Err(Error::BadRequest(format!(
                    "job {id} is scheduled by party {party}: open party {party}'s board"
                )));
            }
            return Err(app::Error::NotFound(format!(
                "job {id} is not scheduled by party {}",
                app.party_id()
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let spec = app.spec(&view.job)?;
    let tasks = app.tasks(&id, false).await?;
    let position = if view.job.status == JobStatus::Waiting {
        app.queue_order(QUEUE_SCAN)
            .await?
            .iter()
            .position(|j| j.job_id == view.job.job_id)
            .map(|p| p + 1)
    } else {
        None
    };
    Ok(Html(pages::job(
        app.party_id(),
        &view,
        &spec,
        &tasks,
        position,
    )))
}

async fn task(
    State(board): State<Board>,
    Path((id, component)): Path<(String, String)>,
) -> Result<Html<String>, Error> {
    let id = job_id(id)?;
    let app = &board.app;
    let job = app.job_here(id.as_str()).await?;
    let spec = app.spec(&job)?;
    let Some(module) = spec.component(&component).map(|c| c.module.clone()) else {
        return Err(
            app::Error::NotFound(format!("job {id} has no component {component:?}")).into(),
        );
    };
    let attempts: Vec<app::TaskView> = app
        .tasks(&id, true)
        .await?
        .into_iter()
        .filter(|t| t.task.component == component)
        .collect();
    let own = data::own(app, &id, &component, &spec.participants()).await;
    Ok(Html(pages::task(
        app.party_id(),
        &job,
        &component,
        &module,
        &spec.participants(),
        &attempts,
        &own,
    )))
}

async fn queue(State(board): State<Board>) -> Result<Html<String>, Error> {
    let waiting = board.app.queue_order(QUEUE_SCAN).await?;
    Ok(Html(pages::queue(board.app.party_id(), &waiting)))
}

/// A job's live events: what `WatchJob` streams, one JSON `message` each, then an `end`
/// event when the job has ended (the page stops listening; a browser would otherwise
/// reconnect).
async fn events(
    State(board): State<Board>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>, Error> {
    let id = job_id(id)?;
    let watch = board.app.watch_job(&id).await?;
    let stream = watch
        .map(|item| {
            Ok(match item {
                Ok(event) => SseEvent::default().data(event_json(&event).to_string()),
                Err(e) => SseEvent::default().event("error").data(e.to_string()),
            })
        })
        .chain(futures::stream::once(async {
            Ok(SseEvent::default().event("end").data("ended"))
        }))
        .take_until(board.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The JSON the page's script reads: `kind` `job` or `task`; a task's `who` is
/// `"<role> <party>"`, or null for its federated status.
fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Job { status, reason, .. } => {
            serde_json::json!({"kind": "job", "status": status.as_str(), "reason": reason})
        }
        Event::Task {
            component,
            version,
            who,
            status,
            reason,
            ..
        } => serde_json::json!({
            "kind": "task",
            "component": component,
            "version": version,
            "who": who.as_ref().map(|w| w.to_string()),
            "status": status.as_str(),
            "reason": reason,
        }),
    }
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("board/board.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("board/board.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_token_is_percent_decoded() {
        assert_eq!(percent_decode("a%2Bb+c"), "a+b c");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn the_login_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; fedflow_board_token=abcd; b=2"),
        );
        assert_eq!(cookie(&headers), Some("abcd"));
        assert!(same("abcd", "abcd"));
        assert!(!same("abcd", "abce"));
        assert!(!same("abc", "abcd"));
    }
}
