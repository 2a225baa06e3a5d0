//! Simulated Neutron v2.0: networks, subnets (allocation pools from the CIDR), ports (fixed IPs
//! allocated from subnets), routers and their interfaces, security groups and rules (with the
//! per-project `default` group), floating IPs, tags, list filters, extensions.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};

use super::http::{
    find_idx, id_of, iso_z, matches_filters, neutron_error, now_secs, paginate, str_of, uuid_id,
    Reply, SimRequest,
};
use super::identity::{require_auth, Auth};
use super::{SiteCtx, World};

/// URL collection → (list key, singular key, not-found type name).
const COLLECTIONS: &[(&str, &str, &str, &str)] = &[
    ("networks", "networks", "network", "NetworkNotFound"),
    ("subnets", "subnets", "subnet", "SubnetNotFound"),
    ("ports", "ports", "port", "PortNotFound"),
    ("routers", "routers", "router", "RouterNotFound"),
    (
        "security-groups",
        "security_groups",
        "security_group",
        "SecurityGroupNotFound",
    ),
    (
        "security-group-rules",
        "security_group_rules",
        "security_group_rule",
        "SecurityGroupRuleNotFound",
    ),
    (
        "floatingips",
        "floatingips",
        "floatingip",
        "FloatingIPNotFound",
    ),
];

/// Extensions advertised by `GET /v2.0/extensions`.
const EXTENSIONS: &[&str] = &[
    "address-scope",
    "agent",
    "allowed-address-pairs",
    "availability_zone",
    "binding",
    "default-subnetpools",
    "external-net",
    "ext-gw-mode",
    "extra_dhcp_opt",
    "extraroute",
    "filter-validation",
    "fip-port-details",
    "ip-substring-filtering",
    "l3-ha",
    "multi-provider",
    "net-mtu",
    "net-mtu-writable",
    "network_availability_zone",
    "pagination",
    "port-security",
    "project-id",
    "provider",
    "quotas",
    "rbac-policies",
    "router",
    "router_availability_zone",
    "security-group",
    "sorting",
    "standard-attr-description",
    "standard-attr-revisions",
    "standard-attr-tag",
    "standard-attr-timestamp",
    "stateful-security-group",
    "subnet_allocation",
    "subnet-service-types",
    "tag-ports-during-bulk-creation",
];

/// Neutron's state.
#[derive(Debug, Default, Clone)]
pub struct Network {
    items: HashMap<&'static str, Vec<Value>>,
    default_sg_done: HashSet<String>,
    /// Ports Nova created for servers (deleted with the server).
    nova_ports: HashSet<String>,
}

fn meta(url: &str) -> Option<(&'static str, &'static str, &'static str, &'static str)> {
    COLLECTIONS.iter().copied().find(|(u, _, _, _)| *u == url)
}

impl Network {
    fn coll(&mut self, url: &'static str) -> &mut Vec<Value> {
        self.items.entry(url).or_default()
    }

    fn get(&self, url: &str, id: &str) -> Option<&Value> {
        let items = self.items.get(url)?;
        find_idx(items, id).map(|i| &items[i])
    }

    /// The resources of a collection with this name.
    pub fn named(&self, url: &str, name: &str) -> Vec<Value> {
        self.items
            .get(url)
            .into_iter()
            .flatten()
            .filter(|i| i.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
            .collect()
    }

    /// Whether a network exists.
    pub fn network_exists(&self, id: &str) -> bool {
        self.get("networks", id).is_some()
    }

    /// Whether a port exists.
    pub fn port_exists(&self, id: &str) -> bool {
        self.get("ports", id).is_some()
    }

    /// Whether a security group (name or id) exists for a project (`default` always does).
    pub fn security_group_exists(&self, name_or_id: &str, project: &str) -> bool {
        name_or_id == "default"
            || self.items.get("security-groups").is_some_and(|v| {
                v.iter().any(|g| {
                    id_of(g) == name_or_id
                        || (str_of(g, "name") == Some(name_or_id)
                            && str_of(g, "project_id") == Some(project))
                })
            })
    }

    /// Security groups of a project by name, in Nova's `os-security-groups` shape.
    pub fn security_groups_named(&self, names: &[String], project: &str) -> Vec<Value> {
        self.items
            .get("security-groups")
            .map(|v| {
                v.iter()
                    .filter(|g| {
                        str_of(g, "project_id") == Some(project)
                            && names.iter().any(|n| Some(n.as_str()) == str_of(g, "name"))
                    })
                    .map(|g| {
                        json!({ "id": g["id"], "name": g["name"], "description": g["description"], "tenant_id": project, "rules": [] })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Creates (or binds) a port for a server; returns the network name and a Nova address.
    pub fn attach_server_port(
        &mut self,
        network_id: &str,
        port_id: Option<&str>,
        project: &str,
        server_id: &str,
    ) -> Option<(String, Value)> {
        self.ensure_default_sg(project);
        let pid = match port_id {
            Some(p) => p.to_string(),
            None => {
                let body = json!({ "network_id": network_id });
                let Value::Object(b) = body else { return None };
                let port = self.new_port(b, project).ok()?;
                let id = id_of(&port);
                self.coll("ports").push(port);
                self.nova_ports.insert(id.clone());
                id
            }
        };
        let i = find_idx(self.items.get("ports")?, &pid)?;
        let port = &mut self.coll("ports")[i];
        port["device_id"] = json!(server_id);
        port["device_owner"] = json!("compute:nova");
        port["status"] = json!("ACTIVE");
        port["binding:host_id"] = json!("sim-compute");
        port["binding:vif_type"] = json!("ovs");
        let port = port.clone();
        let net = self.get("networks", str_of(&port, "network_id")?)?;
        let ip = port["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let version = if ip.contains(':') { 6 } else { 4 };
        Some((
            str_of(net, "name").unwrap_or_default().to_string(),
            json!({ "version": version, "addr": ip, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"] }),
        ))
    }

    /// Deletes the ports Nova created for a server and unbinds the others.
    pub fn detach_server_ports(&mut self, server_id: &str) {
        let created = std::mem::take(&mut self.nova_ports);
        self.coll("ports").retain(|p| {
            !(str_of(p, "device_id") == Some(server_id) && created.contains(&id_of(p)))
        });
        self.nova_ports = created;
        let ports = self.coll("ports");
        for p in ports.iter_mut() {
            if str_of(p, "device_id") == Some(server_id) {
                p["device_id"] = json!("");
                p["device_owner"] = json!("");
                p["status"] = json!("DOWN");
            }
        }
    }

    /// Nova `os-interface` attachments of a server.
    pub fn server_interfaces(&self, server_id: &str) -> Vec<Value> {
        self.items
            .get("ports")
            .map(|v| {
                v.iter()
                    .filter(|p| str_of(p, "device_id") == Some(server_id))
                    .map(|p| json!({ "port_state": p["status"], "fixed_ips": p["fixed_ips"], "port_id": p["id"], "net_id": p["network_id"], "mac_addr": p["mac_address"] }))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ensure_default_sg(&mut self, project: &str) {
        if project.is_empty() || !self.default_sg_done.insert(project.to_string()) {
            return;
        }
        let sg = new_security_group("default", "Default security group", project);
        let sgid = id_of(&sg);
        self.coll("security-groups").push(sg);
        for eth in ["IPv4", "IPv6"] {
            for (dir, remote) in [("ingress", Some(sgid.clone())), ("egress", None)] {
                let r = new_rule(&sgid, dir, eth, project, remote, true);
                self.coll("security-group-rules").push(r);
            }
        }
    }

    fn default_sg_id(&self, project: &str) -> Option<String> {
        self.items.get("security-groups").and_then(|v| {
            v.iter()
                .find(|g| {
                    str_of(g, "name") == Some("default") && str_of(g, "project_id") == Some(project)
                })
                .map(id_of)
        })
    }

    fn used_ips(&self, subnet_id: &str) -> HashSet<String> {
        let mut used = HashSet::new();
        for p in self.items.get("ports").into_iter().flatten() {
            for f in p["fixed_ips"].as_array().into_iter().flatten() {
                if f["subnet_id"].as_str() == Some(subnet_id) {
                    if let Some(ip) = f["ip_address"].as_str() {
                        used.insert(ip.to_string());
                    }
                }
            }
        }
        for fip in self.items.get("floatingips").into_iter().flatten() {
            if let Some(ip) = fip["floating_ip_address"].as_str() {
                used.insert(ip.to_string());
            }
        }
        used
    }

    fn allocate_ip(&self, subnet: &Value) -> Option<String> {
        let used = self.used_ips(&id_of(subnet));
        let gw = str_of(subnet, "gateway_ip").unwrap_or_default();
        for pool in subnet["allocation_pools"].as_array().into_iter().flatten() {
            let start: IpAddr = pool["start"].as_str()?.parse().ok()?;
            let end: IpAddr = pool["end"].as_str()?.parse().ok()?;
            let v6 = start.is_ipv6();
            let (s, e) = (to_u128(start), to_u128(end));
            for n in s..=e.min(s.saturating_add(65_536)) {
                let ip = from_u128(n, v6).to_string();
                if ip != gw && !used.contains(&ip) {
                    return Some(ip);
                }
            }
        }
        None
    }

    fn new_port(&mut self, body: Map<String, Value>, project: &str) -> Result<Value, Reply> {
        let Some(net_id) = body
            .get("network_id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(bad("Invalid input for operation: network_id is required."));
        };
        let Some(net) = self.get("networks", &net_id).cloned() else {
            return Err(not_found("NetworkNotFound", "Network", &net_id));
        };
        let mut fixed = Vec::new();
        match body.get("fixed_ips").and_then(Value::as_array) {
            Some(list) => {
                for f in list {
                    let sid = match f["subnet_id"].as_str() {
                        Some(s) => s.to_string(),
                        None => first_subnet(&net).unwrap_or_default(),
                    };
                    let Some(subnet) = self.get("subnets", &sid).cloned() else {
                        return Err(not_found("SubnetNotFound", "Subnet", &sid));
                    };
                    let ip = match f["ip_address"].as_str() {
                        Some(ip) => {
                            if self.used_ips(&sid).contains(ip) {
                                return Err(neutron_error(
                                    409,
                                    "IpAddressAlreadyAllocated",
                                    format!("IP address {ip} already allocated in subnet {sid}"),
                                ));
                            }
                            ip.to_string()
                        }
                        None => self.allocate_ip(&subnet).ok_or_else(|| {
                            neutron_error(
                                409,
                                "IpAddressGenerationFailure",
                                format!("No more IP addresses available on network {net_id}."),
                            )
                        })?,
                    };
                    fixed.push(json!({ "subnet_id": sid, "ip_address": ip }));
                }
            }
            None => {
                for sid in net["subnets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if let Some(subnet) = self.get("subnets", sid).cloned() {
                        if let Some(ip) = self.allocate_ip(&subnet) {
                            fixed.push(json!({ "subnet_id": sid, "ip_address": ip }));
                        }
                    }
                }
            }
        }
        let sgs = match body.get("security_groups") {
            Some(v) => v.clone(),
            None => json!(self.default_sg_id(project).into_iter().collect::<Vec<_>>()),
        };
        let now = iso_z(now_secs());
        let mac = format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            rand::random::<u8>(),
            rand::random::<u8>(),
            rand::random::<u8>()
        );
        let mut port = json!({
            "id": uuid_id(), "name": "", "network_id": net_id, "project_id": project,
            "mac_address": mac, "admin_state_up": true, "status": "DOWN", "device_id": "",
            "device_owner": "", "fixed_ips": fixed, "tenant_id": project,
            "port_security_enabled": true, "security_groups": sgs, "binding:vnic_type": "normal",
            "binding:profile": {}, "binding:host_id": "", "binding:vif_type": "unbound",
            "binding:vif_details": {}, "allowed_address_pairs": [], "extra_dhcp_opts": [],
            "description": "", "tags": [], "created_at": now, "updated_at": now,
            "revision_number": 1
        });
        merge(
            &mut port,
            &body,
            &[
                "id",
                "fixed_ips",
                "tenant_id",
                "project_id",
                "security_groups",
            ],
        );
        Ok(port)
    }
}

fn first_subnet(net: &Value) -> Option<String> {
    net["subnets"]
        .get(0)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    }
}

/// Parses a CIDR into (network address, prefix length, is v6).
fn parse_cidr(cidr: &str) -> Option<(u128, u8, bool)> {
    let (addr, len) = cidr.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let bits = if ip.is_ipv6() { 128 } else { 32 };
    if len > bits || len == 0 {
        return None;
    }
    let host_bits = u32::from(bits - len);
    let mask = if host_bits >= 128 {
        0
    } else {
        !((1u128 << host_bits) - 1)
    };
    Some((to_u128(ip) & mask, len, ip.is_ipv6()))
}

fn cidr_range(cidr: &str) -> Option<(u128, u128, bool)> {
    let (net, len, v6) = parse_cidr(cidr)?;
    let bits = if v6 { 128 } else { 32 };
    let size = 1u128
        .checked_shl(u32::from(bits - len))
        .unwrap_or(u128::MAX);
    Some((net, net.saturating_add(size - 1), v6))
}

fn new_security_group(name: &str, description: &str, project: &str) -> Value {
    let now = iso_z(now_secs());
    json!({
        "id": uuid_id(), "name": name, "description": description, "stateful": true,
        "shared": false, "project_id": project, "tenant_id": project, "tags": [],
        "created_at": now, "updated_at": now, "revision_number": 1
    })
}

fn new_rule(
    sg: &str,
    dir: &str,
    eth: &str,
    project: &str,
    remote_group: Option<String>,
    default_sg: bool,
) -> Value {
    let now = iso_z(now_secs());
    json!({
        "id": uuid_id(), "project_id": project, "tenant_id": project,
        "security_group_id": sg, "ethertype": eth, "direction": dir, "protocol": null,
        "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null,
        "remote_address_group_id": null, "normalized_cidr": null,
        "remote_group_id": remote_group, "standard_attr_id": 1, "description": null, "tags": [],
        "belongs_to_default_sg": default_sg, "created_at": now, "updated_at": now,
        "revision_number": 0
    })
}

fn merge(target: &mut Value, body: &Map<String, Value>, skip: &[&str]) {
    if let Value::Object(t) = target {
        for (k, v) in body {
            if !skip.contains(&k.as_str()) {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

fn bad(msg: impl Into<String>) -> Reply {
    neutron_error(400, "HTTPBadRequest", msg)
}

fn not_found(kind: &str, what: &str, id: &str) -> Reply {
    neutron_error(404, kind, format!("{what} {id} could not be found."))
}

fn conflict(kind: &str, msg: impl Into<String>) -> Reply {
    neutron_error(409, kind, msg)
}

/// Handles a Neutron request.
pub(crate) fn handle(ctx: &SiteCtx, world: &mut World, req: &SimRequest) -> Reply {
    let base = ctx.urls.network.clone();
    let segs: Vec<String> = req
        .segments
        .iter()
        .map(|s| s.strip_suffix(".json").unwrap_or(s).to_string())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("GET", []) => {
            return Reply::json(
                200,
                json!({ "versions": [{ "id": "v2.0", "status": "CURRENT", "links": [{ "href": format!("{base}/v2.0/"), "rel": "self" }] }] }),
            )
        }
        ("GET", ["v2.0"]) if require_auth(world, req).is_none() => {}
        _ => {}
    }
    let Some(auth) = require_auth(world, req) else {
        return super::http::auth_required(&ctx.urls.identity);
    };
    let rest: Vec<&str> = match segs.as_slice() {
        ["v2.0", rest @ ..] => rest.to_vec(),
        _ => return neutron_error(404, "HTTPNotFound", "The resource could not be found."),
    };
    if let Some(p) = &auth.project_id {
        world.network.ensure_default_sg(p);
    }
    let n = &mut world.network;
    match (m, rest.as_slice()) {
        ("GET", []) => {
            let res: Vec<Value> = COLLECTIONS
                .iter()
                .map(|(u, plural, single, _)| json!({ "name": single, "collection": plural, "links": [{ "href": format!("{base}/v2.0/{u}"), "rel": "self" }] }))
                .collect();
            Reply::json(200, json!({ "resources": res }))
        }
        ("GET", ["extensions"]) => {
            let list: Vec<Value> = EXTENSIONS.iter().map(|a| extension(a)).collect();
            Reply::json(200, json!({ "extensions": list }))
        }
        ("GET", ["extensions", alias]) => match EXTENSIONS.iter().find(|a| *a == alias) {
            Some(a) => Reply::json(200, json!({ "extension": extension(a) })),
            None => neutron_error(
                404,
                "HTTPNotFound",
                format!("Extension with alias {alias} does not exist"),
            ),
        },
        ("GET", ["availability_zones"]) => Reply::json(
            200,
            json!({ "availability_zones": [
                { "name": "nova", "resource": "network", "state": "available" },
                { "name": "nova", "resource": "router", "state": "available" }
            ] }),
        ),
        ("GET", ["quotas", pid, ..]) => Reply::json(
            200,
            json!({ "quota": { "network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50, "security_group": 10, "security_group_rule": 100, "project_id": pid } }),
        ),
        ("GET", [coll]) => match meta(coll) {
            Some(md) => list(n, md, &auth, req, &base),
            None => neutron_error(404, "HTTPNotFound", "The resource could not be found."),
        },
        ("POST", [coll]) => match meta(coll) {
            Some(md) => create(n, md, &auth, req),
            None => neutron_error(404, "HTTPNotFound", "The resource could not be found."),
        },
        (_, [coll, id, tail @ ..]) => {
            let Some(md) = meta(coll) else {
                return neutron_error(404, "HTTPNotFound", "The resource could not be found.");
            };
            let visible = n.get(md.0, id).is_some_and(|v| visible(v, &auth));
            if !visible {
                let what = md.2.replace('_', " ");
                let what = if what == "floatingip" {
                    "Floating IP".to_string()
                } else {
                    capitalize(&what)
                };
                return not_found(md.3, &what, id);
            }
            item(n, md, &auth, req, id, tail)
        }
        _ => neutron_error(404, "HTTPNotFound", "The resource could not be found."),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn extension(alias: &str) -> Value {
    json!({ "alias": alias, "name": alias, "description": format!("{alias} extension"), "updated": "2013-01-01T10:00:00-00:00", "links": [] })
}

fn visible(v: &Value, auth: &Auth) -> bool {
    auth.is_admin()
        || str_of(v, "project_id") == auth.project_id.as_deref()
        || v["shared"] == json!(true)
        || v["router:external"] == json!(true)
}

/// The stored object as the API shows it (security groups embed their rules).
fn view(n: &Network, md: (&str, &str, &str, &str), v: &Value) -> Value {
    let mut v = v.clone();
    if md.0 == "security-groups" {
        let sgid = id_of(&v);
        let rules: Vec<Value> = n
            .items
            .get("security-group-rules")
            .into_iter()
            .flatten()
            .filter(|r| str_of(r, "security_group_id") == Some(sgid.as_str()))
            .cloned()
            .collect();
        v["security_group_rules"] = Value::Array(rules);
    } else if md.0 == "security-group-rules" {
        // Neutron embeds rules in a group with every field of the model, but its
        // security-group-rules API shows them without `standard_attr_id` and `tags`.
        if let Some(o) = v.as_object_mut() {
            o.remove("standard_attr_id");
            o.remove("tags");
        }
    }
    v
}

fn project_fields(v: Value, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return v;
    }
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

fn list(
    n: &Network,
    md: (&str, &str, &str, &str),
    auth: &Auth,
    req: &SimRequest,
    base: &str,
) -> Reply {
    let fields: Vec<&str> = req
        .query
        .iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v.as_str())
        .collect();
    let items: Vec<Value> = n
        .items
        .get(md.0)
        .into_iter()
        .flatten()
        .filter(|v| visible(v, auth))
        .map(|v| view(n, md, v))
        .filter(|v| matches_filters(v, &req.query))
        .collect();
    let (page, more) = paginate(items, &req.query, usize::MAX);
    let mut body = Map::new();
    let last = page.last().map(id_of);
    body.insert(
        md.1.into(),
        Value::Array(
            page.into_iter()
                .map(|v| project_fields(v, &fields))
                .collect(),
        ),
    );
    if let (true, Some(last)) = (more, last) {
        let limit = req.query_get("limit").unwrap_or("1");
        body.insert(
            format!("{}_links", md.1),
            json!([{ "rel": "next", "href": format!("{base}/v2.0/{}?limit={limit}&marker={last}", md.0) }]),
        );
    }
    Reply::json(200, Value::Object(body))
}

fn create(
    n: &mut Network,
    md: (&'static str, &str, &str, &str),
    auth: &Auth,
    req: &SimRequest,
) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    // Bulk create: {"networks": [...]}.
    // All or nothing, as Neutron's bulk creates are.
    if let Some(list) = body.get(md.1).and_then(Value::as_array) {
        let before = n.clone();
        let mut out = Vec::new();
        for item in list {
            let Value::Object(o) = item else {
                *n = before;
                return bad("Invalid bulk request body.");
            };
            match create_one(n, md, auth, o.clone()) {
                Ok(v) => out.push(v),
                Err(r) => {
                    *n = before;
                    return r;
                }
            }
        }
        return Reply::json(201, json!({ md.1: out }));
    }
    let Some(Value::Object(o)) = body.get(md.2) else {
        return bad(format!("Resource body required. Missing '{}'.", md.2));
    };
    match create_one(n, md, auth, o.clone()) {
        Ok(v) => Reply::json(201, json!({ md.2: v })),
        Err(r) => r,
    }
}

fn create_one(
    n: &mut Network,
    md: (&'static str, &str, &str, &str),
    auth: &Auth,
    body: Map<String, Value>,
) -> Result<Value, Reply> {
    // neutron-lib's convert_to_boolean: booleans, "true"/"false", "1"/"0", 1/0.
    for k in [
        "admin_state_up",
        "shared",
        "port_security_enabled",
        "router:external",
        "enable_dhcp",
    ] {
        if let Some(v) = body.get(k) {
            let ok = matches!(v, Value::Bool(_))
                || matches!(
                    v.as_str().map(str::to_ascii_lowercase).as_deref(),
                    Some("true" | "false" | "1" | "0")
                )
                || matches!(v.as_u64(), Some(0 | 1));
            if !ok {
                return Err(bad(format!(
                    "Invalid input for {k}. Reason: '{}' cannot be converted to boolean.",
                    v.as_str().map_or(v.to_string(), str::to_string)
                )));
            }
        }
    }
    let project = body
        .get("project_id")
        .or(body.get("tenant_id"))
        .and_then(Value::as_str)
        .filter(|_| auth.is_admin())
        .map(str::to_string)
        .unwrap_or_else(|| auth.project());
    n.ensure_default_sg(&project);
    let now = iso_z(now_secs());
    let obj = match md.0 {
        "networks" => {
            for k in [
                "router:external",
                "provider:network_type",
                "provider:physical_network",
                "provider:segmentation_id",
                "shared",
            ] {
                if body.contains_key(k) && !auth.is_admin() && body[k] != json!(false) {
                    return Err(neutron_error(403, "HTTPForbidden", format!("(rule:create_network and rule:create_network:{k}) is disallowed by policy")));
                }
            }
            let mut v = json!({
                "id": uuid_id(), "name": "", "tenant_id": project, "project_id": project,
                "admin_state_up": true, "mtu": 1450, "status": "ACTIVE", "subnets": [],
                "shared": false, "port_security_enabled": true, "router:external": false,
                "provider:network_type": "vxlan", "provider:physical_network": null,
                "provider:segmentation_id": rand::random::<u16>() % 4000 + 1,
                "vlan_transparent": false, "qinq": false, "is_default": false,
                "availability_zone_hints": [], "availability_zones": [],
                "ipv4_address_scope": null, "ipv6_address_scope": null, "description": "",
                "tags": [], "created_at": now, "updated_at": now, "revision_number": 1
            });
            merge(
                &mut v,
                &body,
                &["id", "subnets", "tenant_id", "project_id", "status"],
            );
            v
        }
        "subnets" => new_subnet(n, &body, &project, &now)?,
        "ports" => n.new_port(body, &project)?,
        "routers" => {
            let mut v = json!({
                "id": uuid_id(), "name": "", "tenant_id": project, "project_id": project,
                "admin_state_up": true, "status": "ACTIVE", "external_gateway_info": null,
                "description": "", "availability_zones": [], "availability_zone_hints": [],
                "routes": [], "flavor_id": null, "distributed": false, "ha": false,
                "tags": [], "created_at": now, "updated_at": now,
                "revision_number": 1
            });
            merge(&mut v, &body, &["id", "tenant_id", "project_id", "status"]);
            if let Some(gw) = body.get("external_gateway_info").filter(|g| !g.is_null()) {
                v["external_gateway_info"] = gateway_info(n, gw)?;
            }
            v
        }
        "security-groups" => {
            let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
            if name == "default" && n.default_sg_id(&project).is_some() {
                return Err(conflict(
                    "SecurityGroupDefaultAlreadyExists",
                    "Default security group already exists.",
                ));
            }
            let mut v = new_security_group(name, "", &project);
            merge(
                &mut v,
                &body,
                &["id", "tenant_id", "project_id", "security_group_rules"],
            );
            let sgid = id_of(&v);
            for eth in ["IPv4", "IPv6"] {
                let r = new_rule(&sgid, "egress", eth, &project, None, false);
                n.coll("security-group-rules").push(r);
            }
            v
        }
        "security-group-rules" => {
            let Some(sg) = body.get("security_group_id").and_then(Value::as_str) else {
                return Err(bad(
                    "Invalid input for operation: security_group_id is required.",
                ));
            };
            let Some(group) = n.get("security-groups", sg).cloned() else {
                return Err(not_found("SecurityGroupNotFound", "Security group", sg));
            };
            let dir = body
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ingress");
            if !["ingress", "egress"].contains(&dir) {
                return Err(bad(format!(
                    "Invalid input for direction. Reason: {dir} is not in valid_values."
                )));
            }
            let eth = body
                .get("ethertype")
                .and_then(Value::as_str)
                .unwrap_or("IPv4");
            let mut v = new_rule(
                sg,
                dir,
                eth,
                &project,
                None,
                str_of(&group, "name") == Some("default"),
            );
            // Rules from the default templates have no description; an API-created one "".
            v["description"] = json!("");
            merge(&mut v, &body, &["id", "tenant_id", "project_id"]);
            // Neutron derives it from remote_ip_prefix alone (null without a prefix).
            v["normalized_cidr"] = v["remote_ip_prefix"].clone();
            let same = |r: &Value| {
                [
                    "security_group_id",
                    "direction",
                    "ethertype",
                    "protocol",
                    "port_range_min",
                    "port_range_max",
                    "remote_ip_prefix",
                    "remote_group_id",
                ]
                .iter()
                .all(|k| r[*k] == v[*k])
            };
            if let Some(dup) = n
                .items
                .get("security-group-rules")
                .into_iter()
                .flatten()
                .find(|r| same(r))
            {
                return Err(conflict(
                    "SecurityGroupRuleExists",
                    format!(
                        "Security group rule already exists. Rule id is {}.",
                        id_of(dup)
                    ),
                ));
            }
            v
        }
        "floatingips" => {
            let Some(net_id) = body.get("floating_network_id").and_then(Value::as_str) else {
                return Err(bad(
                    "Invalid input for operation: floating_network_id is required.",
                ));
            };
            let Some(net) = n.get("networks", net_id).cloned() else {
                return Err(not_found("NetworkNotFound", "Network", net_id));
            };
            if net["router:external"] != json!(true) {
                return Err(bad(format!(
                    "Bad floatingip request: Network {net_id} is not a valid external network."
                )));
            }
            let subnet = first_subnet(&net).and_then(|s| n.get("subnets", &s).cloned());
            let Some(ip) = subnet.and_then(|s| n.allocate_ip(&s)) else {
                return Err(conflict(
                    "IpAddressGenerationFailure",
                    format!("No more IP addresses available on network {net_id}."),
                ));
            };
            let mut v = json!({
                "id": uuid_id(), "floating_ip_address": ip, "floating_network_id": net_id,
                "router_id": null, "port_id": null, "fixed_ip_address": null, "status": "DOWN",
                "project_id": project, "tenant_id": project, "description": "", "dns_domain": "",
                "dns_name": "", "port_details": null, "qos_policy_id": null, "tags": [],
                "created_at": now, "updated_at": now, "revision_number": 0
            });
            merge(
                &mut v,
                &body,
                &[
                    "id",
                    "floating_ip_address",
                    "tenant_id",
                    "project_id",
                    "port_id",
                ],
            );
            associate_fip(n, &mut v, body.get("port_id"))?;
            v
        }
        _ => return Err(bad("Unsupported resource.")),
    };
    n.coll(md.0).push(obj.clone());
    if md.0 == "subnets" {
        let net = str_of(&obj, "network_id").unwrap_or_default().to_string();
        if let Some(i) = find_idx(n.coll("networks"), &net) {
            if let Some(a) = n.coll("networks")[i]["subnets"].as_array_mut() {
                a.push(json!(id_of(&obj)));
            }
        }
    }
    Ok(view(n, md, &obj))
}

fn gateway_info(n: &Network, gw: &Value) -> Result<Value, Reply> {
    let Some(net_id) = gw["network_id"].as_str() else {
        return Err(bad(
            "Invalid input for external_gateway_info: network_id is required.",
        ));
    };
    let Some(net) = n.get("networks", net_id) else {
        return Err(not_found("NetworkNotFound", "Network", net_id));
    };
    if net["router:external"] != json!(true) {
        return Err(bad(format!(
            "Bad router request: Network {net_id} is not an external network."
        )));
    }
    let fixed: Vec<Value> = first_subnet(net)
        .and_then(|s| n.get("subnets", &s).map(|sub| (s, n.allocate_ip(sub))))
        .and_then(|(s, ip)| ip.map(|ip| vec![json!({ "subnet_id": s, "ip_address": ip })]))
        .unwrap_or_default();
    Ok(
        json!({ "network_id": net_id, "external_fixed_ips": gw.get("external_fixed_ips").cloned().unwrap_or(json!(fixed)), "enable_snat": gw.get("enable_snat").cloned().unwrap_or(json!(true)) }),
    )
}

fn associate_fip(n: &Network, fip: &mut Value, port: Option<&Value>) -> Result<(), Reply> {
    match port.and_then(Value::as_str) {
        Some(pid) => {
            let Some(p) = n.get("ports", pid) else {
                return Err(not_found("PortNotFound", "Port", pid));
            };
            fip["port_id"] = json!(pid);
            fip["fixed_ip_address"] = p["fixed_ips"][0]["ip_address"].clone();
            fip["status"] = json!("ACTIVE");
            fip["port_details"] = json!({ "name": p["name"], "network_id": p["network_id"], "mac_address": p["mac_address"], "admin_state_up": p["admin_state_up"], "status": p["status"], "device_id": p["device_id"], "device_owner": p["device_owner"] });
            let router = n
                .items
                .get("ports")
                .into_iter()
                .flatten()
                .find(|r| {
                    str_of(r, "device_owner") == Some("network:router_interface")
                        && r["network_id"] == p["network_id"]
                })
                .and_then(|r| r["device_id"].as_str().map(str::to_string));
            fip["router_id"] = json!(router);
        }
        None if port.is_some_and(Value::is_null) => {
            for k in ["port_id", "fixed_ip_address", "router_id", "port_details"] {
                fip[k] = Value::Null;
            }
            fip["status"] = json!("DOWN");
        }
        None => {}
    }
    Ok(())
}

fn new_subnet(
    n: &Network,
    body: &Map<String, Value>,
    project: &str,
    now: &str,
) -> Result<Value, Reply> {
    let Some(net_id) = body.get("network_id").and_then(Value::as_str) else {
        return Err(bad("Invalid input for operation: network_id is required."));
    };
    let Some(net) = n.get("networks", net_id) else {
        return Err(not_found("NetworkNotFound", "Network", net_id));
    };
    let Some(cidr) = body.get("cidr").and_then(Value::as_str) else {
        return Err(bad(
            "Bad subnet request: a subnetpool must be specified in the absence of a cidr.",
        ));
    };
    let Some((start, end, v6)) = cidr_range(cidr) else {
        return Err(bad(format!(
            "Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
        )));
    };
    let version = if v6 { 6 } else { 4 };
    if body
        .get("ip_version")
        .and_then(Value::as_u64)
        .is_some_and(|v| v != version)
    {
        return Err(bad(format!(
            "Invalid input for operation: Cidr {cidr} does not match ip_version."
        )));
    }
    for sid in net["subnets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some((s2, e2, _)) = n
            .get("subnets", sid)
            .and_then(|s| str_of(s, "cidr"))
            .and_then(cidr_range)
        {
            if start <= e2 && s2 <= end {
                return Err(bad(format!("Invalid input for operation: Requested subnet with cidr: {cidr} for network: {net_id} overlaps with another subnet.")));
            }
        }
    }
    let normalized = format!(
        "{}/{}",
        from_u128(start, v6),
        cidr.split_once('/').map(|x| x.1).unwrap_or_default()
    );
    let gateway = match body.get("gateway_ip") {
        Some(Value::Null) => Value::Null,
        Some(Value::String(g)) => json!(g),
        _ => json!(from_u128(start + 1, v6).to_string()),
    };
    let last = if v6 { end } else { end.saturating_sub(1) };
    let pools = match body.get("allocation_pools") {
        Some(p @ Value::Array(_)) => p.clone(),
        _ => {
            let first = if gateway.as_str() == Some(&from_u128(start + 1, v6).to_string()) {
                start + 2
            } else {
                start + 1
            };
            json!([{ "start": from_u128(first, v6).to_string(), "end": from_u128(last, v6).to_string() }])
        }
    };
    let mut v = json!({
        "id": uuid_id(), "name": "", "project_id": project, "network_id": net_id,
        "ip_version": version, "subnetpool_id": null, "enable_dhcp": true,
        "ipv6_ra_mode": null, "ipv6_address_mode": null, "gateway_ip": gateway, "cidr": normalized,
        "allocation_pools": pools, "host_routes": [], "dns_nameservers": [], "description": "",
        "router:external": net["router:external"], "service_types": [], "tags": [],
        "created_at": now, "updated_at": now, "revision_number": 0, "tenant_id": project
    });
    merge(
        &mut v,
        body,
        &[
            "id",
            "cidr",
            "gateway_ip",
            "allocation_pools",
            "tenant_id",
            "project_id",
            "ip_version",
        ],
    );
    Ok(v)
}

fn touch(v: &mut Value) {
    v["revision_number"] = json!(v["revision_number"].as_u64().unwrap_or(0) + 1);
    v["updated_at"] = json!(iso_z(now_secs()));
}

fn item(
    n: &mut Network,
    md: (&'static str, &str, &str, &str),
    auth: &Auth,
    req: &SimRequest,
    id: &str,
    tail: &[&str],
) -> Reply {
    let m = req.method.as_str();
    let Some(i) = find_idx(n.coll(md.0), id) else {
        return not_found(md.3, md.2, id);
    };
    let _ = auth;
    match (m, tail) {
        ("GET", []) => {
            let fields: Vec<&str> = req
                .query
                .iter()
                .filter(|(k, _)| k == "fields")
                .map(|(_, v)| v.as_str())
                .collect();
            let obj = n.coll(md.0)[i].clone();
            let v = view(n, md, &obj);
            Reply::json(200, json!({ md.2: project_fields(v, &fields) }))
        }
        ("PUT", []) => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return bad(e),
            };
            let Some(Value::Object(o)) = body.get(md.2) else {
                return bad(format!("Resource body required. Missing '{}'.", md.2));
            };
            let mut obj = n.coll(md.0)[i].clone();
            if md.0 == "routers" {
                if let Some(gw) = o.get("external_gateway_info") {
                    obj["external_gateway_info"] = if gw.is_null() {
                        Value::Null
                    } else {
                        match gateway_info(n, gw) {
                            Ok(g) => g,
                            Err(r) => return r,
                        }
                    };
                }
            }
            if md.0 == "floatingips" {
                if let Err(r) = associate_fip(n, &mut obj, o.get("port_id")) {
                    return r;
                }
            }
            if md.0 == "ports" {
                if let Some(f) = o.get("fixed_ips") {
                    obj["fixed_ips"] = f.clone();
                }
            }
            merge(
                &mut obj,
                o,
                &[
                    "id",
                    "tenant_id",
                    "project_id",
                    "network_id",
                    "cidr",
                    "ip_version",
                    "external_gateway_info",
                    "port_id",
                    "fixed_ips",
                    "security_group_id",
                    "subnets",
                    "floating_ip_address",
                ],
            );
            touch(&mut obj);
            n.coll(md.0)[i] = obj.clone();
            Reply::json(200, json!({ md.2: view(n, md, &obj) }))
        }
        ("DELETE", []) => delete(n, md, i, id),
        ("GET", ["tags"]) => Reply::json(200, json!({ "tags": n.coll(md.0)[i]["tags"] })),
        ("PUT", ["tags"]) => {
            let tags = match req.json().map(|b| b["tags"].clone()) {
                Ok(Value::Array(t)) if t.iter().all(Value::is_string) => t,
                Ok(_) => return bad("Invalid input for tags."),
                Err(e) => return bad(e),
            };
            let obj = &mut n.coll(md.0)[i];
            obj["tags"] = Value::Array(tags);
            touch(obj);
            Reply::json(200, json!({ "tags": obj["tags"] }))
        }
        ("DELETE", ["tags"]) => {
            let obj = &mut n.coll(md.0)[i];
            obj["tags"] = json!([]);
            touch(obj);
            Reply::empty(204)
        }
        ("GET", ["tags", tag]) => {
            if n.coll(md.0)[i]["tags"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(*tag)))
            {
                Reply::empty(204)
            } else {
                neutron_error(
                    404,
                    "TagNotFound",
                    format!("Tag {tag} could not be found for {} {id}.", md.2),
                )
            }
        }
        ("PUT", ["tags", tag]) => {
            let obj = &mut n.coll(md.0)[i];
            let present = obj["tags"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(*tag)));
            if !present {
                if let Some(a) = obj["tags"].as_array_mut() {
                    a.push(json!(tag));
                }
                touch(obj);
            }
            Reply::empty(201)
        }
        ("DELETE", ["tags", tag]) => {
            let obj = &mut n.coll(md.0)[i];
            let before = obj["tags"].as_array().map(Vec::len).unwrap_or(0);
            if let Some(a) = obj["tags"].as_array_mut() {
                a.retain(|t| t.as_str() != Some(*tag));
            }
            if obj["tags"].as_array().map(Vec::len).unwrap_or(0) == before {
                return neutron_error(
                    404,
                    "TagNotFound",
                    format!("Tag {tag} could not be found for {} {id}.", md.2),
                );
            }
            touch(obj);
            Reply::empty(204)
        }
        ("PUT", [action @ ("add_router_interface" | "remove_router_interface")])
            if md.0 == "routers" =>
        {
            router_interface(n, req, id, action == &"add_router_interface")
        }
        ("PUT", ["add_extraroutes" | "remove_extraroutes"]) if md.0 == "routers" => {
            Reply::json(200, json!({ "router": n.coll(md.0)[i] }))
        }
        _ => neutron_error(404, "HTTPNotFound", "The resource could not be found."),
    }
}

fn delete(n: &mut Network, md: (&'static str, &str, &str, &str), i: usize, id: &str) -> Reply {
    let ports = n.items.get("ports").cloned().unwrap_or_default();
    match md.0 {
        "networks" => {
            if ports.iter().any(|p| {
                str_of(p, "network_id") == Some(id)
                    && str_of(p, "device_owner") != Some("network:dhcp")
            }) {
                return conflict("NetworkInUse", format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."));
            }
            n.coll("subnets")
                .retain(|s| str_of(s, "network_id") != Some(id));
        }
        "subnets" => {
            let used = ports.iter().any(|p| {
                p["fixed_ips"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| f["subnet_id"].as_str() == Some(id))
            });
            if used {
                return conflict("SubnetInUse", format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."));
            }
            let net = str_of(&n.coll("subnets")[i], "network_id")
                .unwrap_or_default()
                .to_string();
            if let Some(ni) = find_idx(n.coll("networks"), &net) {
                if let Some(a) = n.coll("networks")[ni]["subnets"].as_array_mut() {
                    a.retain(|s| s.as_str() != Some(id));
                }
            }
        }
        "ports" => {
            if str_of(&n.coll("ports")[i], "device_owner") == Some("network:router_interface") {
                return conflict("PortInUse", format!("Port {id} cannot be deleted directly via the port API: has device owner network:router_interface."));
            }
            n.coll("floatingips")
                .iter_mut()
                .filter(|f| str_of(f, "port_id") == Some(id))
                .for_each(|f| {
                    for k in ["port_id", "fixed_ip_address", "router_id", "port_details"] {
                        f[k] = Value::Null;
                    }
                });
        }
        "routers"
            if ports.iter().any(|p| {
                str_of(p, "device_id") == Some(id)
                    && str_of(p, "device_owner") == Some("network:router_interface")
            }) =>
        {
            return conflict("RouterInUse", format!("Router {id} still has ports"));
        }
        "security-groups" => {
            if ports.iter().any(|p| {
                p["security_groups"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|g| g.as_str() == Some(id)))
            }) {
                return conflict("SecurityGroupInUse", format!("Security Group {id} in use."));
            }
            n.coll("security-group-rules")
                .retain(|r| str_of(r, "security_group_id") != Some(id));
        }
        _ => {}
    }
    if let Some(j) = find_idx(n.coll(md.0), id) {
        n.coll(md.0).remove(j);
    }
    Reply::empty(204)
}

fn router_interface(n: &mut Network, req: &SimRequest, router_id: &str, add: bool) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let project = n
        .get("routers", router_id)
        .and_then(|r| str_of(r, "project_id"))
        .unwrap_or_default()
        .to_string();
    let (subnet_id, port_id) = (body["subnet_id"].as_str(), body["port_id"].as_str());
    if add {
        let port_id = match (subnet_id, port_id) {
            (Some(sid), None) => {
                let Some(subnet) = n.get("subnets", sid).cloned() else {
                    return not_found("SubnetNotFound", "Subnet", sid);
                };
                let taken = n.items.get("ports").into_iter().flatten().any(|p| {
                    str_of(p, "device_id") == Some(router_id)
                        && p["fixed_ips"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|f| f["subnet_id"].as_str() == Some(sid))
                });
                if taken {
                    return bad(format!(
                        "Bad router request: Router already has a port on subnet {sid}."
                    ));
                }
                let Some(gw) = subnet["gateway_ip"].as_str() else {
                    return bad(
                        "Bad router request: Subnet for router interface must have a gateway IP.",
                    );
                };
                let b = json!({ "network_id": subnet["network_id"], "fixed_ips": [{ "subnet_id": sid, "ip_address": gw }], "security_groups": [] });
                let Value::Object(b) = b else {
                    return bad("internal error");
                };
                let mut port = match n.new_port(b, &project) {
                    Ok(p) => p,
                    Err(r) => return r,
                };
                port["device_id"] = json!(router_id);
                port["device_owner"] = json!("network:router_interface");
                port["status"] = json!("ACTIVE");
                let pid = id_of(&port);
                n.coll("ports").push(port);
                pid
            }
            (None, Some(pid)) => {
                let Some(i) = find_idx(n.coll("ports"), pid) else {
                    return not_found("PortNotFound", "Port", pid);
                };
                let p = &mut n.coll("ports")[i];
                if !str_of(p, "device_id").unwrap_or_default().is_empty() {
                    return conflict("PortInUse", format!("Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.", str_of(p, "network_id").unwrap_or_default(), str_of(p, "device_id").unwrap_or_default()));
                }
                p["device_id"] = json!(router_id);
                p["device_owner"] = json!("network:router_interface");
                p["status"] = json!("ACTIVE");
                pid.to_string()
            }
            _ => return bad("Bad router request: Either subnet_id or port_id must be specified."),
        };
        if let Some(ri) = find_idx(n.coll("routers"), router_id) {
            touch(&mut n.coll("routers")[ri]);
        }
        interface_info(n, router_id, &port_id)
    } else {
        let found = n.items.get("ports").into_iter().flatten().find(|p| {
            str_of(p, "device_id") == Some(router_id)
                && str_of(p, "device_owner") == Some("network:router_interface")
                && (port_id.is_some_and(|pid| id_of(p) == pid)
                    || subnet_id.is_some_and(|sid| {
                        p["fixed_ips"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|f| f["subnet_id"].as_str() == Some(sid))
                    }))
        });
        let Some(port) = found.cloned() else {
            let what = subnet_id.or(port_id).unwrap_or_default();
            return neutron_error(
                404,
                "RouterInterfaceNotFoundForSubnet",
                format!("Router {router_id} has no interface on subnet {what}"),
            );
        };
        let pid = id_of(&port);
        let info = interface_info(n, router_id, &pid);
        n.coll("ports").retain(|p| id_of(p) != pid);
        if let Some(ri) = find_idx(n.coll("routers"), router_id) {
            touch(&mut n.coll("routers")[ri]);
        }
        info
    }
}

fn interface_info(n: &Network, router_id: &str, port_id: &str) -> Reply {
    let Some(p) = n.get("ports", port_id) else {
        return not_found("PortNotFound", "Port", port_id);
    };
    let subnets: Vec<Value> = p["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["subnet_id"].clone())
        .collect();
    Reply::json(
        200,
        json!({
            "network_id": p["network_id"], "project_id": p["project_id"],
            "subnet_id": subnets.first().cloned().unwrap_or(Value::Null), "subnet_ids": subnets,
            "port_id": port_id, "id": router_id
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let (s, e, v6) = cidr_range("10.88.0.0/24").unwrap();
        assert!(!v6);
        assert_eq!(from_u128(s, false).to_string(), "10.88.0.0");
        assert_eq!(from_u128(e, false).to_string(), "10.88.0.255");
        assert_eq!(parse_cidr("10.88.0.7/24").map(|x| x.0), Some(s));
        assert!(cidr_range("10.0.0.0/33").is_none());
        let (s6, _, v6) = cidr_range("fd00::/64").unwrap();
        assert!(v6);
        assert_eq!(from_u128(s6 + 1, true).to_string(), "fd00::1");
    }
}
