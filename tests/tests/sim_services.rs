//! Simulator service tests: token and catalog shape, and basic CRUD of every service over HTTP.

use drgw_tests::sim::client::SimClient;
use drgw_tests::sim::{Site, SiteConfig, SiteHandle};
use http::Method;
use serde_json::{json, Value};

async fn admin(site: &SiteHandle) -> anyhow::Result<SimClient> {
    let mut c = SimClient::new();
    c.login(&site.endpoints().auth_url(), "admin", "secret", "admin")
        .await?;
    Ok(c)
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn token_issue_and_catalog_shape() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("t1")).await?;
    let e = site.endpoints();
    let mut c = SimClient::new();
    let resp = c.login(&e.auth_url(), "admin", "secret", "admin").await?;
    assert_eq!(resp.status, 201);
    assert!(resp.header("x-subject-token").is_some());
    assert_eq!(resp.header("vary"), Some("X-Auth-Token"));
    assert!(resp
        .header("x-openstack-request-id")
        .is_some_and(|r| r.starts_with("req-")));
    let token = &resp.json["token"];
    for k in [
        "methods",
        "user",
        "audit_ids",
        "expires_at",
        "issued_at",
        "project",
        "is_domain",
        "roles",
        "catalog",
    ] {
        assert!(token.get(k).is_some(), "token lacks {k}: {token}");
    }
    let pid = token["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(Some(pid.clone()), site.project_id("admin"));
    assert_eq!(
        token["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert!(token["roles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["name"] == "admin")));
    let catalog = token["catalog"].as_array().cloned().unwrap_or_default();
    let types: Vec<&str> = catalog.iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(
        types,
        ["identity", "compute", "image", "block-storage", "network"]
    );
    for svc in &catalog {
        let eps = svc["endpoints"].as_array().cloned().unwrap_or_default();
        assert_eq!(eps.len(), 3);
        for ep in eps {
            assert_eq!(ep["region_id"], "RegionOne");
            let mut k = keys(&ep);
            k.sort();
            assert_eq!(k, ["id", "interface", "region", "region_id", "url"]);
        }
    }
    let cinder = catalog
        .iter()
        .find(|s| s["type"] == "block-storage")
        .map(|s| s["endpoints"][0]["url"].clone());
    assert_eq!(cinder, Some(json!(format!("{}/v3/{pid}", e.volume))));

    // Validation, then revocation.
    let subject = c.token.clone().unwrap_or_default();
    let hdr = [("x-subject-token", subject.as_str())];
    let v = c
        .send(
            Method::GET,
            &format!("{}/auth/tokens", e.auth_url()),
            None,
            &hdr,
        )
        .await?;
    assert_eq!(v.status, 200);
    assert_eq!(v.json["token"]["project"]["id"], json!(pid));
    let bogus = [("x-subject-token", "nope")];
    let v = c
        .send(
            Method::GET,
            &format!("{}/auth/tokens", e.auth_url()),
            None,
            &bogus,
        )
        .await?;
    assert_eq!(v.status, 404);
    assert_eq!(v.json["error"]["code"], 404);
    let other = admin(&site).await?;
    let d = other
        .send(
            Method::DELETE,
            &format!("{}/auth/tokens", e.auth_url()),
            None,
            &hdr,
        )
        .await?;
    assert_eq!(d.status, 204);
    let after = c.get(&format!("{}/v2.1/flavors", e.compute)).await?;
    assert_eq!(after.status, 401);
    assert_eq!(after.json["error"]["code"], 401);

    // Wrong password and a token of another site are refused.
    let mut bad = SimClient::new();
    assert!(bad
        .login(&e.auth_url(), "admin", "wrong", "admin")
        .await
        .is_err());
    let site2 = Site::start(SiteConfig::named("t1b")).await?;
    let foreign = admin(&site2).await?;
    let r = foreign.get(&format!("{}/v2.0/networks", e.network)).await?;
    assert_eq!(r.status, 401);

    // Version documents.
    let root = SimClient::new().get(&e.identity).await?;
    assert_eq!(root.status, 300);
    assert_eq!(root.json["versions"]["values"][0]["id"], "v3.14");
    site.shutdown().await;
    site2.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn identity_crud_and_role_assignments() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("t2")).await?;
    let v3 = site.endpoints().auth_url();
    let c = admin(&site).await?;
    let p = c
        .post(
            &format!("{v3}/projects"),
            &json!({"project": {"name": "p1", "description": "d"}}),
        )
        .await?;
    assert_eq!(p.status, 201);
    let pid = p.json["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        p.json["project"]["links"]["self"],
        json!(format!("{v3}/projects/{pid}"))
    );
    let dup = c
        .post(
            &format!("{v3}/projects"),
            &json!({"project": {"name": "p1"}}),
        )
        .await?;
    assert_eq!(dup.status, 409);
    let t = c
        .put(
            &format!("{v3}/projects/{pid}/tags/dr-tier:gold"),
            &json!(null),
        )
        .await?;
    assert_eq!(t.status, 201);
    let tags = c.get(&format!("{v3}/projects/{pid}/tags")).await?;
    assert_eq!(tags.json["tags"], json!(["dr-tier:gold"]));
    let filtered = c.get(&format!("{v3}/projects?tags=dr-tier:gold")).await?;
    assert_eq!(filtered.json["projects"].as_array().map(Vec::len), Some(1));

    let u = c
        .post(
            &format!("{v3}/users"),
            &json!({"user": {"name": "u1", "password": "pw"}}),
        )
        .await?;
    assert_eq!(u.status, 201);
    assert!(u.json["user"].get("password").is_none());
    let uid = u.json["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let roles = c.get(&format!("{v3}/roles?name=member")).await?;
    let rid = roles.json["roles"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let grant_url = format!("{v3}/projects/{pid}/users/{uid}/roles/{rid}");
    assert_eq!(c.put(&grant_url, &json!(null)).await?.status, 204);
    assert_eq!(
        c.send(Method::HEAD, &grant_url, None, &[]).await?.status,
        204
    );
    let ra = c
        .get(&format!(
            "{v3}/role_assignments?user.id={uid}&scope.project.id={pid}&include_names=true"
        ))
        .await?;
    let row = &ra.json["role_assignments"][0];
    assert_eq!(row["role"]["name"], "member");
    assert_eq!(row["user"]["name"], "u1");
    assert_eq!(row["scope"]["project"]["name"], "p1");

    // The new user can log in to the project, but is not admin.
    let mut u1 = SimClient::new();
    u1.login(&v3, "u1", "pw", "p1").await?;
    let denied = u1
        .post(
            &format!("{v3}/projects"),
            &json!({"project": {"name": "p2"}}),
        )
        .await?;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json["error"]["title"], "Forbidden");

    assert_eq!(c.delete(&grant_url).await?.status, 204);
    assert_eq!(c.delete(&format!("{v3}/users/{uid}")).await?.status, 204);
    assert_eq!(c.delete(&format!("{v3}/projects/{pid}")).await?.status, 204);
    let gone = c.get(&format!("{v3}/projects/{pid}")).await?;
    assert_eq!(gone.status, 404);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn compute_crud_and_microversions() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig {
        server_build_time: std::time::Duration::ZERO,
        ..SiteConfig::named("t3")
    })
    .await?;
    let e = site.endpoints();
    let nova = format!("{}/v2.1", e.compute);
    let c = admin(&site).await?;
    let mv = [("openstack-api-version", "compute 2.96")];
    let f = c
        .send(
            Method::POST,
            &format!("{nova}/flavors"),
            Some(&json!({"flavor": {"name": "f1", "ram": 64, "vcpus": 1, "disk": 1, "id": "my-flavor"}})),
            &mv,
        )
        .await?;
    assert_eq!(f.status, 200);
    assert_eq!(f.json["flavor"]["id"], "my-flavor");
    assert_eq!(f.header("openstack-api-version"), Some("compute 2.96"));
    assert_eq!(f.header("x-openstack-nova-api-version"), Some("2.96"));
    assert!(f
        .header("vary")
        .is_some_and(|v| v.contains("OpenStack-API-Version")));
    let latest = c
        .send(
            Method::GET,
            &format!("{nova}/flavors"),
            None,
            &[("x-openstack-nova-api-version", "latest")],
        )
        .await?;
    assert_eq!(latest.header("x-openstack-nova-api-version"), Some("2.100"));
    let too_new = c
        .send(
            Method::GET,
            &format!("{nova}/flavors"),
            None,
            &[("openstack-api-version", "compute 3.0")],
        )
        .await?;
    assert_eq!(too_new.status, 406);

    // Keypairs: public key required at >= 2.92, generated before.
    let no_key = c
        .send(
            Method::POST,
            &format!("{nova}/os-keypairs"),
            Some(&json!({"keypair": {"name": "k0"}})),
            &mv,
        )
        .await?;
    assert_eq!(no_key.status, 400);
    assert!(no_key.json["badRequest"]["message"].is_string());
    let old = c
        .send(
            Method::POST,
            &format!("{nova}/os-keypairs"),
            Some(&json!({"keypair": {"name": "k0"}})),
            &[("openstack-api-version", "compute 2.10")],
        )
        .await?;
    assert_eq!(old.status, 201);
    assert!(old.json["keypair"]["private_key"].is_string());
    let kp = c
        .send(Method::POST, &format!("{nova}/os-keypairs"), Some(&json!({"keypair": {"name": "k1", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJImusrDR/ZhIaX4dttrx0JdhEERsADcpWaA5TACH8Nw"}})), &mv)
        .await?;
    assert_eq!(kp.status, 201);
    assert!(kp.json["keypair"].get("private_key").is_none());

    // An image to boot from must be active.
    let glance = format!("{}/v2/images", e.image);
    let img = c
        .post(
            &glance,
            &json!({"name": "i1", "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    let iid = img.json["id"].as_str().unwrap_or_default().to_string();
    let server_body = json!({"server": {"name": "s1", "flavorRef": "my-flavor", "imageRef": iid, "networks": "none", "metadata": {"dr_tier": "gold"}}});
    let queued = c
        .send(
            Method::POST,
            &format!("{nova}/servers"),
            Some(&server_body),
            &mv,
        )
        .await?;
    assert_eq!(queued.status, 400);
    let up = c
        .send_raw(
            Method::PUT,
            &format!("{glance}/{iid}/file"),
            bytes::Bytes::from_static(b"data"),
            "application/octet-stream",
            &[],
        )
        .await?;
    assert_eq!(up.status, 204);
    let s = c
        .send(
            Method::POST,
            &format!("{nova}/servers"),
            Some(&server_body),
            &mv,
        )
        .await?;
    assert_eq!(s.status, 202);
    let sid = s.json["server"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        s.header("location"),
        Some(format!("{nova}/servers/{sid}").as_str())
    );
    assert!(s.json["server"]["adminPass"].is_string());
    let shown = c
        .send(Method::GET, &format!("{nova}/servers/{sid}"), None, &mv)
        .await?;
    assert_eq!(shown.json["server"]["metadata"]["dr_tier"], "gold");
    assert_eq!(shown.json["server"]["status"], "ACTIVE");
    let md = c
        .send(
            Method::POST,
            &format!("{nova}/servers/{sid}/metadata"),
            Some(&json!({"metadata": {"k": "v"}})),
            &mv,
        )
        .await?;
    assert_eq!(md.json["metadata"], json!({"dr_tier": "gold", "k": "v"}));
    let renamed = c
        .send(
            Method::PUT,
            &format!("{nova}/servers/{sid}"),
            Some(&json!({"server": {"name": "s2"}})),
            &mv,
        )
        .await?;
    assert_eq!(renamed.json["server"]["name"], "s2");
    let stop = c
        .send(
            Method::POST,
            &format!("{nova}/servers/{sid}/action"),
            Some(&json!({"os-stop": null})),
            &mv,
        )
        .await?;
    assert_eq!(stop.status, 202);
    let list = c
        .send(Method::GET, &format!("{nova}/servers/detail"), None, &mv)
        .await?;
    assert_eq!(list.json["servers"][0]["status"], "SHUTOFF");
    assert_eq!(
        c.delete(&format!("{nova}/servers/{sid}")).await?.status,
        204
    );
    let gone = c.get(&format!("{nova}/servers/{sid}")).await?;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json["itemNotFound"]["code"], 404);
    assert_eq!(
        c.delete(&format!("{nova}/flavors/my-flavor")).await?.status,
        202
    );

    // A member may not create flavors.
    let mut demo = SimClient::new();
    demo.login(&e.auth_url(), "demo", "demo", "demo").await?;
    let f = demo
        .post(
            &format!("{nova}/flavors"),
            &json!({"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 1}}),
        )
        .await?;
    assert_eq!(f.status, 403);
    assert_eq!(f.json["forbidden"]["code"], 403);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn server_metadata_conflicts_while_building() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig {
        server_build_time: std::time::Duration::from_secs(60),
        ..SiteConfig::named("t3b")
    })
    .await?;
    let e = site.endpoints();
    let c = admin(&site).await?;
    let img = c
        .post(&format!("{}/v2/images", e.image), &json!({"name": "i"}))
        .await?;
    let iid = img.json["id"].as_str().unwrap_or_default().to_string();
    c.send_raw(
        Method::PUT,
        &format!("{}/v2/images/{iid}/file", e.image),
        bytes::Bytes::from_static(b"x"),
        "application/octet-stream",
        &[],
    )
    .await?;
    let flavors = c.get(&format!("{}/v2.1/flavors", e.compute)).await?;
    let fid = flavors.json["flavors"][0]["id"].clone();
    let s = c
        .post(
            &format!("{}/v2.1/servers", e.compute),
            &json!({"server": {"name": "s", "flavorRef": fid, "imageRef": iid}}),
        )
        .await?;
    let sid = s.json["server"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let md = c
        .post(
            &format!("{}/v2.1/servers/{sid}/metadata", e.compute),
            &json!({"metadata": {"k": "v"}}),
        )
        .await?;
    assert_eq!(md.status, 409);
    assert_eq!(md.json["conflictingRequest"]["code"], 409);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn network_crud_filters_and_tags() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("t4")).await?;
    let neutron = format!("{}/v2.0", site.endpoints().network);
    let c = admin(&site).await?;
    let n = c
        .post(
            &format!("{neutron}/networks"),
            &json!({"network": {"name": "n1"}}),
        )
        .await?;
    assert_eq!(n.status, 201);
    let net = &n.json["network"];
    for k in [
        "id",
        "project_id",
        "tenant_id",
        "revision_number",
        "created_at",
        "tags",
        "subnets",
        "mtu",
    ] {
        assert!(net.get(k).is_some(), "network lacks {k}");
    }
    let nid = net["id"].as_str().unwrap_or_default().to_string();
    let s = c
        .post(
            &format!("{neutron}/subnets"),
            &json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": "10.88.0.0/24"}}),
        )
        .await?;
    assert_eq!(s.status, 201);
    assert_eq!(s.json["subnet"]["gateway_ip"], "10.88.0.1");
    assert_eq!(
        s.json["subnet"]["allocation_pools"],
        json!([{"start": "10.88.0.2", "end": "10.88.0.254"}])
    );
    let sid = s.json["subnet"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let p = c
        .post(
            &format!("{neutron}/ports"),
            &json!({"port": {"network_id": nid, "name": "p1"}}),
        )
        .await?;
    assert_eq!(p.json["port"]["fixed_ips"][0]["subnet_id"], json!(sid));
    assert_eq!(p.json["port"]["fixed_ips"][0]["ip_address"], "10.88.0.2");
    assert_eq!(
        p.json["port"]["security_groups"].as_array().map(Vec::len),
        Some(1)
    );
    let pid = p.json["port"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let r = c
        .post(
            &format!("{neutron}/routers"),
            &json!({"router": {"name": "r1"}}),
        )
        .await?;
    let rid = r.json["router"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let add = c
        .put(
            &format!("{neutron}/routers/{rid}/add_router_interface"),
            &json!({"subnet_id": sid}),
        )
        .await?;
    assert_eq!(add.status, 200);
    assert_eq!(add.json["subnet_id"], json!(sid));
    let busy = c.delete(&format!("{neutron}/routers/{rid}")).await?;
    assert_eq!(busy.status, 409);
    assert!(busy.json["NeutronError"]["type"].is_string());
    let rm = c
        .put(
            &format!("{neutron}/routers/{rid}/remove_router_interface"),
            &json!({"subnet_id": sid}),
        )
        .await?;
    assert_eq!(rm.status, 200);

    let sg = c
        .post(
            &format!("{neutron}/security-groups"),
            &json!({"security_group": {"name": "sg1"}}),
        )
        .await?;
    let rules = sg.json["security_group"]["security_group_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|r| r["direction"] == "egress"));
    let sgid = sg.json["security_group"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rule = json!({"security_group_rule": {"security_group_id": sgid, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}});
    assert_eq!(
        c.post(&format!("{neutron}/security-group-rules"), &rule)
            .await?
            .status,
        201
    );
    assert_eq!(
        c.post(&format!("{neutron}/security-group-rules"), &rule)
            .await?
            .status,
        409
    );

    // Tags and filters.
    assert_eq!(
        c.put(
            &format!("{neutron}/networks/{nid}/tags/dr-tier:gold"),
            &json!(null)
        )
        .await?
        .status,
        201
    );
    let tagged = c
        .get(&format!("{neutron}/networks?tags=dr-tier:gold"))
        .await?;
    assert_eq!(tagged.json["networks"].as_array().map(Vec::len), Some(1));
    assert_eq!(tagged.json["networks"][0]["revision_number"], 2);
    let none = c.get(&format!("{neutron}/networks?name=other")).await?;
    assert_eq!(none.json["networks"], json!([]));
    let by_name = c
        .get(&format!("{neutron}/networks?name=n1&fields=id"))
        .await?;
    assert_eq!(by_name.json["networks"], json!([{"id": nid}]));

    let missing = c
        .get(&format!("{neutron}/networks/{}", uuid::Uuid::new_v4()))
        .await?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["NeutronError"]["type"], "NetworkNotFound");
    assert_eq!(
        c.delete(&format!("{neutron}/ports/{pid}")).await?.status,
        204
    );
    assert_eq!(
        c.delete(&format!("{neutron}/routers/{rid}")).await?.status,
        204
    );
    assert_eq!(
        c.delete(&format!("{neutron}/networks/{nid}")).await?.status,
        204
    );
    let subnets = c.get(&format!("{neutron}/subnets")).await?;
    assert_eq!(subnets.json["subnets"], json!([]));
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn block_storage_crud() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("t5")).await?;
    let pid = site.project_id("admin").unwrap_or_default();
    let cinder = format!("{}/v3/{pid}", site.endpoints().volume);
    let c = admin(&site).await?;
    let mv = [("openstack-api-version", "volume 3.71")];
    let t = c
        .send(
            Method::POST,
            &format!("{cinder}/types"),
            Some(&json!({"volume_type": {"name": "vt1"}})),
            &mv,
        )
        .await?;
    assert_eq!(t.status, 200);
    assert_eq!(t.header("openstack-api-version"), Some("volume 3.71"));
    let tid = t.json["volume_type"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let v = c
        .send(Method::POST, &format!("{cinder}/volumes"), Some(&json!({"volume": {"name": "v1", "size": 1, "volume_type": tid, "metadata": {"dr": "gold"}}})), &mv)
        .await?;
    assert_eq!(v.status, 202);
    assert_eq!(v.json["volume"]["status"], "creating");
    assert_eq!(v.json["volume"]["volume_type"], "vt1");
    let vid = v.json["volume"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let shown = c.get(&format!("{cinder}/volumes/{vid}")).await?;
    assert_eq!(shown.json["volume"]["status"], "available");
    let md = c
        .post(
            &format!("{cinder}/volumes/{vid}/metadata"),
            &json!({"metadata": {"tier": "1"}}),
        )
        .await?;
    assert_eq!(md.json["metadata"], json!({"dr": "gold", "tier": "1"}));
    let ext = c
        .post(
            &format!("{cinder}/volumes/{vid}/action"),
            &json!({"os-extend": {"new_size": 2}}),
        )
        .await?;
    assert_eq!(ext.status, 202);
    let detail = c.get(&format!("{cinder}/volumes/detail")).await?;
    assert_eq!(detail.json["volumes"][0]["size"], 2);
    let in_use = c.delete(&format!("{cinder}/types/{tid}")).await?;
    assert_eq!(in_use.status, 400);
    assert_eq!(
        c.delete(&format!("{cinder}/volumes/{vid}")).await?.status,
        202
    );
    assert_eq!(
        c.delete(&format!("{cinder}/types/{tid}")).await?.status,
        202
    );
    let gone = c.get(&format!("{cinder}/volumes/{vid}")).await?;
    assert_eq!(gone.json["itemNotFound"]["code"], 404);
    site.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn image_crud_streaming_and_pagination() -> anyhow::Result<()> {
    let site = Site::start(SiteConfig::named("t6")).await?;
    let base = site.endpoints().image;
    let c = admin(&site).await?;
    let img = c
        .post(&format!("{base}/v2/images"), &json!({"name": "i1", "disk_format": "raw", "container_format": "bare", "dr_tier": "gold"}))
        .await?;
    assert_eq!(img.status, 201);
    assert_eq!(img.json["status"], "queued");
    assert_eq!(img.json["dr_tier"], "gold");
    let iid = img.json["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        img.header("location"),
        Some(format!("{base}/v2/images/{iid}").as_str())
    );
    let patch = bytes::Bytes::from(
        json!([{"op": "replace", "path": "/dr_tier", "value": "silver"}, {"op": "add", "path": "/k", "value": "v"}]).to_string(),
    );
    let p = c
        .send_raw(
            Method::PATCH,
            &format!("{base}/v2/images/{iid}"),
            patch,
            "application/openstack-images-v2.1-json-patch",
            &[],
        )
        .await?;
    assert_eq!(p.status, 200);
    assert_eq!(p.json["dr_tier"], "silver");
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let up = c
        .send_raw(
            Method::PUT,
            &format!("{base}/v2/images/{iid}/file"),
            bytes::Bytes::from(data.clone()),
            "application/octet-stream",
            &[],
        )
        .await?;
    assert_eq!(up.status, 204);
    let shown = c.get(&format!("{base}/v2/images/{iid}")).await?;
    assert_eq!(shown.json["status"], "active");
    assert_eq!(shown.json["size"], 4096);
    assert_eq!(shown.json["os_hash_algo"], "sha512");
    use md5::Digest as _;
    let md5: String = md5::Md5::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(shown.json["checksum"], json!(md5));
    let down = c.get(&format!("{base}/v2/images/{iid}/file")).await?;
    assert_eq!(down.status, 200);
    assert_eq!(down.bytes.as_ref(), data.as_slice());
    let again = c
        .send_raw(
            Method::PUT,
            &format!("{base}/v2/images/{iid}/file"),
            bytes::Bytes::from_static(b"x"),
            "application/octet-stream",
            &[],
        )
        .await?;
    assert_eq!(again.status, 409);

    for i in 0..3 {
        c.post(
            &format!("{base}/v2/images"),
            &json!({"name": format!("page-{i}")}),
        )
        .await?;
    }
    let page = c.get(&format!("{base}/v2/images?limit=2")).await?;
    assert_eq!(page.json["images"].as_array().map(Vec::len), Some(2));
    let next = page.json["next"].as_str().unwrap_or_default().to_string();
    assert!(next.starts_with("/v2/images?"), "{next}");
    let rest = c.get(&format!("{base}{next}")).await?;
    assert_eq!(rest.json["images"].as_array().map(Vec::len), Some(2));
    let by_name = c.get(&format!("{base}/v2/images?name=i1")).await?;
    assert_eq!(by_name.json["images"][0]["id"], json!(iid));

    assert_eq!(
        c.put(&format!("{base}/v2/images/{iid}/tags/t1"), &json!(null))
            .await?
            .status,
        204
    );
    assert_eq!(
        c.delete(&format!("{base}/v2/images/{iid}")).await?.status,
        204
    );
    let missing = c
        .send(
            Method::GET,
            &format!("{base}/v2/images/{iid}"),
            None,
            &[("accept", "text/html")],
        )
        .await?;
    assert_eq!(missing.status, 404);
    assert!(String::from_utf8_lossy(&missing.bytes).contains("404 Not Found"));
    site.shutdown().await;
    Ok(())
}
