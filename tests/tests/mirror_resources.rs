//! The mirror engine's resource coverage against two simulated sites (identity, compute,
//! image, block storage, security groups, workload protection records), Gold so that each
//! change is at the recovery site when `submit` returns.

use drgw::mirror::MirrorEngine;
use drgw::mutation::{GoldFailure, MirrorOutcome};
use drgw::operation::Service;
use drgw_tests::mirror_harness::{bronze, failed_records, gold, recovery_id, Bed};
use drgw_tests::sim::client::{SimClient, SimResponse};
use http::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn identity_compute_image_volume_security_groups_and_workloads() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let ok = |out: MirrorOutcome| assert_eq!(out, MirrorOutcome::Applied);

    // Project with tags, user with a password, role assignment by role name.
    let (resp, m) = bed.call((&bed.admin, &bed.admin_ctx), &g, Service::Identity, Method::POST, "/v3/projects",
        Some(json!({"project": {"name": "mirrored", "domain_id": "default", "tags": ["dr-tier:gold"]}}))).await;
    let pid = resp.json["project"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rpid = recovery_id(&engine, "identity", "project", &pid)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/projects/{rpid}"))
        .await;
    assert_eq!(got.json["project"]["name"], "mirrored");
    assert_eq!(got.json["project"]["tags"], json!(["dr-tier:gold"]));

    let (resp, m) = bed.call((&bed.admin, &bed.admin_ctx), &g, Service::Identity, Method::POST, "/v3/users",
        Some(json!({"user": {"name": "alice", "domain_id": "default", "password": "s3cret-pw", "default_project_id": pid}}))).await;
    let uid = resp.json["user"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    // A Gold record's transition to applied is queued when submit returns.
    journal.flush().await.unwrap();
    let rec = journal
        .get(journal.last_seq().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        rec.request.secret.is_none(),
        "the sealed password is dropped once applied"
    );
    assert!(!serde_json::to_string(&rec).unwrap().contains("s3cret-pw"));
    let member = bed
        .admin
        .get(&bed.url(&bed.primary, Service::Identity, "/v3/roles?name=member"))
        .await
        .unwrap();
    let role = member.json["roles"][0]["id"].as_str().unwrap().to_string();
    let (_, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &g,
            Service::Identity,
            Method::PUT,
            &format!("/v3/projects/{pid}/users/{uid}/roles/{role}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    // The mirrored user logs in at the recovery site with the mirrored password and role.
    let mut alice = SimClient::new();
    alice
        .login(
            &bed.recovery.endpoints().auth_url(),
            "alice",
            "s3cret-pw",
            "mirrored",
        )
        .await
        .expect("mirrored login");

    // Keypair of the demo user, created as admin with user_id at 2.10.
    let (_, m) = bed.call((&bed.demo, &bed.demo_ctx), &g, Service::Compute, Method::POST, "/v2.1/os-keypairs",
        Some(json!({"keypair": {"name": "k1", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMirror test"}}))).await;
    ok(engine.submit(m).await);
    let rdemo_user = bed.recovery.user_id("demo").unwrap();
    let got = bed
        .recovery_get(
            Service::Compute,
            &format!("/v2.1/os-keypairs/k1?user_id={rdemo_user}"),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert!(got.json["keypair"]["public_key"]
        .as_str()
        .unwrap()
        .starts_with("ssh-ed25519"));

    // Security group and a rule referencing it (remote group too); default egress rules
    // are not duplicated.
    let (resp, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/security-groups",
            Some(json!({"security_group": {"name": "web"}})),
        )
        .await;
    let sg = resp.json["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(engine.submit(m).await);
    let (_, m) = bed.call((&bed.demo, &bed.demo_ctx), &g, Service::Network, Method::POST, "/v2.0/security-group-rules",
        Some(json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "protocol": "tcp",
            "port_range_min": 443, "port_range_max": 443, "remote_group_id": sg}}))).await;
    ok(engine.submit(m).await);
    let rsg = recovery_id(&engine, "network", "security_group", &sg)
        .await
        .unwrap();
    let rules = bed
        .recovery_get(
            Service::Network,
            &format!("/v2.0/security-group-rules?security_group_id={rsg}"),
        )
        .await;
    let rules = rules.json["security_group_rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        rules.len(),
        3,
        "two default egress rules and the mirrored one: {rules:?}"
    );
    let ingress = rules.iter().find(|r| r["direction"] == "ingress").unwrap();
    assert_eq!(ingress["remote_group_id"], json!(rsg));

    // Image metadata with the same id; JSON-patch update; tag.
    let (resp, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Image,
            Method::POST,
            "/v2/images",
            Some(json!({"name": "img", "disk_format": "qcow2", "container_format": "bare"})),
        )
        .await;
    let img = resp.json["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let patch = json!([{"op": "add", "path": "/os_distro", "value": "ubuntu"}]);
    let r = bed
        .demo
        .send_raw(
            Method::PATCH,
            &bed.url(&bed.primary, Service::Image, &format!("/v2/images/{img}")),
            patch.to_string().into(),
            "application/openstack-images-v2.1-json-patch",
            &[],
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.json);
    let mut m = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Image,
            Method::PUT,
            &format!("/v2/images/{img}/tags/dr"),
            None,
        )
        .await
        .1;
    ok(engine.submit(m.clone()).await);
    m.method = Method::PATCH;
    m.path = format!("/v2/images/{img}");
    m.request_body = Some(patch);
    ok(engine.submit(m).await);
    let got = bed
        .recovery_get(Service::Image, &format!("/v2/images/{img}"))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["os_distro"], "ubuntu");
    assert_eq!(got.json["tags"], json!(["dr"]));
    assert_eq!(
        got.json["owner"],
        json!(bed.recovery.project_id("demo").unwrap())
    );

    // Volume type through Cinder's project path (the service project at the recovery site).
    let admin_p = bed.admin_ctx.project_id.clone().unwrap();
    let (resp, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &g,
            Service::BlockStorage,
            Method::POST,
            &format!("/v3/{admin_p}/types"),
            Some(json!({"volume_type": {"name": "fast"}})),
        )
        .await;
    let vt = resp.json["volume_type"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rvt = recovery_id(&engine, "volume", "volume_type", &vt)
        .await
        .unwrap();
    let radmin_p = bed.recovery.project_id("admin").unwrap();
    let got = bed
        .recovery_get(
            Service::BlockStorage,
            &format!("/v3/{radmin_p}/types/{rvt}"),
        )
        .await;
    assert_eq!(got.json["volume_type"]["name"], "fast");

    // A server: not created at the recovery site, its spec stored with translated refs.
    let (net, m) = bed.demo_network(&bronze(), "srv-net").await;
    let _ = m; // never submitted: the server's reference is mirrored as a dependency
               // Upload data at the primary so that the image is active (data is not mirrored).
    let up = bed
        .demo
        .send_raw(
            Method::PUT,
            &bed.url(
                &bed.primary,
                Service::Image,
                &format!("/v2/images/{img}/file"),
            ),
            vec![0u8; 64].into(),
            "application/octet-stream",
            &[],
        )
        .await
        .unwrap();
    assert!(up.status.is_success(), "{}", up.status);
    let active = img.clone();
    let flavors = bed
        .demo
        .get(&bed.url(&bed.primary, Service::Compute, "/v2.1/flavors"))
        .await
        .unwrap();
    let flavor = flavors.json["flavors"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (resp, m) = bed.call((&bed.demo, &bed.demo_ctx), &g, Service::Compute, Method::POST, "/v2.1/servers",
        Some(json!({"server": {"name": "vm", "flavorRef": flavor, "imageRef": active, "networks": [{"uuid": net}]}}))).await;
    let sid = resp.json["server"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let p = engine
        .protection("compute", "server", &sid)
        .await
        .unwrap()
        .expect("protection record");
    let rnet = recovery_id(&engine, "network", "network", &net)
        .await
        .expect("dependency mirrored");
    assert_eq!(
        p.spec.as_ref().unwrap()["server"]["networks"][0]["uuid"],
        json!(rnet)
    );
    assert_eq!(
        p.spec.as_ref().unwrap()["server"]["imageRef"],
        json!(active)
    );
    // The unmapped stock flavor maps to the recovery site's flavor of the same name.
    let rflavor = recovery_id(&engine, "compute", "flavor", &flavor)
        .await
        .expect("flavor mapped");
    let fname = flavors.json["flavors"][0]["name"].clone();
    let got = bed
        .recovery_get(Service::Compute, &format!("/v2.1/flavors/{rflavor}"))
        .await;
    assert_eq!(got.json["flavor"]["name"], fname);
    assert_eq!(
        p.spec.as_ref().unwrap()["server"]["flavorRef"],
        json!(rflavor)
    );
    let servers = bed
        .recovery_get(Service::Compute, "/v2.1/servers?all_tenants=1")
        .await;
    assert!(
        servers.json["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "vm"),
        "not started at recovery"
    );

    // Deletes remove the copies and the mappings.
    let (_, m) = bed
        .call(
            (&bed.admin, &bed.admin_ctx),
            &g,
            Service::Identity,
            Method::DELETE,
            &format!("/v3/users/{uid}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    assert_eq!(recovery_id(&engine, "identity", "user", &uid).await, None);
    let (_, m) = bed
        .call(
            (&bed.demo, &bed.demo_ctx),
            &g,
            Service::Compute,
            Method::DELETE,
            &format!("/v2.1/servers/{sid}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    assert!(engine
        .protection("compute", "server", &sid)
        .await
        .unwrap()
        .is_none());
    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

/// Keystone domains, and what lives in them: a domain is created at the recovery site with
/// an ID of its own, and every `domain_id` and domain-scoped role assignment that names it
/// is translated; a domain made at the primary without the gateway is mirrored when a
/// project in it is; the default domain maps to itself. (tempest's identity tests, run
/// through the gateway by the real tier, do all of this.)
#[tokio::test]
async fn domains_and_what_lives_in_them() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let ok = |out: MirrorOutcome| assert_eq!(out, MirrorOutcome::Applied);
    let admin = (&bed.admin, &bed.admin_ctx);

    let (resp, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::POST,
            "/v3/domains",
            Some(json!({"domain": {"name": "dr-domain", "description": "mirrored"}})),
        )
        .await;
    let did = resp.json["domain"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rdid = recovery_id(&engine, "identity", "domain", &did)
        .await
        .unwrap();
    assert_ne!(rdid, did, "the recovery site gives the domain its own ID");
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/domains/{rdid}"))
        .await;
    assert_eq!(got.json["domain"]["name"], "dr-domain", "{}", got.json);

    // A project, a group and a user in it, at the recovery site in its copy.
    let (resp, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::POST,
            "/v3/projects",
            Some(json!({"project": {"name": "in-domain", "domain_id": did}})),
        )
        .await;
    let pid = resp.json["project"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rpid = recovery_id(&engine, "identity", "project", &pid)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/projects/{rpid}"))
        .await;
    assert_eq!(
        got.json["project"]["domain_id"],
        rdid.as_str(),
        "{}",
        got.json
    );
    let (resp, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::POST,
            "/v3/groups",
            Some(json!({"group": {"name": "in-domain", "domain_id": did}})),
        )
        .await;
    let gid = resp.json["group"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let rgid = recovery_id(&engine, "identity", "group", &gid)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/groups/{rgid}"))
        .await;
    assert_eq!(
        got.json["group"]["domain_id"],
        rdid.as_str(),
        "{}",
        got.json
    );
    let (resp, m) = bed
        .call(admin, &g, Service::Identity, Method::POST, "/v3/users",
            Some(json!({"user": {"name": "in-domain", "domain_id": did, "password": "pw-in-domain"}})))
        .await;
    let uid = resp.json["user"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let ruid = recovery_id(&engine, "identity", "user", &uid)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/users/{ruid}"))
        .await;
    assert_eq!(got.json["user"]["domain_id"], rdid.as_str(), "{}", got.json);

    // An update that repeats the user's ID in its body, as tempest's do.
    let (_, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::PATCH,
            &format!("/v3/users/{uid}"),
            Some(json!({"user": {"id": uid, "email": "in-domain@example.org"}})),
        )
        .await;
    ok(engine.submit(m).await);
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/users/{ruid}"))
        .await;
    assert_eq!(
        got.json["user"]["email"], "in-domain@example.org",
        "{}",
        got.json
    );

    // A role on the domain, for the group.
    let member = bed
        .admin
        .get(&bed.url(&bed.primary, Service::Identity, "/v3/roles?name=member"))
        .await
        .unwrap();
    let role = member.json["roles"][0]["id"].as_str().unwrap().to_string();
    let (_, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::PUT,
            &format!("/v3/domains/{did}/groups/{gid}/roles/{role}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    let grants = bed
        .recovery_get(
            Service::Identity,
            &format!("/v3/domains/{rdid}/groups/{rgid}/roles"),
        )
        .await;
    assert_eq!(grants.json["roles"][0]["name"], "member", "{}", grants.json);

    // A domain the gateway never saw made: mirrored with the project that needs it.
    let side = bed
        .admin
        .post(
            &bed.url(&bed.primary, Service::Identity, "/v3/domains"),
            &json!({"domain": {"name": "made-aside"}}),
        )
        .await
        .unwrap();
    let side_id = side.json["domain"]["id"].as_str().unwrap().to_string();
    let (resp, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::POST,
            "/v3/projects",
            Some(json!({"project": {"name": "aside", "domain_id": side_id}})),
        )
        .await;
    let aside = resp.json["project"]["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    let raside = recovery_id(&engine, "identity", "project", &aside)
        .await
        .unwrap();
    let rside = recovery_id(&engine, "identity", "domain", &side_id)
        .await
        .unwrap();
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/domains/{rside}"))
        .await;
    assert_eq!(got.json["domain"]["name"], "made-aside", "{}", got.json);
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/projects/{raside}"))
        .await;
    assert_eq!(
        got.json["project"]["domain_id"],
        rside.as_str(),
        "{}",
        got.json
    );

    // The default domain is the same domain at both sites.
    let (_, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::POST,
            "/v3/projects",
            Some(json!({"project": {"name": "in-default", "domain_id": "default"}})),
        )
        .await;
    ok(engine.submit(m).await);
    assert_eq!(
        recovery_id(&engine, "identity", "domain", "default")
            .await
            .as_deref(),
        Some("default")
    );

    // Disabled, then deleted, as Keystone requires.
    let (_, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::PATCH,
            &format!("/v3/domains/{did}"),
            Some(json!({"domain": {"enabled": false}})),
        )
        .await;
    ok(engine.submit(m).await);
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/domains/{rdid}"))
        .await;
    assert_eq!(got.json["domain"]["enabled"], false, "{}", got.json);
    let (_, m) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::DELETE,
            &format!("/v3/domains/{did}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);
    let got = bed
        .recovery_get(Service::Identity, &format!("/v3/domains/{rdid}"))
        .await;
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{}", got.json);

    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

/// The recovery router's interface ports: (port id, fixed IPs).
async fn interface_ports(bed: &Bed, router: &str) -> Vec<(String, Vec<String>)> {
    let got = bed
        .recovery_get(
            Service::Network,
            &format!("/v2.0/ports?device_id={router}&device_owner=network:router_interface"),
        )
        .await;
    got.json["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ips = p["fixed_ips"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{}={}",
                        f["subnet_id"].as_str().unwrap(),
                        f["ip_address"].as_str().unwrap()
                    )
                })
                .collect();
            (p["id"].as_str().unwrap().to_string(), ips)
        })
        .collect()
}

#[tokio::test]
async fn routers_and_their_interfaces_by_subnet_and_by_port() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let ok = |out: MirrorOutcome| assert_eq!(out, MirrorOutcome::Applied);
    let demo = (&bed.demo, &bed.demo_ctx);
    let created = |resp: &drgw_tests::sim::client::SimResponse, w: &str| {
        resp.json[w]["id"].as_str().unwrap().to_string()
    };

    let mut subnets = Vec::new();
    for (name, cidr) in [("inside", "10.20.0.0/24"), ("edge", "10.30.0.0/24")] {
        let (resp, m) = bed
            .call(
                demo,
                &g,
                Service::Network,
                Method::POST,
                "/v2.0/networks",
                Some(json!({"network": {"name": name}})),
            )
            .await;
        let net = created(&resp, "network");
        ok(engine.submit(m).await);
        let (resp, m) = bed
            .call(demo, &g, Service::Network, Method::POST, "/v2.0/subnets",
                Some(json!({"subnet": {"name": name, "network_id": net, "cidr": cidr, "ip_version": 4}})))
            .await;
        let sub = created(&resp, "subnet");
        ok(engine.submit(m).await);
        let rsub = recovery_id(&engine, "network", "subnet", &sub)
            .await
            .unwrap();
        subnets.push((net, sub, rsub));
    }
    let (resp, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/routers",
            Some(json!({"router": {"name": "r1"}})),
        )
        .await;
    let router = created(&resp, "router");
    ok(engine.submit(m).await);
    let rrouter = recovery_id(&engine, "network", "router", &router)
        .await
        .unwrap();
    let iface = |action: &str| format!("/v2.0/routers/{router}/{action}_router_interface");
    let put = Method::PUT;

    // By subnet: the recovery router gets an interface on the mapped subnet.
    let (inside_net, inside, rinside) = subnets[0].clone();
    let _ = inside_net;
    let (_, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("add"),
            Some(json!({"subnet_id": inside})),
        )
        .await;
    ok(engine.submit(m).await);
    assert_eq!(
        interface_ports(&bed, &rrouter)
            .await
            .into_iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        vec![vec![format!("{rinside}=10.20.0.1")]]
    );

    // By port: a port is a workload, kept as a protection record only, until a router
    // takes it; then the recovery site gets it, same address on the mapped subnet.
    let (edge_net, edge, redge) = subnets[1].clone();
    let (resp, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"name": "edge-if", "network_id": edge_net,
                "fixed_ips": [{"subnet_id": edge, "ip_address": "10.30.0.7"}]}})),
        )
        .await;
    let port = created(&resp, "port");
    ok(engine.submit(m).await);
    assert_eq!(recovery_id(&engine, "network", "port", &port).await, None);
    assert!(engine
        .protection("network", "port", &port)
        .await
        .unwrap()
        .is_some());
    let (_, add_by_port) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("add"),
            Some(json!({"port_id": port})),
        )
        .await;
    ok(engine.submit(add_by_port.clone()).await);
    let rport = recovery_id(&engine, "network", "port", &port)
        .await
        .expect("the port is mirrored with the interface");
    let ports = interface_ports(&bed, &rrouter).await;
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert!(
        ports.contains(&(rport.clone(), vec![format!("{redge}=10.30.0.7")])),
        "{ports:?}"
    );
    let copy = bed
        .recovery_get(Service::Network, &format!("/v2.0/ports/{rport}"))
        .await;
    assert_eq!(copy.json["port"]["name"], "edge-if");

    // The same record applied again (its answer lost to a crash) adds nothing.
    ok(engine.submit(add_by_port).await);
    assert_eq!(interface_ports(&bed, &rrouter).await.len(), 2);

    // Removed by port: the port goes at both sites, and nothing will restore it.
    let (_, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("remove"),
            Some(json!({"port_id": port})),
        )
        .await;
    ok(engine.submit(m).await);
    let ports = interface_ports(&bed, &rrouter).await;
    assert_eq!(ports.len(), 1, "{ports:?}");
    let gone = bed
        .recovery_get(Service::Network, &format!("/v2.0/ports/{rport}"))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(recovery_id(&engine, "network", "port", &port).await, None);
    assert_eq!(
        engine.protection("network", "port", &port).await.unwrap(),
        None
    );

    // A copy holding the port's address at the recovery site, mapped to nothing (made
    // before a crash lost its mapping), is adopted, not duplicated.
    let (resp, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"name": "edge-if-2", "network_id": edge_net,
                "fixed_ips": [{"subnet_id": edge, "ip_address": "10.30.0.8"}]}})),
        )
        .await;
    let port2 = created(&resp, "port");
    ok(engine.submit(m).await);
    let redge_net = recovery_id(&engine, "network", "network", &edge_net)
        .await
        .unwrap();
    let project = bed.recovery.project_id("demo").unwrap();
    let stray = bed
        .radmin
        .post(
            &bed.url(&bed.recovery, Service::Network, "/v2.0/ports"),
            &json!({"port": {"name": "edge-if-2", "network_id": redge_net, "project_id": project,
                "fixed_ips": [{"subnet_id": redge, "ip_address": "10.30.0.8"}]}}),
        )
        .await
        .unwrap();
    let stray = created(&stray, "port");
    let (_, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("add"),
            Some(json!({"port_id": port2})),
        )
        .await;
    ok(engine.submit(m).await);
    assert_eq!(
        recovery_id(&engine, "network", "port", &port2).await,
        Some(stray.clone())
    );
    assert!(interface_ports(&bed, &rrouter)
        .await
        .iter()
        .any(|p| p.0 == stray));

    // Removed by subnet, the port attached by port goes too.
    let (_, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("remove"),
            Some(json!({"subnet_id": edge})),
        )
        .await;
    ok(engine.submit(m).await);
    let ports = interface_ports(&bed, &rrouter).await;
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(recovery_id(&engine, "network", "port", &port2).await, None);
    assert_eq!(
        engine.protection("network", "port", &port2).await.unwrap(),
        None
    );

    // A port attached and detached before the records' turn (Bronze, Silver): at the
    // primary the port went with the interface, so both records are applied as nothing.
    let (resp, m) = bed
        .call(
            demo,
            &g,
            Service::Network,
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"name": "brief", "network_id": edge_net}})),
        )
        .await;
    let brief = created(&resp, "port");
    ok(engine.submit(m).await);
    let (_, add) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("add"),
            Some(json!({"port_id": brief})),
        )
        .await;
    let (_, remove) = bed
        .call(
            demo,
            &g,
            Service::Network,
            put.clone(),
            &iface("remove"),
            Some(json!({"port_id": brief})),
        )
        .await;
    ok(engine.submit(add).await);
    ok(engine.submit(remove).await);
    assert_eq!(recovery_id(&engine, "network", "port", &brief).await, None);
    assert_eq!(
        engine.protection("network", "port", &brief).await.unwrap(),
        None
    );
    assert_eq!(interface_ports(&bed, &rrouter).await.len(), 1);

    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn image_owners_and_updates_in_either_patch_form() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let ok = |out: MirrorOutcome| assert_eq!(out, MirrorOutcome::Applied);
    let admin = (&bed.admin, &bed.admin_ctx);
    let owner_there = |img: String| {
        let bed = &bed;
        async move {
            let got = bed
                .recovery_get(Service::Image, &format!("/v2/images/{img}"))
                .await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.json);
            got.json
        }
    };

    // Glance takes any string as an owner; one that names no project is copied as it is.
    let stranger = "0123456789abcdef0123456789abcdef";
    let (resp, m) = bed
        .call(admin, &g, Service::Image, Method::POST, "/v2/images",
            Some(json!({"name": "owned", "disk_format": "raw", "container_format": "bare", "owner": stranger})))
        .await;
    let img = resp.json["id"].as_str().unwrap().to_string();
    ok(engine.submit(m).await);
    assert_eq!(owner_there(img.clone()).await["owner"], stranger);

    // Given to the demo project in the older patch form (`...-v2.0-json-patch`, as tempest
    // sends it): the copy goes to the demo project's copy.
    let path = format!("/v2/images/{img}");
    let demo = bed.demo_ctx.project_id.clone().unwrap();
    let (_, m) = bed
        .call_as(
            admin,
            &g,
            Service::Image,
            Method::PATCH,
            &path,
            json!([{"replace": "/owner", "value": demo}, {"add": "/os_distro", "value": "debian"}]),
            "application/openstack-images-v2.0-json-patch",
        )
        .await;
    ok(engine.submit(m).await);
    let got = owner_there(img.clone()).await;
    assert_eq!(
        got["owner"],
        json!(bed.recovery.project_id("demo").unwrap())
    );
    assert_eq!(got["os_distro"], "debian");

    // And back to a stranger, in the newer form.
    let (_, m) = bed
        .call_as(
            admin,
            &g,
            Service::Image,
            Method::PATCH,
            &path,
            json!([{"op": "replace", "path": "/owner", "value": stranger}]),
            "application/openstack-images-v2.1-json-patch",
        )
        .await;
    ok(engine.submit(m).await);
    assert_eq!(owner_there(img.clone()).await["owner"], stranger);

    // An image made without the gateway and deleted through it: a copy would have its ID,
    // so the delete is sent by that ID (nothing there: fine), not mirrored first.
    let unseen = bed
        .admin
        .post(
            &bed.url(&bed.primary, Service::Image, "/v2/images"),
            &json!({"name": "unseen", "disk_format": "raw", "container_format": "bare"}),
        )
        .await
        .unwrap();
    let unseen = unseen.json["id"].as_str().unwrap().to_string();
    let (_, m) = bed
        .call(
            admin,
            &g,
            Service::Image,
            Method::DELETE,
            &format!("/v2/images/{unseen}"),
            None,
        )
        .await;
    ok(engine.submit(m).await);

    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

/// Records whose turn comes after what they name was deleted at the primary (Bronze and
/// Silver lag; tenants apply in parallel, so an admin's user delete can come first): the
/// recovery site already matches the primary, so they are applied as nothing, not failed.
#[tokio::test]
async fn records_naming_what_the_primary_deleted_since_apply_as_nothing() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let g = gold(GoldFailure::Degrade);
    let ok = |out: MirrorOutcome| assert_eq!(out, MirrorOutcome::Applied);
    let admin = (&bed.admin, &bed.admin_ctx);
    let at_primary = |path: &str| bed.url(&bed.primary, Service::Identity, path);
    let id_of = |r: &drgw_tests::sim::client::SimResponse, w: &str| {
        r.json[w]["id"].as_str().unwrap().to_string()
    };

    // A role given to a user who is deleted before the record's turn.
    let user = bed
        .admin
        .post(
            &at_primary("/v3/users"),
            &json!({"user": {"name": "brief-user", "domain_id": "default"}}),
        )
        .await
        .unwrap();
    let user = id_of(&user, "user");
    let project = bed.admin_ctx.project_id.clone().unwrap();
    let roles = bed
        .admin
        .get(&at_primary("/v3/roles?name=member"))
        .await
        .unwrap();
    let role = roles.json["roles"][0]["id"].as_str().unwrap().to_string();
    let (_, grant) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::PUT,
            &format!("/v3/projects/{project}/users/{user}/roles/{role}"),
            None,
        )
        .await;
    bed.admin
        .delete(&at_primary(&format!("/v3/users/{user}")))
        .await
        .unwrap();
    ok(engine.submit(grant).await);
    assert_eq!(recovery_id(&engine, "identity", "user", &user).await, None);

    // A project made in a domain, then both deleted, before the create's turn.
    let domain = bed
        .admin
        .post(
            &at_primary("/v3/domains"),
            &json!({"domain": {"name": "brief-domain"}}),
        )
        .await
        .unwrap();
    let domain = id_of(&domain, "domain");
    let (resp, create) = bed
        .call(
            admin,
            &g,
            Service::Identity,
            Method::POST,
            "/v3/projects",
            Some(json!({"project": {"name": "brief-project", "domain_id": domain}})),
        )
        .await;
    let brief = id_of(&resp, "project");
    bed.admin
        .delete(&at_primary(&format!("/v3/projects/{brief}")))
        .await
        .unwrap();
    bed.admin
        .send(
            Method::PATCH,
            &at_primary(&format!("/v3/domains/{domain}")),
            Some(&json!({"domain": {"enabled": false}})),
            &[],
        )
        .await
        .unwrap();
    bed.admin
        .delete(&at_primary(&format!("/v3/domains/{domain}")))
        .await
        .unwrap();
    ok(engine.submit(create).await);
    assert_eq!(
        recovery_id(&engine, "identity", "project", &brief).await,
        None
    );
    let there = bed
        .recovery_get(Service::Identity, "/v3/projects?name=brief-project")
        .await;
    assert_eq!(there.json["projects"], json!([]), "{}", there.json);

    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

/// The admin's calls at the primary, each mirrored Gold before the next.
struct GoldAdmin<'a> {
    bed: &'a Bed,
    engine: &'a MirrorEngine,
}

impl GoldAdmin<'_> {
    /// `method path` at the primary; asserts that it succeeded and that the mirror applied it.
    async fn call(&self, svc: Service, method: Method, path: &str, body: Value) -> SimResponse {
        let body = (!body.is_null()).then_some(body);
        let admin = (&self.bed.admin, &self.bed.admin_ctx);
        let g = gold(GoldFailure::Degrade);
        let (resp, m) = self.bed.call(admin, &g, svc, method, path, body).await;
        assert_eq!(
            self.engine.submit(m).await,
            MirrorOutcome::Applied,
            "{path}"
        );
        resp
    }
}

/// Nova keeps a user's keypairs when Keystone deletes the user, at both sites; an admin
/// deletes such a keypair later by naming the gone user (`?user_id=`). The user's mapping
/// is retired, not forgotten, when its delete is mirrored, so that delete reaches the
/// recovery site's copy instead of leaving it behind, and not the admin's own keypair of
/// the same name.
#[tokio::test]
async fn keypair_of_a_deleted_user_is_deleted_at_the_recovery_site_too() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let admin = GoldAdmin {
        bed: &bed,
        engine: &engine,
    };
    let keypair = |name: &str, user: Option<&str>| {
        let mut k = json!({"name": "left-key", "public_key": format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{name} {name}")});
        if let Some(u) = user {
            k["user_id"] = json!(u);
        }
        json!({ "keypair": k })
    };
    let status = |path: String| {
        let bed = &bed;
        async move { bed.recovery_get(Service::Compute, &path).await.status }
    };

    let user = admin
        .call(
            Service::Identity,
            Method::POST,
            "/v3/users",
            json!({"user": {"name": "leaver", "domain_id": "default", "password": "leaver-pw-1"}}),
        )
        .await;
    let user = user.json["user"]["id"].as_str().unwrap().to_string();
    let ruser = recovery_id(&engine, "identity", "user", &user)
        .await
        .unwrap();
    let radmin = bed.recovery.user_id("admin").unwrap();
    // The admin's own keypair and the user's, of the same name.
    admin
        .call(
            Service::Compute,
            Method::POST,
            "/v2.1/os-keypairs",
            keypair("Admin", None),
        )
        .await;
    admin
        .call(
            Service::Compute,
            Method::POST,
            "/v2.1/os-keypairs",
            keypair("Leaver", Some(&user)),
        )
        .await;
    let copy = |u: &str| format!("/v2.1/os-keypairs/left-key?user_id={u}");
    assert_eq!(status(copy(&radmin)).await, StatusCode::OK);
    assert_eq!(status(copy(&ruser)).await, StatusCode::OK);

    admin
        .call(
            Service::Identity,
            Method::DELETE,
            &format!("/v3/users/{user}"),
            Value::Null,
        )
        .await;
    let gone = bed
        .recovery_get(Service::Identity, &format!("/v3/users/{ruser}"))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.json);
    assert_eq!(recovery_id(&engine, "identity", "user", &user).await, None);
    assert_eq!(
        status(copy(&ruser)).await,
        StatusCode::OK,
        "Nova kept the keypair"
    );

    admin
        .call(Service::Compute, Method::DELETE, &copy(&user), Value::Null)
        .await;
    assert_eq!(status(copy(&ruser)).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(copy(&radmin)).await,
        StatusCode::OK,
        "the admin's own keypair stays"
    );

    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

/// Nova keeps a project's access to a private flavor when Keystone deletes the project, and
/// removes it later by the gone project's ID; the project's mapping is retired with its
/// delete, so the removal reaches the recovery site's flavor too.
#[tokio::test]
async fn flavor_access_of_a_deleted_project_is_removed_at_the_recovery_site_too() {
    let bed = Bed::new().await;
    let (engine, journal) = bed.mem_engine().await;
    let admin = GoldAdmin {
        bed: &bed,
        engine: &engine,
    };

    let project = admin
        .call(
            Service::Identity,
            Method::POST,
            "/v3/projects",
            json!({"project": {"name": "short-lived", "domain_id": "default"}}),
        )
        .await;
    let project = project.json["project"]["id"].as_str().unwrap().to_string();
    let rproject = recovery_id(&engine, "identity", "project", &project)
        .await
        .unwrap();
    let flavor = admin
        .call(
            Service::Compute,
            Method::POST,
            "/v2.1/flavors",
            json!({"flavor": {"name": "private-one", "ram": 128, "vcpus": 1, "disk": 1,
                "os-flavor-access:is_public": false}}),
        )
        .await;
    let flavor = flavor.json["flavor"]["id"].as_str().unwrap().to_string();
    let action = format!("/v2.1/flavors/{flavor}/action");
    admin
        .call(
            Service::Compute,
            Method::POST,
            &action,
            json!({"addTenantAccess": {"tenant": project}}),
        )
        .await;
    let access = format!("/v2.1/flavors/{flavor}/os-flavor-access");
    let there = bed.recovery_get(Service::Compute, &access).await;
    assert_eq!(
        there.json["flavor_access"],
        json!([{"flavor_id": flavor, "tenant_id": rproject}])
    );

    admin
        .call(
            Service::Identity,
            Method::DELETE,
            &format!("/v3/projects/{project}"),
            Value::Null,
        )
        .await;
    assert_eq!(
        recovery_id(&engine, "identity", "project", &project).await,
        None
    );
    let here = admin
        .call(
            Service::Compute,
            Method::POST,
            &action,
            json!({"removeTenantAccess": {"tenant": project}}),
        )
        .await;
    assert_eq!(here.json["flavor_access"], json!([]));
    let there = bed.recovery_get(Service::Compute, &access).await;
    assert_eq!(there.json["flavor_access"], json!([]), "{}", there.json);

    let failed = failed_records(&journal).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}
