//! The simulator's fidelity contract: one scenario of raw API calls (the gateway core's
//! CLI walk-through, plus failures) runs against a real site and a simulated one, and each
//! call's status code and JSON key structure (values aside) are compared.
//!
//! Differences that are understood are listed in [`KNOWN_DIFFERENCES`] with their reason;
//! anything else fails the contract.

use std::collections::BTreeSet;

use drgw::sandbox::SimEndpoints;
use http::Method;
use serde_json::{json, Value};

use crate::sim::client::{SimClient, SimResponse};

/// One compared call.
#[derive(Debug, Clone)]
pub struct Observation {
    pub call: String,
    pub status: u16,
    pub keys: BTreeSet<String>,
}

/// The key structure of a JSON document: every object key path, arrays as `[]`.
pub fn key_paths(value: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(items) => {
                let path = format!("{prefix}[]");
                for item in items {
                    walk(item, &path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// A difference between the real site and the simulator whose reason is understood: a key
/// path one side has and the other lacks in the response to one call.
#[derive(Debug, Clone, Copy)]
pub struct KnownDifference {
    /// The call's label in the scenario.
    pub call: &'static str,
    /// The key path (see [`key_paths`]).
    pub key: &'static str,
    /// Why the two sides differ and why the simulator keeps its shape.
    pub reason: &'static str,
}

/// The differences the contract accepts, each with its reason. Only artifacts of the test
/// bed belong here; where the real service's shape is the right one, the simulator is fixed.
///
/// Empty since the test bed seeds Neutron's default security group rule templates (see
/// `tests/realstack/start-site.sh`): before that, a new security group had no rules on the
/// real site, unlike any deployed Neutron, while the simulator creates the two egress rules.
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[];

/// Runs the scenario against one site; returns one observation per call.
pub async fn run(site: &SimEndpoints) -> anyhow::Result<Vec<Observation>> {
    let mut out = Vec::new();
    let mut admin = SimClient::new();
    let login = admin
        .login(&format!("{}/v3", site.identity), "admin", "secret", "admin")
        .await?;
    record(&mut out, "POST /v3/auth/tokens (admin)", &login);
    let project_id = login.json["token"]["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sfx = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let mut call = async |label: &str,
                          method: Method,
                          url: String,
                          body: Option<Value>,
                          headers: &[(&str, &str)]| {
        let r = admin.send(method, &url, body.as_ref(), headers).await;
        match r {
            Ok(resp) => {
                record(&mut out, label, &resp);
                Some(resp)
            }
            Err(_) => None,
        }
    };
    let ks = format!("{}/v3", site.identity);
    let nova = format!("{}/v2.1", site.compute);
    let neutron = format!("{}/v2.0", site.network);
    let cinder = format!("{}/v3/{project_id}", site.volume);
    let glance = format!("{}/v2", site.image);
    let nova_mv: &[(&str, &str)] = &[("openstack-api-version", "compute 2.90")];

    call(
        "GET /v3/auth/catalog",
        Method::GET,
        format!("{ks}/auth/catalog"),
        None,
        &[],
    )
    .await;
    let project = call(
        "POST /v3/projects",
        Method::POST,
        format!("{ks}/projects"),
        Some(json!({"project": {"name": format!("c-{sfx}"), "domain_id": "default"}})),
        &[],
    )
    .await;
    let project_id2 = project
        .as_ref()
        .and_then(|p| p.json["project"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let user = call(
        "POST /v3/users",
        Method::POST,
        format!("{ks}/users"),
        Some(
            json!({"user": {"name": format!("c-{sfx}"), "password": "pw", "domain_id": "default"}}),
        ),
        &[],
    )
    .await;
    let user_id = user
        .as_ref()
        .and_then(|u| u.json["user"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let roles = call(
        "GET /v3/roles?name=member",
        Method::GET,
        format!("{ks}/roles?name=member"),
        None,
        &[],
    )
    .await;
    let role_id = roles
        .as_ref()
        .and_then(|r| r.json["roles"][0]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    call(
        "PUT role assignment",
        Method::PUT,
        format!("{ks}/projects/{project_id2}/users/{user_id}/roles/{role_id}"),
        None,
        &[],
    )
    .await;
    let flavor = call(
        "POST /v2.1/flavors",
        Method::POST,
        format!("{nova}/flavors"),
        Some(json!({"flavor": {"name": format!("c-{sfx}"), "vcpus": 1, "ram": 256, "disk": 1}})),
        nova_mv,
    )
    .await;
    let flavor_id = flavor
        .as_ref()
        .and_then(|f| f.json["flavor"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    call("POST /v2.1/os-keypairs", Method::POST, format!("{nova}/os-keypairs"), Some(json!({"keypair": {"name": format!("c-{sfx}"), "public_key": crate::cli::TEST_PUBLIC_KEY}})), nova_mv).await;
    let net = call(
        "POST /v2.0/networks",
        Method::POST,
        format!("{neutron}/networks"),
        Some(json!({"network": {"name": format!("c-{sfx}")}})),
        &[],
    )
    .await;
    let net_id = net
        .as_ref()
        .and_then(|n| n.json["network"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let subnet = call("POST /v2.0/subnets", Method::POST, format!("{neutron}/subnets"), Some(json!({"subnet": {"name": format!("c-{sfx}"), "network_id": net_id, "ip_version": 4, "cidr": "10.77.0.0/24"}})), &[]).await;
    let subnet_id = subnet
        .as_ref()
        .and_then(|n| n.json["subnet"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let router = call(
        "POST /v2.0/routers",
        Method::POST,
        format!("{neutron}/routers"),
        Some(json!({"router": {"name": format!("c-{sfx}")}})),
        &[],
    )
    .await;
    let router_id = router
        .as_ref()
        .and_then(|n| n.json["router"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    call(
        "PUT add_router_interface",
        Method::PUT,
        format!("{neutron}/routers/{router_id}/add_router_interface"),
        Some(json!({"subnet_id": subnet_id})),
        &[],
    )
    .await;
    let sg = call(
        "POST /v2.0/security-groups",
        Method::POST,
        format!("{neutron}/security-groups"),
        Some(json!({"security_group": {"name": format!("c-{sfx}")}})),
        &[],
    )
    .await;
    let sg_id = sg
        .as_ref()
        .and_then(|n| n.json["security_group"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    call("POST /v2.0/security-group-rules", Method::POST, format!("{neutron}/security-group-rules"), Some(json!({"security_group_rule": {"security_group_id": sg_id, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}})), &[]).await;
    call(
        "POST /v3/{p}/types",
        Method::POST,
        format!("{cinder}/types"),
        Some(json!({"volume_type": {"name": format!("c-{sfx}")}})),
        &[],
    )
    .await;
    let vol = call(
        "POST /v3/{p}/volumes",
        Method::POST,
        format!("{cinder}/volumes"),
        Some(json!({"volume": {"name": format!("c-{sfx}"), "size": 1}})),
        &[],
    )
    .await;
    let vol_id = vol
        .as_ref()
        .and_then(|n| n.json["volume"]["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    // The volume's fields depend on the microversion (and the caller's role): the oldest
    // and the newest.
    call(
        "GET /v3/{p}/volumes/{id}",
        Method::GET,
        format!("{cinder}/volumes/{vol_id}"),
        None,
        &[],
    )
    .await;
    call(
        "GET /v3/{p}/volumes/{id} (volume 3.71)",
        Method::GET,
        format!("{cinder}/volumes/{vol_id}"),
        None,
        &[("openstack-api-version", "volume 3.71")],
    )
    .await;
    let image = call(
        "POST /v2/images",
        Method::POST,
        format!("{glance}/images"),
        Some(json!({"name": format!("c-{sfx}"), "disk_format": "raw", "container_format": "bare"})),
        &[],
    )
    .await;
    let image_id = image
        .as_ref()
        .and_then(|n| n.json["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    // Failures: a missing server, a flavor create without admin rights is not tried (one
    // admin client), a malformed body.
    call(
        "GET /v2.1/servers/{missing}",
        Method::GET,
        format!("{nova}/servers/00000000-0000-0000-0000-000000000000"),
        None,
        nova_mv,
    )
    .await;
    call(
        "POST /v2.0/networks (malformed)",
        Method::POST,
        format!("{neutron}/networks"),
        Some(json!({"network": {"admin_state_up": "maybe"}})),
        &[],
    )
    .await;
    // Deletes.
    call(
        "DELETE /v2/images/{id}",
        Method::DELETE,
        format!("{glance}/images/{image_id}"),
        None,
        &[],
    )
    .await;
    call(
        "DELETE /v3/{p}/volumes/{id}",
        Method::DELETE,
        format!("{cinder}/volumes/{vol_id}"),
        None,
        &[],
    )
    .await;
    call(
        "DELETE /v2.0/security-groups/{id}",
        Method::DELETE,
        format!("{neutron}/security-groups/{sg_id}"),
        None,
        &[],
    )
    .await;
    call(
        "PUT remove_router_interface",
        Method::PUT,
        format!("{neutron}/routers/{router_id}/remove_router_interface"),
        Some(json!({"subnet_id": subnet_id})),
        &[],
    )
    .await;
    call(
        "DELETE /v2.0/routers/{id}",
        Method::DELETE,
        format!("{neutron}/routers/{router_id}"),
        None,
        &[],
    )
    .await;
    call(
        "DELETE /v2.0/networks/{id}",
        Method::DELETE,
        format!("{neutron}/networks/{net_id}"),
        None,
        &[],
    )
    .await;
    // A bulk create answers with the list, in order (the gateway splits it per resource).
    let bulk = call(
        "POST /v2.0/networks (bulk)",
        Method::POST,
        format!("{neutron}/networks"),
        Some(json!({"networks": [{"name": format!("c-{sfx}-a")}, {"name": format!("c-{sfx}-b")}]})),
        &[],
    )
    .await;
    let bulk_ids: Vec<String> = bulk
        .as_ref()
        .and_then(|b| b.json["networks"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect();
    for id in bulk_ids {
        call(
            "DELETE /v2.0/networks/{id} (bulk item)",
            Method::DELETE,
            format!("{neutron}/networks/{id}"),
            None,
            &[],
        )
        .await;
    }
    call(
        "DELETE /v2.1/flavors/{id}",
        Method::DELETE,
        format!("{nova}/flavors/{flavor_id}"),
        None,
        nova_mv,
    )
    .await;
    call(
        "DELETE /v3/users/{id}",
        Method::DELETE,
        format!("{ks}/users/{user_id}"),
        None,
        &[],
    )
    .await;
    call(
        "DELETE /v3/projects/{id}",
        Method::DELETE,
        format!("{ks}/projects/{project_id2}"),
        None,
        &[],
    )
    .await;
    Ok(out)
}

fn record(out: &mut Vec<Observation>, call: &str, resp: &SimResponse) {
    out.push(Observation {
        call: call.to_string(),
        status: resp.status.as_u16(),
        keys: key_paths(&resp.json),
    });
}

/// The outcome of comparing two runs.
#[derive(Debug, Default)]
pub struct ContractReport {
    pub calls: usize,
    /// Unexplained differences, one line each.
    pub differences: Vec<String>,
    /// Differences covered by [`KNOWN_DIFFERENCES`].
    pub explained: Vec<String>,
}

impl ContractReport {
    /// The summary line the test run prints.
    pub fn summary(&self) -> String {
        format!(
            "contract: {} calls compared, {} differences ({} explained)",
            self.calls,
            self.differences.len() + self.explained.len(),
            self.explained.len()
        )
    }
}

/// Compares a real run with a simulated one, call by call, against [`KNOWN_DIFFERENCES`].
pub fn compare(real: &[Observation], sim: &[Observation]) -> ContractReport {
    compare_with(real, sim, KNOWN_DIFFERENCES)
}

/// Compares a real run with a simulated one, call by call: a status mismatch is always a
/// difference; a key path on one side only is explained when `known` lists it for that call.
pub fn compare_with(
    real: &[Observation],
    sim: &[Observation],
    known: &[KnownDifference],
) -> ContractReport {
    let mut report = ContractReport::default();
    for (r, s) in real.iter().zip(sim) {
        report.calls += 1;
        if r.call != s.call {
            report
                .differences
                .push(format!("call order: {} vs {}", r.call, s.call));
            continue;
        }
        if r.status != s.status {
            report.differences.push(format!(
                "{}: status {} (real) vs {} (sim)",
                r.call, r.status, s.status
            ));
        }
        for (side, a, b) in [
            ("real only", &r.keys, &s.keys),
            ("sim only", &s.keys, &r.keys),
        ] {
            for key in a.difference(b) {
                let line = format!("{}: {side} key {key}", r.call);
                match known.iter().find(|k| k.call == r.call && k.key == key) {
                    Some(k) => report.explained.push(format!("{line} ({})", k.reason)),
                    None => report.differences.push(line),
                }
            }
        }
    }
    if real.len() != sim.len() {
        report.differences.push(format!(
            "{} calls against the real site, {} against the simulator",
            real.len(),
            sim.len()
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_ignore_values_and_merge_array_items() {
        let v = json!({"a": {"b": 1, "c": [{"d": 1}, {"e": 2}]}, "f": null});
        let keys: Vec<String> = key_paths(&v).into_iter().collect();
        assert_eq!(keys, ["a", "a.b", "a.c", "a.c[].d", "a.c[].e", "f"]);
    }

    #[test]
    fn compare_reports_status_and_key_differences() {
        let obs = |call: &str, status, v: Value| Observation {
            call: call.into(),
            status,
            keys: key_paths(&v),
        };
        let real = [
            obs("x", 200, json!({"a": 1, "b": 2})),
            obs("y", 404, json!({})),
        ];
        let sim = [
            obs("x", 200, json!({"a": 1, "c": 2})),
            obs("y", 400, json!({})),
        ];
        let report = compare_with(&real, &sim, &[]);
        assert_eq!(report.calls, 2);
        assert_eq!(report.differences.len(), 3, "{:?}", report.differences);
        assert_eq!(
            report.summary(),
            "contract: 2 calls compared, 3 differences (0 explained)"
        );
    }

    #[test]
    fn known_differences_explain_only_their_call_and_key() {
        let obs = |call: &str, status, v: Value| Observation {
            call: call.into(),
            status,
            keys: key_paths(&v),
        };
        let real = [
            obs("x", 200, json!({"a": 1})),
            obs("y", 200, json!({"a": 1})),
            obs("z", 201, json!({})),
        ];
        let sim = [
            obs("x", 200, json!({"a": 1, "b": 2})),
            obs("y", 200, json!({"a": 1, "b": 2})),
            obs("z", 202, json!({})),
        ];
        let known = [
            KnownDifference {
                call: "x",
                key: "b",
                reason: "why",
            },
            KnownDifference {
                call: "z",
                key: "c",
                reason: "never matches",
            },
        ];
        let report = compare_with(&real, &sim, &known);
        assert_eq!(report.explained, ["x: sim only key b (why)"]);
        assert_eq!(
            report.differences,
            ["y: sim only key b", "z: status 201 (real) vs 202 (sim)"]
        );
        assert_eq!(
            report.summary(),
            "contract: 3 calls compared, 3 differences (1 explained)"
        );
    }

    #[test]
    fn a_missing_or_reordered_call_is_a_difference() {
        let obs = |call: &str| Observation {
            call: call.into(),
            status: 200,
            keys: BTreeSet::new(),
        };
        let report = compare_with(&[obs("x"), obs("y")], &[obs("y")], &[]);
        assert_eq!(report.differences.len(), 2, "{:?}", report.differences);
    }
}
