//! Mapping [`AppError`] to a status and the API's error body:
//! `{"error": {"code", "message", "field"?, "details"?}}`.

use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::Body;
use crate::app::AppError;

/// A response for `error`. Internal details are logged here and never sent.
pub fn error_response(error: &AppError) -> Response<Body> {
    let (status, code, message, field) = match error {
        AppError::Invalid {
            code,
            message,
            field,
            ..
        } => (
            StatusCode::BAD_REQUEST,
            *code,
            message.clone(),
            field.clone(),
        ),
        AppError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone(), None),
        AppError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone(), None),
        AppError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone(), None),
        AppError::Conflict { code, message } => {
            (StatusCode::CONFLICT, *code, message.clone(), None)
        }
        AppError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", m.clone(), None),
        AppError::UnsupportedMediaType(m) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            m.clone(),
            None,
        ),
        AppError::Unavailable { message, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            message.clone(),
            None,
        ),
        AppError::Throttled { message, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            message.clone(),
            None,
        ),
        AppError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred; it has been logged".to_owned(),
                None,
            )
        }
    };
    let mut body = Map::new();
    body.insert("code".into(), json!(code));
    body.insert("message".into(), json!(message));
    if let Some(field) = field {
        body.insert("field".into(), json!(field));
    }
    if let AppError::Invalid { details, .. } = error {
        if !details.is_empty() {
            let list: Vec<Value> = details
                .iter()
                .map(|p| {
                    let mut d = Map::new();
                    d.insert("index".into(), json!(p.index));
                    if let Some(f) = &p.field {
                        d.insert("field".into(), json!(f));
                    }
                    d.insert("message".into(), json!(p.message));
                    Value::Object(d)
                })
                .collect();
            body.insert("details".into(), Value::Array(list));
        }
    }
    let mut response = super::json_response(status, &json!({ "error": body }));
    let headers = response.headers_mut();
    match error {
        AppError::Unauthorized(_) => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        AppError::Unavailable { retry_after_s, .. } | AppError::Throttled { retry_after_s, .. } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        _ => {}
    }
    response
}

/// A plain API error not produced by a use case (routing, framing).
pub fn simple(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    super::json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}
