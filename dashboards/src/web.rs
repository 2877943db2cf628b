//! The dashboard page, served by the binary with everything it needs
//! (stores' machines may have no internet).
//!
//! - `GET /` and `GET /dashboard` redirect to `/dashboard/`;
//! - `GET /dashboard/`: the page (`web/index.html`): a login form, then
//!   the panels, in Chinese by default with an English switch;
//! - `GET /dashboard/assets/app.js`, `app.css`: its script and style (plain
//!   JS, no framework);
//! - `GET /dashboard/assets/echarts.min.js`: Apache ECharts, pinned in
//!   `web/package-lock.json`, fetched by `build.rs` and embedded here.
//!
//! The page holds no data: it is public, and reads everything from the
//! API with the session cookie (`POST /v1/login`), so every number it
//! shows is scoped by the server. Answers carry a Content-Security-Policy
//! allowing only this origin's scripts, and `frame-ancestors 'none'` (no
//! clickjacking of the decision buttons).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Every (method, path) of [`web_router`] (described in `openapi.json`).
pub const WEB_ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/dashboard"),
    ("get", "/dashboard/"),
    ("get", "/dashboard/assets/{file}"),
];

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
/// Apache ECharts (see `build.rs`).
const ECHARTS_JS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/web/node_modules/echarts/dist/echarts.min.js"
));

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The page and its assets.
pub fn web_router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(index))
        .route("/dashboard/assets/{file}", get(asset))
}

fn page(content_type: &'static str, cache: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, cache),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    page("text/html; charset=utf-8", "no-cache", INDEX_HTML)
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match file.as_str() {
        "app.js" => page("text/javascript; charset=utf-8", "no-cache", APP_JS),
        "app.css" => page("text/css; charset=utf-8", "no-cache", APP_CSS),
        "echarts.min.js" => page(
            "text/javascript; charset=utf-8",
            "public, max-age=86400",
            ECHARTS_JS,
        ),
        _ => (axum::http::StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(uri: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        let response = web_router()
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, location, body.to_vec())
    }

    #[tokio::test]
    async fn page_assets_and_redirects() {
        let (status, location, _) = get("/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/dashboard/"));
        let (status, _, body) = get("/dashboard/").await;
        assert_eq!(status, StatusCode::OK);
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("/dashboard/assets/echarts.min.js"));
        let (status, _, body) = get("/dashboard/assets/echarts.min.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.len() > 500_000, "the whole of echarts is embedded");
        assert_eq!(get("/dashboard/assets/app.js").await.0, StatusCode::OK);
        assert_eq!(
            get("/dashboard/assets/../Cargo.toml").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
