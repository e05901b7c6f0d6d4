//! `/events/export`: every matching event, streamed as NDJSON or CSV, one page of the log
//! at a time, so memory stays flat whatever the export's size.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Request, Response};
use tokio::sync::mpsc;

use super::request::{self, Query};
use super::router::event_query;
use super::{wire, Body, BodyError};
use crate::app::{App, AppError, EventExport, Principal};
use crate::model::time::now_ms;
use crate::store::EventPage;

/// Events read per page of an export.
const PAGE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

/// `GET /api/v1/tenants/{t}/events/export` (bearer key).
pub async fn events(
    request: Request<Incoming>,
    app: &Arc<App>,
    tenant: &str,
) -> Result<Response<Body>, AppError> {
    let principal = request::principal(&request, app).await?;
    stream(app, &principal, tenant, &Query::parse(&request)).await
}

/// Streams the events of `tenant` matching the filters of `q` (the API's and the
/// dashboard's export).
pub async fn stream(
    app: &Arc<App>,
    principal: &Principal,
    tenant: &str,
    q: &Query,
) -> Result<Response<Body>, AppError> {
    let format = match q.get("format").unwrap_or("ndjson") {
        "ndjson" => Format::Ndjson,
        "csv" => Format::Csv,
        _ => {
            return Err(AppError::field(
                "invalid_field",
                "format",
                "must be ndjson or csv",
            ))
        }
    };
    let export = app
        .export_events(principal, tenant, event_query(q)?, now_ms())
        .await?;
    // The first page is read before answering, so that its errors still get a status.
    let first = export.page(app, None, PAGE).await?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(stream_pages(
        app.clone(),
        export,
        first,
        format,
        tenant.to_owned(),
        tx,
    ));
    let (media, extension) = match format {
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let mut response = Response::new(ChannelBody(rx).boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{tenant}-events.{extension}\""
    )) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

type Chunk = Result<Bytes, BodyError>;

async fn stream_pages(
    app: Arc<App>,
    export: EventExport,
    mut page: EventPage,
    format: Format,
    tenant: String,
    tx: mpsc::Sender<Chunk>,
) {
    if format == Format::Csv && tx.send(Ok(Bytes::from(wire::csv_header()))).await.is_err() {
        return;
    }
    loop {
        let mut chunk = String::new();
        for event in &page.events {
            match format {
                Format::Ndjson => {
                    chunk.push_str(&wire::event(event, &tenant).to_string());
                    chunk.push('\n');
                }
                Format::Csv => chunk.push_str(&wire::csv_row(event)),
            }
        }
        if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return; // the client went away
        }
        let Some(cursor) = page.next else {
            return;
        };
        page = match export.page(&app, Some(cursor), PAGE).await {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, "export failed midway; aborting the transfer");
                let _ = tx.send(Err(error.to_string().into())).await;
                return;
            }
        };
    }
}

/// A body fed by a channel of chunks.
struct ChannelBody(mpsc::Receiver<Chunk>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}
