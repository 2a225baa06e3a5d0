//! The gateway's own error bodies against a real site's, byte for byte: each service is
//! made to fail (a missing resource, a bad token, a body over its size limit), and
//! `drgw::fault` is asked for the same status and message. `Content-Type` and body must be
//! equal, but for one documented difference: Neutron names the neutron-lib exception
//! (`NetworkNotFound`) where the gateway, which ran no Neutron check, names webob's class
//! (`HTTPNotFound`).

use bytes::Bytes;
use drgw::fault;
use drgw::operation::Service;
use drgw::sandbox::SimEndpoints;
use http::Method;
use serde_json::Value;

use crate::sim::client::{SimClient, SimResponse};

/// The tail webob's body template adds to a message
/// (`${explanation}<br /><br />\n${detail}\n${html_comment}\n`).
const WEBOB_TAIL: &str = "<br /><br />\n\n\n";

/// One compared failure.
#[derive(Debug)]
pub struct FaultComparison {
    pub call: String,
    /// `None` when the gateway wrote the service's bytes; else what differs.
    pub difference: Option<String>,
}

/// Makes each of the site's services fail and compares the gateway's body for the same
/// status and message. Logs in as `admin`/`secret`.
pub async fn compare(site: &SimEndpoints) -> anyhow::Result<Vec<FaultComparison>> {
    let mut admin = SimClient::new();
    let login = admin
        .login(&format!("{}/v3", site.identity), "admin", "secret", "admin")
        .await?;
    let project = login.json["token"]["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let missing = "00000000-0000-0000-0000-00000000dead";
    let json = Some("application/json");
    let get = |service, what, url: String, accept, authenticated| Case {
        service,
        what,
        url,
        accept,
        authenticated,
        oversized: false,
    };
    // A body over oslo.middleware's default `max_request_body_size` (112 KiB), declared.
    let oversized = |service, what, url: String, accept| Case {
        service,
        what,
        url,
        accept,
        authenticated: true,
        oversized: true,
    };
    let cases = [
        get(
            Service::Identity,
            "project 404",
            format!("{}/v3/projects/{missing}", site.identity),
            json,
            true,
        ),
        get(
            Service::Identity,
            "bad token 401",
            format!("{}/v3/projects", site.identity),
            json,
            false,
        ),
        get(
            Service::Compute,
            "flavor 404",
            format!("{}/v2.1/flavors/{missing}", site.compute),
            json,
            true,
        ),
        get(
            Service::Compute,
            "bad token 401",
            format!("{}/v2.1/flavors", site.compute),
            json,
            false,
        ),
        get(
            Service::BlockStorage,
            "volume 404",
            format!("{}/v3/{project}/volumes/{missing}", site.volume),
            json,
            true,
        ),
        get(
            Service::Network,
            "network 404",
            format!("{}/v2.0/networks/{missing}", site.network),
            json,
            true,
        ),
        get(
            Service::Network,
            "bad token 401",
            format!("{}/v2.0/networks", site.network),
            json,
            false,
        ),
        get(
            Service::Image,
            "image 404, JSON",
            format!("{}/v2/images/{missing}", site.image),
            json,
            true,
        ),
        get(
            Service::Image,
            "image 404, HTML",
            format!("{}/v2/images/{missing}", site.image),
            Some("*/*"),
            true,
        ),
        get(
            Service::Image,
            "image 404, plain",
            format!("{}/v2/images/{missing}", site.image),
            None,
            true,
        ),
        oversized(
            Service::Identity,
            "login body too large, JSON",
            format!("{}/v3/auth/tokens", site.identity),
            json,
        ),
        oversized(
            Service::Compute,
            "server body too large, JSON",
            format!("{}/v2.1/servers", site.compute),
            json,
        ),
        oversized(
            Service::Compute,
            "server body too large, HTML",
            format!("{}/v2.1/servers", site.compute),
            Some("*/*"),
        ),
        oversized(
            Service::BlockStorage,
            "volume body too large, JSON",
            format!("{}/v3/{project}/volumes", site.volume),
            json,
        ),
    ];
    let big = Bytes::from(format!("{{\"pad\": \"{}\"}}", "x".repeat(120 << 10)));
    let mut out = Vec::new();
    let mut webob_message = None;
    for Case {
        service,
        what,
        url,
        accept,
        authenticated,
        oversized,
    } in cases
    {
        let token = if authenticated {
            admin.token.clone().unwrap_or_default()
        } else {
            "not-a-token".to_string()
        };
        let mut headers = vec![("x-auth-token", token.as_str())];
        if let Some(accept) = accept {
            headers.push(("accept", accept));
        }
        let (method, body) = if oversized {
            (Method::POST, big.clone())
        } else {
            (Method::GET, Bytes::new())
        };
        let real = SimClient::new()
            .send_raw(method, &url, body, "application/json", &headers)
            .await?;
        let page = oversized || service == Service::Image;
        let message = match message_of(page, &real) {
            Some(m) => m,
            // An HTML or plain page: the message the JSON page before it carried.
            None => webob_message.clone().unwrap_or_default(),
        };
        if page && accept == json {
            webob_message = Some(message.clone());
        }
        let (content_type, ours) = if oversized {
            fault::webob_error_body(real.status, &message, accept)
        } else {
            fault::error_body_for(service, real.status, &message, accept)
        };
        let mut expected = String::from_utf8_lossy(&real.bytes).into_owned();
        if service == Service::Network {
            if let Some(kind) = real.json["NeutronError"]["type"].as_str() {
                let webob = format!("\"type\": \"{}\"", fault::neutron_error_type(real.status));
                expected = expected.replacen(&format!("\"type\": \"{kind}\""), &webob, 1);
            }
        }
        let real_type = real.header("content-type").unwrap_or_default();
        let difference = if !real.status.is_client_error() {
            Some(format!(
                "the site answered {}, not a client error",
                real.status
            ))
        } else if real_type != content_type {
            Some(format!(
                "Content-Type: site {real_type:?}, gateway {content_type:?}"
            ))
        } else if expected.as_bytes() != &ours[..] {
            Some(format!(
                "body: site {expected:?}, gateway {:?}",
                String::from_utf8_lossy(&ours)
            ))
        } else {
            None
        };
        out.push(FaultComparison {
            call: format!("{service} {what} ({})", real.status.as_u16()),
            difference,
        });
    }
    Ok(out)
}

/// One failure to cause.
struct Case {
    service: Service,
    what: &'static str,
    url: String,
    accept: Option<&'static str>,
    authenticated: bool,
    /// POST a body over the service's size limit (else GET).
    oversized: bool,
}

/// The message an error body carries, as the gateway would be given it (`page`: a webob
/// page); `None` for a body that is not JSON (webob's HTML and plain pages).
fn message_of(page: bool, resp: &SimResponse) -> Option<String> {
    let body = &resp.json;
    let message = match body {
        _ if page => body["message"]
            .as_str()
            .map(|m| m.strip_suffix(WEBOB_TAIL).unwrap_or(m)),
        _ if body.get("error").is_some() => body["error"]["message"].as_str(),
        _ if body.get("NeutronError").is_some() => body["NeutronError"]["message"].as_str(),
        // Nova and Cinder: `{"<faultName>": {"code", "message"}}`.
        _ => body
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|f| f.get("message"))
            .and_then(Value::as_str),
    };
    message.map(str::to_string)
}
