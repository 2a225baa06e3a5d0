//! A tiny HTTP/1 client for tests that talk to a simulated site (or to the gateway).

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A response: status, headers, body bytes and the body parsed as JSON (`Null` if not JSON).
#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
    pub json: Value,
}

impl SimResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled client with an optional token.
#[derive(Debug, Clone)]
pub struct SimClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent as `X-Auth-Token` when set.
    pub token: Option<String>,
}

impl Default for SimClient {
    fn default() -> Self {
        SimClient::new()
    }
}

impl SimClient {
    /// A client without a token.
    pub fn new() -> SimClient {
        SimClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            token: None,
        }
    }

    /// Obtains a project-scoped token by password (`POST {auth_url}/auth/tokens`) and keeps it.
    pub async fn login(
        &mut self,
        auth_url: &str,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<SimResponse> {
        let body = serde_json::json!({ "auth": {
            "identity": { "methods": ["password"], "password": { "user": {
                "name": user, "domain": { "id": "default" }, "password": password } } },
            "scope": { "project": { "name": project, "domain": { "id": "default" } } }
        } });
        let resp = self
            .send(
                Method::POST,
                &format!("{auth_url}/auth/tokens"),
                Some(&body),
                &[],
            )
            .await?;
        anyhow::ensure!(
            resp.status == StatusCode::CREATED,
            "login failed: {} {}",
            resp.status,
            resp.json
        );
        self.token = resp.header("x-subject-token").map(str::to_string);
        Ok(resp)
    }

    /// Sends a request with an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<SimResponse> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        self.send_raw(method, url, bytes, "application/json", headers)
            .await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &str,
        body: Bytes,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<SimResponse> {
        let mut b = Request::builder().method(method).uri(url);
        if !body.is_empty() {
            b = b.header("content-type", content_type);
        }
        if let Some(t) = &self.token {
            b = b.header("x-auth-token", t);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self.client.request(b.body(Full::new(body))?).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(SimResponse {
            status: parts.status,
            headers: parts.headers,
            bytes,
            json,
        })
    }

    /// `GET` with the token.
    pub async fn get(&self, url: &str) -> anyhow::Result<SimResponse> {
        self.send(Method::GET, url, None, &[]).await
    }

    /// `POST` JSON with the token.
    pub async fn post(&self, url: &str, body: &Value) -> anyhow::Result<SimResponse> {
        self.send(Method::POST, url, Some(body), &[]).await
    }

    /// `PUT` JSON with the token.
    pub async fn put(&self, url: &str, body: &Value) -> anyhow::Result<SimResponse> {
        self.send(Method::PUT, url, Some(body), &[]).await
    }

    /// `DELETE` with the token.
    pub async fn delete(&self, url: &str) -> anyhow::Result<SimResponse> {
        self.send(Method::DELETE, url, None, &[]).await
    }
}
