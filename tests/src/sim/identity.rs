//! Simulated Keystone v3: password/token auth, tokens, catalog, projects, users, groups, roles,
//! role assignments, domains, services, endpoints and regions.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::http::{
    body_object, find_idx, hex_id, id_of, iso_micro_z, keystone_error, matches_filters, now_secs,
    str_of, Reply, SimRequest,
};
use super::{Endpoints, SiteConfig, SiteCtx, World};

/// Who a request's token belongs to, as every service sees it.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user_id: String,
    pub user_name: String,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub roles: Vec<String>,
}

impl Auth {
    /// Whether the token carries the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }

    /// The scoped project id, or an empty string.
    pub fn project(&self) -> String {
        self.project_id.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Token {
    user_id: String,
    project_id: Option<String>,
    domain_id: Option<String>,
    issued: u64,
    expires: u64,
    audit_id: String,
    methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Assignment {
    role_id: String,
    user_id: Option<String>,
    group_id: Option<String>,
    project_id: Option<String>,
    domain_id: Option<String>,
}

/// Keystone's state.
#[derive(Debug)]
pub struct Identity {
    base: String,
    ttl: Duration,
    domains: Vec<Value>,
    projects: Vec<Value>,
    users: Vec<Value>,
    passwords: HashMap<String, String>,
    groups: Vec<Value>,
    memberships: Vec<(String, String)>,
    roles: Vec<Value>,
    assignments: Vec<Assignment>,
    tokens: HashMap<String, Token>,
    services: Vec<Value>,
    endpoints: Vec<Value>,
    regions: Vec<Value>,
}

fn token_string() -> String {
    format!("gAAAAAB{}{}", hex_id(), hex_id())
}

fn audit_id() -> String {
    hex_id()[..22].to_string()
}

impl Identity {
    /// The bootstrap data: domain `default`, projects `admin`/`demo`/`service`, users `admin`
    /// (role admin on admin) and `demo` (role member on demo), roles admin/member/reader/
    /// service/manager, and the catalog of the site's five services.
    pub fn bootstrap(config: &SiteConfig, urls: &Endpoints) -> Identity {
        let mut id = Identity {
            base: urls.identity.clone(),
            ttl: config.token_ttl,
            domains: vec![json!({
                "id": "default", "name": "Default", "description": "The default domain",
                "enabled": true, "tags": [], "options": {}
            })],
            projects: Vec::new(),
            users: Vec::new(),
            passwords: HashMap::new(),
            groups: Vec::new(),
            memberships: Vec::new(),
            roles: Vec::new(),
            assignments: Vec::new(),
            tokens: HashMap::new(),
            services: Vec::new(),
            endpoints: Vec::new(),
            regions: vec![json!({
                "id": config.region, "description": "", "parent_region_id": null
            })],
        };
        // `keystone-manage bootstrap` creates these roles immutable.
        for r in ["admin", "manager", "member", "reader", "service"] {
            id.roles.push(json!({
                "id": hex_id(), "name": r, "domain_id": null, "description": null,
                "options": { "immutable": true }
            }));
        }
        for p in ["admin", "demo", "service"] {
            id.projects
                .push(new_project(p, "default", "Bootstrap project", vec![]));
        }
        for (name, pw) in [("admin", config.admin_password.as_str()), ("demo", "demo")] {
            let uid = hex_id();
            id.users.push(json!({
                "id": uid, "name": name, "domain_id": "default", "enabled": true,
                "password_expires_at": null, "options": {}
            }));
            id.passwords.insert(uid, pw.to_string());
        }
        let (admin_user, demo_user) = (id.user_id_by_name("admin"), id.user_id_by_name("demo"));
        let (admin_p, demo_p) = (
            id.project_id_by_name("admin"),
            id.project_id_by_name("demo"),
        );
        for (u, p, roles) in [
            (
                admin_user,
                admin_p,
                &["admin", "manager", "member", "reader"][..],
            ),
            (
                id.user_id_by_name("demo"),
                id.project_id_by_name("demo"),
                &["member", "reader"][..],
            ),
        ] {
            for r in roles {
                let role_id = id.role_id_by_name(r).unwrap_or_default();
                id.assignments.push(Assignment {
                    role_id,
                    user_id: u.clone(),
                    group_id: None,
                    project_id: p.clone(),
                    domain_id: None,
                });
            }
        }
        let _ = (demo_user, demo_p);
        let catalog = [
            ("keystone", "identity", format!("{}/v3", urls.identity)),
            ("nova", "compute", format!("{}/v2.1", urls.compute)),
            ("glance", "image", urls.image.clone()),
            (
                "cinder",
                "block-storage",
                format!("{}/v3/%(project_id)s", urls.volume),
            ),
            ("neutron", "network", urls.network.clone()),
        ];
        for (name, kind, url) in catalog {
            let sid = hex_id();
            id.services.push(json!({
                "id": sid, "name": name, "type": kind, "enabled": true, "description": ""
            }));
            for iface in ["public", "internal", "admin"] {
                id.endpoints.push(json!({
                    "id": hex_id(), "interface": iface, "region_id": config.region,
                    "region": config.region, "service_id": sid, "url": url, "enabled": true
                }));
            }
        }
        id
    }

    /// Project id by name (any domain).
    pub fn project_id_by_name(&self, name: &str) -> Option<String> {
        self.projects
            .iter()
            .find(|p| str_of(p, "name") == Some(name))
            .map(id_of)
    }

    /// User id by name (any domain).
    pub fn user_id_by_name(&self, name: &str) -> Option<String> {
        self.users
            .iter()
            .find(|u| str_of(u, "name") == Some(name))
            .map(id_of)
    }

    fn role_id_by_name(&self, name: &str) -> Option<String> {
        self.roles
            .iter()
            .find(|r| str_of(r, "name") == Some(name))
            .map(id_of)
    }

    /// Whether a project id exists.
    pub fn project_exists(&self, id: &str) -> bool {
        find_idx(&self.projects, id).is_some()
    }

    /// Issues a project-scoped token without HTTP (for tests); `None` if the names are unknown
    /// or the user has no role on the project.
    pub fn issue_for_names(&mut self, user: &str, project: &str) -> Option<String> {
        let uid = self.user_id_by_name(user)?;
        let pid = self.project_id_by_name(project)?;
        if self.roles_on(&uid, Some(&pid), None).is_empty() {
            return None;
        }
        Some(self.issue(uid, Some(pid), None, vec!["password".into()]).0)
    }

    fn issue(
        &mut self,
        user_id: String,
        project_id: Option<String>,
        domain_id: Option<String>,
        methods: Vec<String>,
    ) -> (String, Token) {
        let now = now_secs();
        let tok = Token {
            user_id,
            project_id,
            domain_id,
            issued: now,
            expires: now + self.ttl.as_secs(),
            audit_id: audit_id(),
            methods,
        };
        let s = token_string();
        self.tokens.insert(s.clone(), tok.clone());
        (s, tok)
    }

    /// Resolves a token of this site; `None` if unknown, revoked or expired.
    pub fn authenticate(&self, token: &str) -> Option<Auth> {
        let t = self.tokens.get(token)?;
        if t.expires <= now_secs() {
            return None;
        }
        let user = self.users.iter().find(|u| id_of(u) == t.user_id)?;
        if user.get("enabled") == Some(&Value::Bool(false)) {
            return None;
        }
        let roles = self
            .roles_on(&t.user_id, t.project_id.as_deref(), t.domain_id.as_deref())
            .into_iter()
            .filter_map(|rid| {
                self.roles
                    .iter()
                    .find(|r| id_of(r) == rid)
                    .and_then(|r| str_of(r, "name").map(str::to_string))
            })
            .collect();
        Some(Auth {
            user_id: t.user_id.clone(),
            user_name: str_of(user, "name").unwrap_or_default().to_string(),
            project_id: t.project_id.clone(),
            domain_id: t.domain_id.clone(),
            roles,
        })
    }

    /// Role ids a user holds on a project or domain, directly or through groups.
    fn roles_on(&self, user: &str, project: Option<&str>, domain: Option<&str>) -> Vec<String> {
        if project.is_none() && domain.is_none() {
            return Vec::new();
        }
        let groups: Vec<&str> = self
            .memberships
            .iter()
            .filter(|(_, u)| u == user)
            .map(|(g, _)| g.as_str())
            .collect();
        let mut out: Vec<String> = Vec::new();
        for a in &self.assignments {
            let actor = a.user_id.as_deref() == Some(user)
                || a.group_id.as_deref().is_some_and(|g| groups.contains(&g));
            let scope = (project.is_some() && a.project_id.as_deref() == project)
                || (domain.is_some() && a.domain_id.as_deref() == domain);
            if actor && scope && !out.contains(&a.role_id) {
                out.push(a.role_id.clone());
            }
        }
        out
    }

    fn domain_ref(&self, id: &str) -> Value {
        let name = self
            .domains
            .iter()
            .find(|d| id_of(d) == id)
            .and_then(|d| str_of(d, "name"))
            .unwrap_or(id);
        json!({ "id": id, "name": name })
    }

    fn find_domain(&self, id: Option<&str>, name: Option<&str>) -> Option<String> {
        self.domains
            .iter()
            .find(|d| {
                id.is_some_and(|i| id_of(d) == i)
                    || name.is_some_and(|n| str_of(d, "name") == Some(n))
            })
            .map(id_of)
    }

    /// The catalog of a token, with `%(project_id)s` expanded.
    fn catalog(&self, project_id: Option<&str>) -> Value {
        let pid = project_id.unwrap_or_default();
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|s| {
                let sid = id_of(s);
                let eps: Vec<Value> = self
                    .endpoints
                    .iter()
                    .filter(|e| str_of(e, "service_id") == Some(sid.as_str()))
                    .map(|e| {
                        let url = str_of(e, "url")
                            .unwrap_or_default()
                            .replace("%(project_id)s", pid)
                            .replace("$(project_id)s", pid)
                            .replace("%(tenant_id)s", pid);
                        json!({
                            "id": e["id"], "interface": e["interface"],
                            "region_id": e["region_id"], "url": url, "region": e["region"]
                        })
                    })
                    .collect();
                json!({ "endpoints": eps, "id": sid, "type": s["type"], "name": s["name"] })
            })
            .collect();
        Value::Array(services)
    }

    fn token_body(&self, tok: &Token, with_catalog: bool) -> Value {
        let user = self
            .users
            .iter()
            .find(|u| id_of(u) == tok.user_id)
            .cloned()
            .unwrap_or(Value::Null);
        let user_domain = str_of(&user, "domain_id").unwrap_or("default").to_string();
        let mut t = Map::new();
        t.insert("methods".into(), json!(tok.methods));
        t.insert(
            "user".into(),
            json!({
                "domain": self.domain_ref(&user_domain),
                "id": tok.user_id,
                "name": user.get("name").cloned().unwrap_or(Value::Null),
                "password_expires_at": null
            }),
        );
        t.insert("audit_ids".into(), json!([tok.audit_id]));
        t.insert("expires_at".into(), json!(iso_micro_z(tok.expires)));
        t.insert("issued_at".into(), json!(iso_micro_z(tok.issued)));
        let scoped = tok.project_id.is_some() || tok.domain_id.is_some();
        if let Some(pid) = &tok.project_id {
            let p = self
                .projects
                .iter()
                .find(|p| id_of(p) == *pid)
                .cloned()
                .unwrap_or(Value::Null);
            let pd = str_of(&p, "domain_id").unwrap_or("default").to_string();
            t.insert(
                "project".into(),
                json!({ "domain": self.domain_ref(&pd), "id": pid, "name": p.get("name").cloned().unwrap_or(Value::Null) }),
            );
            t.insert("is_domain".into(), json!(false));
        }
        if let Some(did) = &tok.domain_id {
            t.insert("domain".into(), self.domain_ref(did));
        }
        if scoped {
            let roles: Vec<Value> = self
                .roles_on(
                    &tok.user_id,
                    tok.project_id.as_deref(),
                    tok.domain_id.as_deref(),
                )
                .iter()
                .filter_map(|rid| self.roles.iter().find(|r| id_of(r) == *rid))
                .map(|r| json!({ "id": r["id"], "name": r["name"] }))
                .collect();
            t.insert("roles".into(), Value::Array(roles));
            if with_catalog {
                t.insert("catalog".into(), self.catalog(tok.project_id.as_deref()));
            }
        }
        json!({ "token": t })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v3/{path}", self.base)
    }

    fn with_links(&self, collection: &str, v: &Value) -> Value {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.insert(
                "links".into(),
                json!({ "self": self.url(&format!("{collection}/{}", id_of(&Value::Object(m.clone())))) }),
            );
        }
        v
    }

    fn list(&self, key: &str, items: &[Value], req: &SimRequest) -> Reply {
        let out: Vec<Value> = items
            .iter()
            .filter(|i| matches_filters(i, &req.query))
            .map(|i| self.with_links(key, i))
            .collect();
        let self_url = format!("{}{}", self.base, req.path);
        Reply::json(
            200,
            json!({ key: out, "links": { "self": self_url, "previous": null, "next": null } }),
        )
    }

    fn one(&self, collection: &str, key: &str, v: &Value, status: u16) -> Reply {
        Reply::json(status, json!({ key: self.with_links(collection, v) }))
    }
}

fn new_project(name: &str, domain: &str, description: &str, tags: Vec<Value>) -> Value {
    json!({
        "id": hex_id(), "name": name, "domain_id": domain, "description": description,
        "enabled": true, "parent_id": domain, "is_domain": false, "tags": tags, "options": {}
    })
}

fn not_found(kind: &str, id: &str) -> Reply {
    keystone_error(404, format!("Could not find {kind}: {id}."))
}

fn forbidden(action: &str) -> Reply {
    keystone_error(
        403,
        format!("You are not authorized to perform the requested action: identity:{action}."),
    )
}

fn bad_request(msg: impl Into<String>) -> Reply {
    keystone_error(400, msg)
}

fn unauthorized() -> Reply {
    keystone_error(401, "The request you have made requires authentication.")
}

/// Handles a Keystone request.
pub(crate) fn handle(ctx: &SiteCtx, world: &mut World, req: &SimRequest) -> Reply {
    let reply = route(ctx, &mut world.identity, req);
    reply.with_header("vary", "X-Auth-Token")
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{ "rel": "self", "href": format!("{base}/v3/") }],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.identity-v3+json" }]
    })
}

fn route(_ctx: &SiteCtx, id: &mut Identity, req: &SimRequest) -> Reply {
    let segs = req.segs();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("GET" | "HEAD", []) => {
            return Reply::json(
                300,
                json!({ "versions": { "values": [version_doc(&id.base)] } }),
            )
        }
        ("GET" | "HEAD", ["v3"]) => {
            return Reply::json(200, json!({ "version": version_doc(&id.base) }))
        }
        ("POST", ["v3", "auth", "tokens"]) => return issue_token(id, req),
        _ => {}
    }
    let Some(auth) = req.header("x-auth-token").and_then(|t| id.authenticate(t)) else {
        return unauthorized();
    };
    let admin = auth.is_admin();
    let rest = match segs.as_slice() {
        ["v3", rest @ ..] => rest.to_vec(),
        _ => return keystone_error(404, "The resource could not be found."),
    };
    match (m, rest.as_slice()) {
        ("GET" | "HEAD", ["auth", "tokens"]) => {
            let Some(subject) = req.header("x-subject-token") else {
                return not_found("token", "");
            };
            let Some(tok) = id
                .tokens
                .get(subject)
                .cloned()
                .filter(|t| t.expires > now_secs())
            else {
                return not_found("token", subject);
            };
            if m == "HEAD" {
                return Reply::empty(200).with_header("x-subject-token", subject);
            }
            let catalog = req.query_get("nocatalog").is_none();
            Reply::json(200, id.token_body(&tok, catalog)).with_header("x-subject-token", subject)
        }
        ("DELETE", ["auth", "tokens"]) => {
            let Some(subject) = req.header("x-subject-token") else {
                return not_found("token", "");
            };
            match id.tokens.remove(subject) {
                Some(_) => Reply::empty(204),
                None => not_found("token", subject),
            }
        }
        ("GET", ["auth", "catalog"]) => {
            let self_url = id.url("auth/catalog");
            Reply::json(
                200,
                // Not a paginated list: only a self link, unlike /v3/auth/projects.
                json!({ "catalog": id.catalog(auth.project_id.as_deref()), "links": { "self": self_url } }),
            )
        }
        ("GET", ["auth", "projects"]) => {
            let projects: Vec<Value> = id
                .projects
                .iter()
                .filter(|p| !id.roles_on(&auth.user_id, Some(&id_of(p)), None).is_empty())
                .cloned()
                .collect();
            id.list("projects", &projects, req)
        }
        ("GET", ["auth", "domains"]) => {
            let domains: Vec<Value> = id
                .domains
                .iter()
                .filter(|d| !id.roles_on(&auth.user_id, None, Some(&id_of(d))).is_empty())
                .cloned()
                .collect();
            id.list("domains", &domains, req)
        }
        ("GET", ["auth", "system"]) => Reply::json(200, json!({ "system": [] })),
        ("GET", ["services"]) => id.list("services", &id.services.clone(), req),
        ("GET", ["services", sid]) => get_one(id, "services", "service", sid),
        ("GET", ["endpoints"]) => id.list("endpoints", &id.endpoints.clone(), req),
        ("GET", ["endpoints", eid]) => get_one(id, "endpoints", "endpoint", eid),
        ("POST", ["endpoints"]) if !admin => forbidden("create_endpoint"),
        ("POST", ["endpoints"]) => create_endpoint(id, req),
        ("DELETE", ["endpoints", eid]) if admin => match find_idx(&id.endpoints, eid) {
            Some(i) => {
                id.endpoints.remove(i);
                Reply::empty(204)
            }
            None => not_found("endpoint", eid),
        },
        ("DELETE", ["endpoints", _]) => forbidden("delete_endpoint"),
        ("GET", ["regions"]) => id.list("regions", &id.regions.clone(), req),
        ("GET", ["regions", rid]) => get_one(id, "regions", "region", rid),
        ("GET", ["domains"]) => id.list("domains", &id.domains.clone(), req),
        ("GET", ["domains", did]) => get_one(id, "domains", "domain", did),
        ("POST", ["domains"]) if !admin => forbidden("create_domain"),
        ("POST", ["domains"]) => {
            let body = match req.json().and_then(|b| body_object(&b, "domain")) {
                Ok(b) => b,
                Err(e) => return bad_request(e),
            };
            let Some(name) = body.get("name").and_then(Value::as_str) else {
                return bad_request("'name' is a required property");
            };
            if id.domains.iter().any(|d| str_of(d, "name") == Some(name)) {
                return keystone_error(409, format!("Conflict occurred attempting to store domain - Duplicate entry found with name {name}."));
            }
            let mut d = json!({ "id": hex_id(), "name": name, "description": "", "enabled": true, "tags": [], "options": {} });
            merge(&mut d, &body, &["id"]);
            id.domains.push(d.clone());
            id.one("domains", "domain", &d, 201)
        }
        ("PATCH", ["domains", did]) if admin => patch(id, Coll::Domains, did, req),
        ("DELETE", ["domains", did]) if admin => delete(id, Coll::Domains, did),
        ("PATCH" | "DELETE", ["domains", _]) => forbidden("update_domain"),
        // projects
        ("GET", ["projects"]) => {
            let visible: Vec<Value> = id
                .projects
                .iter()
                .filter(|p| admin || !id.roles_on(&auth.user_id, Some(&id_of(p)), None).is_empty())
                .cloned()
                .collect();
            id.list("projects", &visible, req)
        }
        ("GET", ["projects", pid]) => get_one(id, "projects", "project", pid),
        ("POST", ["projects"]) if !admin => forbidden("create_project"),
        ("POST", ["projects"]) => create_project(id, req),
        ("PATCH", ["projects", pid]) if admin => patch(id, Coll::Projects, pid, req),
        ("DELETE", ["projects", pid]) if admin => delete(id, Coll::Projects, pid),
        ("PATCH", ["projects", _]) => forbidden("update_project"),
        ("DELETE", ["projects", _]) => forbidden("delete_project"),
        ("GET", ["projects", pid, "tags"]) => match find_idx(&id.projects, pid) {
            Some(i) => Reply::json(200, json!({ "tags": id.projects[i]["tags"] })),
            None => not_found("project", pid),
        },
        ("PUT", ["projects", pid, "tags"]) if admin => {
            let Some(i) = find_idx(&id.projects, pid) else {
                return not_found("project", pid);
            };
            let tags = match req.json().map(|b| b.get("tags").cloned()) {
                Ok(Some(Value::Array(t))) if t.iter().all(Value::is_string) => t,
                Ok(_) => return bad_request("'tags' must be a list of strings"),
                Err(e) => return bad_request(e),
            };
            id.projects[i]["tags"] = Value::Array(tags);
            Reply::json(200, json!({ "tags": id.projects[i]["tags"] }))
        }
        ("DELETE", ["projects", pid, "tags"]) if admin => match find_idx(&id.projects, pid) {
            Some(i) => {
                id.projects[i]["tags"] = json!([]);
                Reply::empty(204)
            }
            None => not_found("project", pid),
        },
        ("GET" | "HEAD", ["projects", pid, "tags", tag]) => match find_idx(&id.projects, pid) {
            Some(i) if has_tag(&id.projects[i], tag) => Reply::empty(204),
            Some(_) => not_found("project tag", tag),
            None => not_found("project", pid),
        },
        ("PUT", ["projects", pid, "tags", tag]) if admin => {
            let Some(i) = find_idx(&id.projects, pid) else {
                return not_found("project", pid);
            };
            if !has_tag(&id.projects[i], tag) {
                if let Some(a) = id.projects[i]["tags"].as_array_mut() {
                    a.push(json!(tag));
                }
            }
            Reply::empty(201)
                .with_header("location", &id.url(&format!("projects/{pid}/tags/{tag}")))
        }
        ("DELETE", ["projects", pid, "tags", tag]) if admin => {
            let Some(i) = find_idx(&id.projects, pid) else {
                return not_found("project", pid);
            };
            if !has_tag(&id.projects[i], tag) {
                return not_found("project tag", tag);
            }
            if let Some(a) = id.projects[i]["tags"].as_array_mut() {
                a.retain(|t| t.as_str() != Some(*tag));
            }
            Reply::empty(204)
        }
        ("PUT" | "DELETE", ["projects", _, "tags", ..]) => forbidden("update_project_tags"),
        // users
        ("GET", ["users"]) => id.list("users", &id.users.clone(), req),
        ("GET", ["users", uid]) => get_one(id, "users", "user", uid),
        ("POST", ["users"]) if !admin => forbidden("create_user"),
        ("POST", ["users"]) => create_user(id, req),
        ("PATCH", ["users", uid]) if admin || *uid == auth.user_id => {
            patch(id, Coll::Users, uid, req)
        }
        ("DELETE", ["users", uid]) if admin => delete(id, Coll::Users, uid),
        ("PATCH" | "DELETE", ["users", _]) => forbidden("update_user"),
        ("POST", ["users", uid, "password"]) => change_password(id, uid, req),
        ("GET", ["users", uid, "projects"]) => {
            let projects: Vec<Value> = id
                .projects
                .iter()
                .filter(|p| !id.roles_on(uid, Some(&id_of(p)), None).is_empty())
                .cloned()
                .collect();
            id.list("projects", &projects, req)
        }
        ("GET", ["users", uid, "groups"]) => {
            let groups: Vec<Value> = id
                .groups
                .iter()
                .filter(|g| id.memberships.contains(&(id_of(g), uid.to_string())))
                .cloned()
                .collect();
            id.list("groups", &groups, req)
        }
        // groups
        ("GET", ["groups"]) => id.list("groups", &id.groups.clone(), req),
        ("GET", ["groups", gid]) => get_one(id, "groups", "group", gid),
        ("POST", ["groups"]) if !admin => forbidden("create_group"),
        ("POST", ["groups"]) => create_simple(id, Coll::Groups, req),
        ("PATCH", ["groups", gid]) if admin => patch(id, Coll::Groups, gid, req),
        ("DELETE", ["groups", gid]) if admin => delete(id, Coll::Groups, gid),
        ("PATCH" | "DELETE", ["groups", _]) => forbidden("update_group"),
        ("GET", ["groups", gid, "users"]) => {
            let users: Vec<Value> = id
                .users
                .iter()
                .filter(|u| id.memberships.contains(&(gid.to_string(), id_of(u))))
                .cloned()
                .collect();
            id.list("users", &users, req)
        }
        (_, ["groups", gid, "users", uid]) => membership(id, m, admin, gid, uid),
        // roles
        ("GET", ["roles"]) => id.list("roles", &id.roles.clone(), req),
        ("GET", ["roles", rid]) => get_one(id, "roles", "role", rid),
        ("POST", ["roles"]) if !admin => forbidden("create_role"),
        ("POST", ["roles"]) => create_simple(id, Coll::Roles, req),
        ("PATCH", ["roles", rid]) if admin => patch(id, Coll::Roles, rid, req),
        ("DELETE", ["roles", rid]) if admin => delete(id, Coll::Roles, rid),
        ("PATCH" | "DELETE", ["roles", _]) => forbidden("update_role"),
        // role assignments
        (
            "GET",
            [scope @ ("projects" | "domains"), target, actor @ ("users" | "groups"), aid, "roles"],
        ) => list_grants(id, scope, target, actor, aid),
        (
            _,
            [scope @ ("projects" | "domains"), target, actor @ ("users" | "groups"), aid, "roles", rid],
        ) => grant(id, m, admin, (scope, target), (actor, aid), rid),
        ("GET", ["role_assignments"]) => role_assignments(id, req),
        _ => keystone_error(404, "The resource could not be found."),
    }
}

fn has_tag(v: &Value, tag: &str) -> bool {
    v.get("tags")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(tag)))
}

/// Copies the request's attributes onto a stored object, except `skip` keys.
fn merge(target: &mut Value, body: &Map<String, Value>, skip: &[&str]) {
    if let Value::Object(t) = target {
        for (k, v) in body {
            if !skip.contains(&k.as_str()) {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Coll {
    Domains,
    Projects,
    Users,
    Groups,
    Roles,
}

impl Coll {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Coll::Domains => ("domains", "domain"),
            Coll::Projects => ("projects", "project"),
            Coll::Users => ("users", "user"),
            Coll::Groups => ("groups", "group"),
            Coll::Roles => ("roles", "role"),
        }
    }

    fn items(self, id: &mut Identity) -> &mut Vec<Value> {
        match self {
            Coll::Domains => &mut id.domains,
            Coll::Projects => &mut id.projects,
            Coll::Users => &mut id.users,
            Coll::Groups => &mut id.groups,
            Coll::Roles => &mut id.roles,
        }
    }
}

fn get_one(id: &Identity, collection: &str, key: &str, oid: &str) -> Reply {
    let items = match collection {
        "services" => &id.services,
        "endpoints" => &id.endpoints,
        "regions" => &id.regions,
        "domains" => &id.domains,
        "projects" => &id.projects,
        "users" => &id.users,
        "groups" => &id.groups,
        _ => &id.roles,
    };
    match find_idx(items, oid) {
        Some(i) => id.one(collection, key, &items[i], 200),
        None => not_found(key, oid),
    }
}

fn patch(id: &mut Identity, coll: Coll, oid: &str, req: &SimRequest) -> Reply {
    let (collection, key) = coll.names();
    let body = match req.json().and_then(|b| body_object(&b, key)) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let Some(i) = find_idx(coll.items(id), oid) else {
        return not_found(key, oid);
    };
    // Keystone takes the ID in an update body only when it is the resource's own.
    if body.get("id").is_some_and(|v| v.as_str() != Some(oid)) {
        return bad_request("Cannot change ID");
    }
    let mut body = body;
    if let (Coll::Users, Some(pw)) = (coll, body.remove("password")) {
        if let Some(pw) = pw.as_str() {
            id.passwords.insert(oid.to_string(), pw.to_string());
        }
    }
    let items = coll.items(id);
    merge(&mut items[i], &body, &["id", "domain_id"]);
    if let Value::Object(o) = &mut items[i] {
        o.entry("extra").or_insert_with(|| json!({}));
    }
    let v = items[i].clone();
    id.one(collection, key, &v, 200)
}

fn delete(id: &mut Identity, coll: Coll, oid: &str) -> Reply {
    let (_, key) = coll.names();
    if let (Coll::Domains, "default") = (coll, oid) {
        return keystone_error(403, "Cannot delete the default domain.");
    }
    let items = coll.items(id);
    let Some(i) = find_idx(items, oid) else {
        return not_found(key, oid);
    };
    if items[i]["options"]["immutable"] == json!(true) {
        return keystone_error(
            403,
            format!("Unable to delete immutable {key} resource: `{oid}. Set resource option \"immutable\" to false first."),
        );
    }
    items.remove(i);
    match coll {
        Coll::Users => {
            id.passwords.remove(oid);
            id.assignments.retain(|a| a.user_id.as_deref() != Some(oid));
            id.memberships.retain(|(_, u)| u != oid);
            id.tokens.retain(|_, t| t.user_id != oid);
        }
        Coll::Projects => {
            id.assignments
                .retain(|a| a.project_id.as_deref() != Some(oid));
            id.tokens
                .retain(|_, t| t.project_id.as_deref() != Some(oid));
        }
        Coll::Groups => {
            id.assignments
                .retain(|a| a.group_id.as_deref() != Some(oid));
            id.memberships.retain(|(g, _)| g != oid);
        }
        Coll::Roles => id.assignments.retain(|a| a.role_id != oid),
        Coll::Domains => {}
    }
    Reply::empty(204)
}

fn create_project(id: &mut Identity, req: &SimRequest) -> Reply {
    let body = match req.json().and_then(|b| body_object(&b, "project")) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad_request("'name' is a required property");
    };
    let domain = body
        .get("domain_id")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    if id.find_domain(Some(&domain), None).is_none() {
        // Keystone answers a project in a domain it does not know with 400, where a user
        // or a group gets 404, with the same message.
        return keystone_error(400, format!("Could not find domain: {domain}."));
    }
    if id
        .projects
        .iter()
        .any(|p| str_of(p, "name") == Some(name) && str_of(p, "domain_id") == Some(&domain))
    {
        return keystone_error(409, format!("Conflict occurred attempting to store project - it is not permitted to have two projects with the same name in the same domain : {name}."));
    }
    let mut p = new_project(name, &domain, "", vec![]);
    merge(&mut p, &body, &["id"]);
    if p.get("parent_id").is_none_or(Value::is_null) {
        p["parent_id"] = json!(domain);
    }
    if !p["tags"].is_array() {
        p["tags"] = json!([]);
    }
    id.projects.push(p.clone());
    id.one("projects", "project", &p, 201)
}

fn create_user(id: &mut Identity, req: &SimRequest) -> Reply {
    let mut body = match req.json().and_then(|b| body_object(&b, "user")) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("'name' is a required property");
    };
    let domain = body
        .get("domain_id")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    if id.find_domain(Some(&domain), None).is_none() {
        return not_found("domain", &domain);
    }
    if id
        .users
        .iter()
        .any(|u| str_of(u, "name") == Some(&name) && str_of(u, "domain_id") == Some(&domain))
    {
        return keystone_error(409, format!("Conflict occurred attempting to store user - Duplicate entry found with name {name} at domain ID {domain}."));
    }
    let password = body.remove("password");
    let uid = hex_id();
    let mut u = json!({
        "id": uid, "name": name, "domain_id": domain, "enabled": true,
        "password_expires_at": null, "options": {}
    });
    merge(&mut u, &body, &["id"]);
    if let Some(pw) = password.as_ref().and_then(Value::as_str) {
        id.passwords.insert(uid, pw.to_string());
    }
    id.users.push(u.clone());
    id.one("users", "user", &u, 201)
}

fn change_password(id: &mut Identity, uid: &str, req: &SimRequest) -> Reply {
    let body = match req.json().and_then(|b| body_object(&b, "user")) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let (Some(orig), Some(new)) = (
        body.get("original_password").and_then(Value::as_str),
        body.get("password").and_then(Value::as_str),
    ) else {
        return bad_request("'original_password' and 'password' are required");
    };
    if id.passwords.get(uid).map(String::as_str) != Some(orig) {
        return unauthorized();
    }
    id.passwords.insert(uid.to_string(), new.to_string());
    Reply::empty(204)
}

fn create_simple(id: &mut Identity, coll: Coll, req: &SimRequest) -> Reply {
    let (collection, key) = coll.names();
    let body = match req.json().and_then(|b| body_object(&b, key)) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad_request("'name' is a required property");
    };
    if let (Coll::Groups, Some(domain)) = (coll, body.get("domain_id").and_then(Value::as_str)) {
        if id.find_domain(Some(domain), None).is_none() {
            return not_found("domain", domain);
        }
    }
    // Group names are unique within their domain; role and domain names everywhere.
    let domain = match coll {
        Coll::Groups => Some(
            body.get("domain_id")
                .and_then(Value::as_str)
                .unwrap_or("default"),
        ),
        _ => None,
    };
    if coll.items(id).iter().any(|o| {
        str_of(o, "name") == Some(name) && domain.is_none_or(|d| str_of(o, "domain_id") == Some(d))
    }) {
        return keystone_error(
            409,
            format!("Conflict occurred attempting to store {key} - Duplicate entry found with name {name}."),
        );
    }
    let mut v = match coll {
        Coll::Groups => {
            json!({ "id": hex_id(), "name": name, "domain_id": "default", "description": "" })
        }
        _ => {
            json!({ "id": hex_id(), "name": name, "domain_id": null, "description": null, "options": {} })
        }
    };
    merge(&mut v, &body, &["id"]);
    coll.items(id).push(v.clone());
    id.one(collection, key, &v, 201)
}

/// `POST /v3/endpoints`, as Keystone: `service_id`, `interface` and `url` required, the
/// region's id also given as `region` in the answer.
fn create_endpoint(id: &mut Identity, req: &SimRequest) -> Reply {
    let body = match req.json().and_then(|b| body_object(&b, "endpoint")) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    for field in ["service_id", "interface", "url"] {
        if !body.get(field).is_some_and(Value::is_string) {
            return bad_request(format!("'{field}' is a required property"));
        }
    }
    let text = |field: &str| body.get(field).and_then(Value::as_str).unwrap_or_default();
    let interface = text("interface");
    if !["public", "internal", "admin"].contains(&interface) {
        return bad_request(format!(
            "'{interface}' does not match '^(?:admin|internal|public)$'"
        ));
    }
    let service_id = text("service_id");
    if find_idx(&id.services, service_id).is_none() {
        return not_found("service", service_id);
    }
    let region = body.get("region_id").cloned().unwrap_or(Value::Null);
    let mut v = json!({
        "id": hex_id(), "interface": interface, "region_id": region, "region": region,
        "service_id": service_id, "url": body["url"], "enabled": true
    });
    merge(&mut v, &body, &["id"]);
    id.endpoints.push(v.clone());
    id.one("endpoints", "endpoint", &v, 201)
}

fn membership(id: &mut Identity, m: &str, admin: bool, gid: &str, uid: &str) -> Reply {
    if find_idx(&id.groups, gid).is_none() {
        return not_found("group", gid);
    }
    if find_idx(&id.users, uid).is_none() {
        return not_found("user", uid);
    }
    let pair = (gid.to_string(), uid.to_string());
    let present = id.memberships.contains(&pair);
    match m {
        "HEAD" | "GET" if present => Reply::empty(204),
        "HEAD" | "GET" => keystone_error(404, format!("User '{uid}' not found in group '{gid}'")),
        "PUT" if admin => {
            if !present {
                id.memberships.push(pair);
            }
            Reply::empty(204)
        }
        "DELETE" if admin => {
            if !present {
                return keystone_error(404, format!("User '{uid}' not found in group '{gid}'"));
            }
            id.memberships.retain(|p| *p != pair);
            Reply::empty(204)
        }
        _ => forbidden("add_user_to_group"),
    }
}

fn list_grants(id: &Identity, scope: &str, target: &str, actor: &str, aid: &str) -> Reply {
    let roles: Vec<Value> = id
        .assignments
        .iter()
        .filter(|a| matches_grant(a, (scope, target), (actor, aid)))
        .filter_map(|a| id.roles.iter().find(|r| id_of(r) == a.role_id))
        .map(|r| id.with_links("roles", r))
        .collect();
    Reply::json(
        200,
        json!({ "roles": roles, "links": { "self": id.url(&format!("{scope}/{target}/{actor}/{aid}/roles")), "previous": null, "next": null } }),
    )
}

fn matches_grant(a: &Assignment, scope: (&str, &str), actor: (&str, &str)) -> bool {
    let scope_ok = match scope.0 {
        "projects" => a.project_id.as_deref() == Some(scope.1),
        _ => a.domain_id.as_deref() == Some(scope.1),
    };
    let actor_ok = match actor.0 {
        "users" => a.user_id.as_deref() == Some(actor.1),
        _ => a.group_id.as_deref() == Some(actor.1),
    };
    scope_ok && actor_ok
}

fn grant(
    id: &mut Identity,
    m: &str,
    admin: bool,
    scope: (&str, &str),
    actor: (&str, &str),
    rid: &str,
) -> Reply {
    let (scope_items, scope_kind) = match scope.0 {
        "projects" => (&id.projects, "project"),
        _ => (&id.domains, "domain"),
    };
    if find_idx(scope_items, scope.1).is_none() {
        return not_found(scope_kind, scope.1);
    }
    let (actor_items, actor_kind) = match actor.0 {
        "users" => (&id.users, "user"),
        _ => (&id.groups, "group"),
    };
    if find_idx(actor_items, actor.1).is_none() {
        return not_found(actor_kind, actor.1);
    }
    if find_idx(&id.roles, rid).is_none() {
        return not_found("role", rid);
    }
    let a = Assignment {
        role_id: rid.to_string(),
        user_id: (actor.0 == "users").then(|| actor.1.to_string()),
        group_id: (actor.0 == "groups").then(|| actor.1.to_string()),
        project_id: (scope.0 == "projects").then(|| scope.1.to_string()),
        domain_id: (scope.0 == "domains").then(|| scope.1.to_string()),
    };
    let present = id.assignments.contains(&a);
    match m {
        "HEAD" | "GET" if present => Reply::empty(204),
        "HEAD" | "GET" => keystone_error(
            404,
            format!("Could not find role assignment with role: {rid}, {actor_kind}: {}, {scope_kind}: {}.", actor.1, scope.1),
        ),
        "PUT" if admin => {
            if !present {
                id.assignments.push(a);
            }
            Reply::empty(204)
        }
        "DELETE" if admin => {
            if !present {
                return keystone_error(404, format!("Could not find role assignment with role: {rid}, {actor_kind}: {}, {scope_kind}: {}.", actor.1, scope.1));
            }
            id.assignments.retain(|x| *x != a);
            Reply::empty(204)
        }
        "PUT" => forbidden("create_grant"),
        "DELETE" => forbidden("revoke_grant"),
        _ => keystone_error(405, "The method is not allowed for the requested URL."),
    }
}

fn role_assignments(id: &Identity, req: &SimRequest) -> Reply {
    let q = |k: &str| req.query_get(k).filter(|v| !v.is_empty());
    let include_names = req
        .query
        .iter()
        .any(|(k, v)| k == "include_names" && !matches!(v.as_str(), "false" | "False" | "0"));
    let effective = req.query.iter().any(|(k, _)| k == "effective");
    // (assignment, via group)
    let mut rows: Vec<(Assignment, Option<String>)> = Vec::new();
    for a in &id.assignments {
        match (&a.group_id, effective) {
            (Some(g), true) => {
                for (_, u) in id.memberships.iter().filter(|(mg, _)| mg == g) {
                    let mut ua = a.clone();
                    ua.user_id = Some(u.clone());
                    ua.group_id = None;
                    rows.push((ua, Some(g.clone())));
                }
            }
            _ => rows.push((a.clone(), None)),
        }
    }
    let out: Vec<Value> = rows
        .into_iter()
        .filter(|(a, _)| {
            q("user.id").is_none_or(|u| a.user_id.as_deref() == Some(u))
                && q("group.id").is_none_or(|g| a.group_id.as_deref() == Some(g))
                && q("role.id").is_none_or(|r| a.role_id == r)
                && q("scope.project.id").is_none_or(|p| a.project_id.as_deref() == Some(p))
                && q("scope.domain.id").is_none_or(|d| a.domain_id.as_deref() == Some(d))
        })
        .map(|(a, via)| {
            let name_of = |items: &[Value], oid: &str| {
                items
                    .iter()
                    .find(|i| id_of(i) == oid)
                    .and_then(|i| i.get("name").cloned())
                    .unwrap_or(Value::Null)
            };
            let domain_of = |items: &[Value], oid: &str| {
                let did = items
                    .iter()
                    .find(|i| id_of(i) == oid)
                    .and_then(|i| str_of(i, "domain_id"))
                    .unwrap_or("default")
                    .to_string();
                id.domain_ref(&did)
            };
            let mut role = json!({ "id": a.role_id });
            let mut row = Map::new();
            if include_names {
                role["name"] = name_of(&id.roles, &a.role_id);
            }
            row.insert("role".into(), role);
            let (actor_path, actor_key, actor_id, actor_items) = match (&a.user_id, &a.group_id) {
                (Some(u), _) => ("users", "user", u.clone(), &id.users),
                (_, Some(g)) => ("groups", "group", g.clone(), &id.groups),
                _ => ("users", "user", String::new(), &id.users),
            };
            let mut actor = json!({ "id": actor_id });
            if include_names {
                actor["name"] = name_of(actor_items, &actor_id);
                actor["domain"] = domain_of(actor_items, &actor_id);
            }
            row.insert(actor_key.into(), actor);
            let (scope_path, scope_key, scope_id) = match (&a.project_id, &a.domain_id) {
                (Some(p), _) => ("projects", "project", p.clone()),
                (_, Some(d)) => ("domains", "domain", d.clone()),
                _ => ("projects", "project", String::new()),
            };
            let mut scope = json!({ "id": scope_id });
            if include_names {
                if scope_key == "project" {
                    scope["name"] = name_of(&id.projects, &scope_id);
                    scope["domain"] = domain_of(&id.projects, &scope_id);
                } else {
                    scope["name"] = name_of(&id.domains, &scope_id);
                }
            }
            row.insert("scope".into(), json!({ scope_key: scope }));
            let (ap, aid) = match &via {
                Some(g) => ("groups", g.clone()),
                None => (actor_path, actor_id.clone()),
            };
            let mut links = json!({
                "assignment": id.url(&format!("{scope_path}/{scope_id}/{ap}/{aid}/roles/{}", a.role_id))
            });
            if let Some(g) = via {
                links["membership"] = json!(id.url(&format!("groups/{g}/users/{actor_id}")));
            }
            row.insert("links".into(), links);
            Value::Object(row)
        })
        .collect();
    let self_url = format!("{}{}", id.base, req.path);
    Reply::json(
        200,
        json!({ "role_assignments": out, "links": { "self": self_url, "previous": null, "next": null } }),
    )
}

fn issue_token(id: &mut Identity, req: &SimRequest) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let auth = &body["auth"];
    let identity = &auth["identity"];
    let methods: Vec<String> = identity["methods"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let user_id = if methods.iter().any(|m| m == "password") {
        let u = &identity["password"]["user"];
        let Some(password) = u["password"].as_str() else {
            return bad_request("'password' is a required property");
        };
        let found = match (u["id"].as_str(), u["name"].as_str()) {
            (Some(uid), _) => id.users.iter().find(|x| id_of(x) == uid),
            (None, Some(name)) => {
                let d = &u["domain"];
                let Some(did) = id.find_domain(d["id"].as_str(), d["name"].as_str()) else {
                    return unauthorized();
                };
                id.users.iter().find(|x| {
                    str_of(x, "name") == Some(name) && str_of(x, "domain_id") == Some(&did)
                })
            }
            _ => return bad_request("Expecting to find id or name in user."),
        };
        let Some(user) = found else {
            return unauthorized();
        };
        let uid = id_of(user);
        if user.get("enabled") == Some(&Value::Bool(false))
            || id.passwords.get(&uid).map(String::as_str) != Some(password)
        {
            return unauthorized();
        }
        uid
    } else if methods.iter().any(|m| m == "token") {
        let Some(t) = identity["token"]["id"].as_str() else {
            return bad_request("'id' is a required property");
        };
        match id.authenticate(t) {
            Some(a) => a.user_id,
            None => return unauthorized(),
        }
    } else {
        return unauthorized();
    };
    let scope = &auth["scope"];
    let (mut project_id, mut domain_id) = (None, None);
    if let Some(p) = scope.get("project") {
        let found = match (p["id"].as_str(), p["name"].as_str()) {
            (Some(pid), _) => id.projects.iter().find(|x| id_of(x) == pid),
            (None, Some(name)) => {
                let d = &p["domain"];
                let Some(did) = id.find_domain(d["id"].as_str(), d["name"].as_str()) else {
                    return unauthorized();
                };
                id.projects.iter().find(|x| {
                    str_of(x, "name") == Some(name) && str_of(x, "domain_id") == Some(&did)
                })
            }
            _ => return bad_request("Expecting to find id or name in project."),
        };
        let Some(project) = found else {
            return unauthorized();
        };
        let pid = id_of(project);
        if id.roles_on(&user_id, Some(&pid), None).is_empty() {
            return keystone_error(
                401,
                format!("User {user_id} has no access to project {pid}"),
            );
        }
        project_id = Some(pid);
    } else if let Some(d) = scope.get("domain") {
        let Some(did) = id.find_domain(d["id"].as_str(), d["name"].as_str()) else {
            return unauthorized();
        };
        if id.roles_on(&user_id, None, Some(&did)).is_empty() {
            return keystone_error(401, format!("User {user_id} has no access to domain {did}"));
        }
        domain_id = Some(did);
    } else if scope.get("system").is_some() {
        return keystone_error(401, "System scope is not supported by the simulator.");
    }
    let (s, tok) = id.issue(user_id, project_id, domain_id, methods);
    let catalog = req.query_get("nocatalog").is_none();
    Reply::json(201, id.token_body(&tok, catalog)).with_header("x-subject-token", &s)
}

/// Resolves the request's `X-Auth-Token` against this site's Keystone.
pub(crate) fn require_auth(world: &World, req: &SimRequest) -> Option<Auth> {
    req.header("x-auth-token")
        .and_then(|t| world.identity.authenticate(t))
}
