//! The gateway's own error bodies against a real site's, byte for byte: each service is
//! made to fail (a missing resource, a bad token), and `drgw::fault` is asked for the same
//! status and message. Status, `Content-Type` and body must be equal, but for one
//! documented difference: Neutron names the neutron-lib exception (`NetworkNotFound`)
//! where the gateway, which ran no Neutron check, names webob's class (`HTTPNotFound`).

use drgw::fault;
use drgw::operation::Service;
use drgw::sandbox::SimEndpoints;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::sim::client::{SimClient, SimResponse};

/// The tail webob's body template adds to a message (`${explanation}<br /><br />\n${detail}\n${html_comment}\n`).
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
    let cases: [(Service, &str, String, Option<&str>, bool); 10] = [
        (
            Service::Identity,
            "project 404",
            format!("{}/v3/projects/{missing}", site.identity),
            json,
            true,
        ),
        (
            Service::Identity,
            "bad token 401",
            format!("{}/v3/projects", site.identity),
            json,
            false,
        ),
        (
            Service::Compute,
            "flavor 404",
            format!("{}/v2.1/flavors/{missing}", site.compute),
            json,
            true,
        ),
        (
            Service::Compute,
            "bad token 401",
            format!("{}/v2.1/flavors", site.compute),
            json,
            false,
        ),
        (
            Service::BlockStorage,
            "volume 404",
            format!("{}/v3/{project}/volumes/{missing}", site.volume),
            json,
            true,
        ),
        (
            Service::Network,
            "network 404",
            format!("{}/v2.0/networks/{missing}", site.network),
            json,
            true,
        ),
        (
            Service::Network,
            "bad token 401",
            format!("{}/v2.0/networks", site.network),
            json,
            false,
        ),
        (
            Service::Image,
            "image 404, JSON",
            format!("{}/v2/images/{missing}", site.image),
            json,
            true,
        ),
        (
            Service::Image,
            "image 404, HTML",
            format!("{}/v2/images/{missing}", site.image),
            Some("*/*"),
            true,
        ),
        (
            Service::Image,
            "image 404, plain",
            format!("{}/v2/images/{missing}", site.image),
            None,
            true,
        ),
    ];
    let mut out = Vec::new();
    let mut glance_message = None;
    for (service, what, url, accept, authenticated) in cases {
        let token = if authenticated {
            admin.token.clone().unwrap_or_default()
        } else {
            "not-a-token".to_string()
        };
        let mut headers = vec![("x-auth-token", token.as_str())];
        if let Some(accept) = accept {
            headers.push(("accept", accept));
        }
        let real = SimClient::new()
            .send(Method::GET, &url, None, &headers)
            .await?;
        let message = match message_of(service, &real) {
            Some(m) => m,
            // Glance's HTML and plain pages: the message its JSON page carried.
            None => glance_message.clone().unwrap_or_default(),
        };
        if service == Service::Image && accept == json {
            glance_message = Some(message.clone());
        }
        let (content_type, ours) = fault::error_body_for(service, real.status, &message, accept);
        let mut expected = String::from_utf8_lossy(&real.bytes).into_owned();
        if service == Service::Network {
            if let Some(kind) = real.json["NeutronError"]["type"].as_str() {
                let webob = format!("\"type\": \"{}\"", neutron_webob_type(real.status));
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

/// The message a service's error body carries, as the gateway would be given it; `None`
/// for a body that is not JSON (Glance's HTML and plain pages).
fn message_of(service: Service, resp: &SimResponse) -> Option<String> {
    let body = &resp.json;
    let message = match service {
        _ if body.get("error").is_some() => body["error"]["message"].as_str(),
        Service::Network => body["NeutronError"]["message"].as_str(),
        Service::Image => body["message"]
            .as_str()
            .map(|m| m.strip_suffix(WEBOB_TAIL).unwrap_or(m)),
        // Nova and Cinder: `{"<faultName>": {"code", "message"}}`.
        _ => body
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|f| f.get("message"))
            .and_then(Value::as_str),
    };
    message.map(str::to_string)
}

/// webob's exception class name for a status, as the gateway names Neutron's error type.
fn neutron_webob_type(status: StatusCode) -> String {
    let (_, body) = fault::error_body(Service::Network, status, "");
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["NeutronError"]["type"].as_str().map(str::to_string))
        .unwrap_or_default()
}
