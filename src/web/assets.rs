//! The dashboard's static files, embedded in the binary at build time.

use super::WebResponse;

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/static/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../web/static/favicon.svg"),
    ),
];

/// The content type and bytes of asset `name`.
fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, b)| (*t, *b))
}

/// `GET /static/{name}`.
pub fn serve(name: &str) -> WebResponse {
    match asset(name) {
        Some((content_type, bytes)) => WebResponse {
            content_type,
            body: bytes.to_vec(),
            cacheable: true,
            ..WebResponse::html(200, String::new())
        },
        None => super::layout::render_error(None, 404, "Not found", "no such file"),
    }
}
