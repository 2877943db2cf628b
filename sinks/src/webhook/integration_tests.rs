//! Integration tests of the webhook sink against a real HTTP server (axum on 127.0.0.1:0).
