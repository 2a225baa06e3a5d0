//! Mirroring scenarios with the real `openstack` CLI through a gateway, shared by the test
//! bed's two kinds of sites: the real services (`tests/tests/real_sites.rs`) and the
//! simulated sandbox sites (`tests/tests/mirror_cli_sim.rs`).
//!
//! The CLI's clouds.yaml must hold `gw` (the admin, Gold in the sandbox policy) and `gw-demo`
//! (the demo tenant, Silver) through the gateway, `recovery` (the admin, directly at the
//! recovery site) and [`MIRRORED_USER_CLOUD`].

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::Value;

use crate::cli::{Cli, Steps};

/// The demo tenant (Silver) builds a small Neutron topology through the gateway with the
/// real CLI — network, subnet, security group and rule, router with an interface — updates
/// and deletes it; the recovery site's Neutron gets each piece at a checkpoint, tagged, with
/// every reference pointing at the recovery copies, and loses them with the deletes.
pub fn neutron_references_at_recovery(s: &mut Steps, cli: &Cli) {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let (net, sub, sg, router) = (
        format!("gw-net-{tag}"),
        format!("gw-sub-{tag}"),
        format!("gw-sg-{tag}"),
        format!("gw-router-{tag}"),
    );
    let wait_for = |what: &str, args: &[&str]| -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let out = cli.exec("recovery", args)?;
            if out.success() {
                return out.json();
            }
            ensure!(
                Instant::now() < deadline,
                "{what} not at the recovery site after 40 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let built = s.step(
        "neutron: network, subnet, security group + rule, router + interface reach the recovery site with references translated",
        || {
            cli.json("gw-demo", &["network", "create", &net])?;
            cli.json(
                "gw-demo",
                &["subnet", "create", "--network", &net, "--subnet-range", "10.77.0.0/24", &sub],
            )?;
            cli.json("gw-demo", &["security", "group", "create", &sg])?;
            cli.json(
                "gw-demo",
                &["security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", &sg],
            )?;
            cli.json("gw-demo", &["router", "create", &router])?;
            cli.run("gw-demo", &["router", "add", "subnet", &router, &sub])?;
            cli.run("gw-demo", &["network", "set", "--description", "updated", &net])?;

            let r_net = wait_for("the network", &["network", "show", &net, "-f", "json"])?;
            let r_sub = wait_for("the subnet", &["subnet", "show", &sub, "-f", "json"])?;
            ensure!(
                r_sub["network_id"] == r_net["id"],
                "the subnet's network is the recovery copy: {r_sub}"
            );
            ensure!(
                r_net["tags"].to_string().contains("dr-tier:silver"),
                "tagged at the recovery site: {r_net}"
            );
            let r_sg = wait_for("the security group", &["security", "group", "show", &sg, "-f", "json"])?;
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                let r_net = cli.json("recovery", &["network", "show", &net])?;
                let rules = cli.json(
                    "recovery",
                    &["security", "group", "rule", "list", r_sg["id"].as_str().unwrap_or(""), "--long"],
                )?;
                let has_rule = rules.as_array().into_iter().flatten().any(|r| {
                    r["IP Protocol"] == "tcp" && r["Port Range"].as_str().is_some_and(|p| p.starts_with("22"))
                });
                let ports = cli.json("recovery", &["port", "list", "--router", &router, "--long"])?;
                let on_subnet = ports.to_string().contains(r_sub["id"].as_str().unwrap_or("-"));
                if r_net["description"] == "updated" && has_rule && on_subnet {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "after 40 s: description {}, tcp/22 rule {has_rule}, router interface on the recovery subnet {on_subnet} ({ports})",
                    r_net["description"]
                );
                std::thread::sleep(Duration::from_millis(1000));
            }
            Ok(())
        },
    );
    if built.is_none() {
        return;
    }
    s.step(
        "neutron: the tenant's deletes reach the recovery site",
        || {
            cli.run("gw-demo", &["router", "remove", "subnet", &router, &sub])?;
            cli.run("gw-demo", &["router", "delete", &router])?;
            cli.run("gw-demo", &["security", "group", "delete", &sg])?;
            cli.run("gw-demo", &["subnet", "delete", &sub])?;
            cli.run("gw-demo", &["network", "delete", &net])?;
            let deadline = Instant::now() + Duration::from_secs(40);
            for (kind, name) in [
                ("router", &router),
                ("security group", &sg),
                ("network", &net),
            ] {
                let mut args: Vec<&str> = kind.split(' ').collect();
                args.extend(["show", name.as_str(), "-f", "json"]);
                while cli.exec("recovery", &args)?.success() {
                    ensure!(
                        Instant::now() < deadline,
                        "{kind} {name} still at the recovery site after 40 s"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Ok(())
        },
    );
}

/// The cloud (in the scenario's clouds.yaml) of the user that
/// [`gold_resources_at_recovery`] creates, directly at the recovery site.
pub const MIRRORED_USER_CLOUD: &str = "recovery-mirrored-user";

/// The project, user and password [`gold_resources_at_recovery`] creates.
pub fn gold_identity(tag: &str) -> (String, String, String) {
    (
        format!("gw-proj-{tag}"),
        format!("gw-user-{tag}"),
        format!("pw-{tag}"),
    )
}

/// The admin tenant (Gold) creates a project, a user with a password, a role assignment,
/// a group with the user in it, a keypair of its own and one of the user's (2.10), a flavor
/// and a volume type with extra specs and an image record through the gateway with the real
/// CLI: each is at the recovery site when the CLI returns (the assignment naming the
/// recovery project and user, the mirrored user able to log in there), an update follows,
/// and the deletes remove them. The user's keypair outlives the user at both sites, as Nova
/// keeps it; the admin deletes it afterwards by the gone user's ID (openstacksdk: the CLI
/// looks `--user` up at Keystone first), and the recovery site's copy goes too.
pub fn gold_resources_at_recovery(s: &mut Steps, cli: &Cli, tag: &str) {
    let (project, user, password) = gold_identity(tag);
    let user_keypair = format!("gw-user-kp-{tag}");
    let (keypair, vtype, image, group, flavor) = (
        format!("gw-kp-{tag}"),
        format!("gw-vt-{tag}"),
        format!("gw-img-{tag}"),
        format!("gw-group-{tag}"),
        format!("gw-flavor-{tag}"),
    );
    let created = s.step(
        "gold: project, user, role assignment, group membership, keypair, flavor and volume type extra specs, image are at the recovery site when the CLI returns",
        || {
            cli.json("gw", &["project", "create", "--description", "first", &project])?;
            let p_user = cli.json("gw", &["user", "create", "--password", &password, &user])?;
            cli.run("gw", &["role", "add", "--project", &project, "--user", &user, "member"])?;
            let key_file = std::env::temp_dir().join(format!("{keypair}.pub"));
            std::fs::write(&key_file, crate::cli::TEST_PUBLIC_KEY)?;
            let key_path = key_file.to_string_lossy().into_owned();
            cli.json("gw", &["keypair", "create", "--public-key", &key_path, &keypair])?;
            let for_user = ["--os-compute-api-version", "2.10", "keypair"];
            let made = [&for_user[..], &["create", "--user", &user, "--public-key", &key_path, &user_keypair]].concat();
            cli.json("gw", &made)?;
            let _ = std::fs::remove_file(&key_file);
            cli.json("gw", &["volume", "type", "create", &vtype])?;
            let img = cli.json(
                "gw",
                &["image", "create", "--disk-format", "raw", "--container-format", "bare", "--property", "purpose=dr-test", &image],
            )?;

            let r_project = cli.json("recovery", &["project", "show", &project])?;
            let r_user = cli.json("recovery", &["user", "show", &user])?;
            let assignments = cli.json(
                "recovery",
                &["role", "assignment", "list", "--project", &project, "--user", &user],
            )?;
            ensure!(
                assignments.as_array().is_some_and(|a| a.iter().any(|x| {
                    x["Project"] == r_project["id"] && x["User"] == r_user["id"]
                })),
                "the assignment names the recovery project and user: {assignments}"
            );
            let login = cli.exec(MIRRORED_USER_CLOUD, &["token", "issue", "-f", "json"])?;
            ensure!(
                login.success(),
                "the mirrored user logs in at the recovery Keystone with its password: {}",
                login.stderr
            );
            cli.json("recovery", &["keypair", "show", &keypair])?;
            cli.json("recovery", &[&for_user[..], &["show", "--user", &user, &user_keypair]].concat())?;
            cli.json("recovery", &["volume", "type", "show", &vtype])?;
            let r_img = cli.json("recovery", &["image", "show", img["id"].as_str().unwrap_or("-")])?;
            ensure!(
                r_img["name"] == image.as_str() && r_img.to_string().contains("dr-test"),
                "the image record keeps its id, name and properties: {r_img}"
            );
            // Groups and membership; flavor and volume type extra specs.
            cli.json("gw", &["group", "create", &group])?;
            cli.run("gw", &["group", "add", "user", &group, &user])?;
            cli.json("gw", &["flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", &flavor])?;
            cli.run("gw", &["flavor", "set", "--property", "hw:cpu_policy=dedicated", &flavor])?;
            cli.run("gw", &["volume", "type", "set", "--property", "replication=dr", &vtype])?;
            cli.run("recovery", &["group", "contains", "user", &group, &user])?;
            let r_flavor = cli.json("recovery", &["flavor", "show", &flavor])?;
            ensure!(
                r_flavor["properties"].to_string().contains("dedicated"),
                "flavor extra specs at the recovery site: {r_flavor}"
            );
            let r_vtype = cli.json("recovery", &["volume", "type", "show", &vtype])?;
            ensure!(
                r_vtype["properties"].to_string().contains("replication"),
                "volume type extra specs at the recovery site: {r_vtype}"
            );
            cli.run("gw", &["project", "set", "--description", "second", &project])?;
            let r_project = cli.json("recovery", &["project", "show", &project])?;
            ensure!(r_project["description"] == "second", "updated: {r_project}");
            let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
            Ok((id(&img), id(&p_user), id(&r_user)))
        },
    );
    let Some((image_id, user_id, r_user_id)) = created else {
        return;
    };
    let user_keypair_at = |cloud: &str, user_id: &str, delete: bool| {
        let env = [
            ("CLOUD", cloud),
            ("KEYPAIR", &user_keypair),
            ("USER_ID", user_id),
        ];
        let script = if delete {
            DELETE_USER_KEYPAIR
        } else {
            FIND_USER_KEYPAIR
        };
        let out = cli.run_python(script, &env)?.ok()?;
        anyhow::Ok(out.stdout.trim().to_string())
    };
    s.step(
        "gold: the deletes are at the recovery site when the CLI returns",
        || {
            cli.run(
                "gw",
                &[
                    "role",
                    "remove",
                    "--project",
                    &project,
                    "--user",
                    &user,
                    "member",
                ],
            )?;
            cli.run("gw", &["group", "delete", &group])?;
            cli.run("gw", &["flavor", "delete", &flavor])?;
            cli.run("gw", &["user", "delete", &user])?;
            let kept = user_keypair_at("recovery", &r_user_id, false)?;
            ensure!(
                kept == "present",
                "Nova keeps a deleted user's keypair: {kept}"
            );
            user_keypair_at("gw", &user_id, true)?;
            let left = user_keypair_at("recovery", &r_user_id, false)?;
            ensure!(
                left == "absent",
                "the deleted user's keypair is still at the recovery site"
            );
            cli.run("gw", &["project", "delete", &project])?;
            cli.run("gw", &["keypair", "delete", &keypair])?;
            cli.run("gw", &["volume", "type", "delete", &vtype])?;
            cli.run("gw", &["image", "delete", &image_id])?;
            for args in [
                vec!["project", "show", project.as_str()],
                vec!["user", "show", user.as_str()],
                vec!["group", "show", group.as_str()],
                vec!["flavor", "show", flavor.as_str()],
                vec!["keypair", "show", keypair.as_str()],
                vec!["volume", "type", "show", vtype.as_str()],
            ] {
                ensure!(
                    !cli.exec("recovery", &args)?.success(),
                    "{} is still at the recovery site",
                    args.join(" ")
                );
            }
            let gone = cli.exec("recovery", &["image", "show", "-f", "json", &image_id])?;
            ensure!(
                !gone.success() || gone.json()?["status"] == "deleted",
                "the image record is still at the recovery site"
            );
            Ok(())
        },
    );
}

/// Prints `present` or `absent`: whether the cloud `$CLOUD` has the keypair `$KEYPAIR` of the
/// user `$USER_ID` (who may be deleted).
const FIND_USER_KEYPAIR: &str = r#"
import os, openstack
c = openstack.connect(cloud=os.environ["CLOUD"])
try:
    c.compute.get_keypair(os.environ["KEYPAIR"], user_id=os.environ["USER_ID"])
    print("present")
except openstack.exceptions.NotFoundException:
    print("absent")
"#;

/// Deletes the keypair `$KEYPAIR` of the user `$USER_ID` at the cloud `$CLOUD`; fails if
/// there is none.
const DELETE_USER_KEYPAIR: &str = r#"
import os, openstack
c = openstack.connect(cloud=os.environ["CLOUD"])
c.compute.delete_keypair(os.environ["KEYPAIR"], ignore_missing=False, user_id=os.environ["USER_ID"])
"#;

/// The admin tenant (Gold) gives a new project access to a private flavor and a private
/// volume type through the gateway (the real CLI: `--private --project`); the recovery
/// site's copies give it to the recovery project. The project is deleted; Nova and Cinder
/// keep its access, and the admin removes it by the gone project's ID (openstacksdk: the CLI
/// looks `--project` up at Keystone first). The removals reach the recovery site's copies.
/// Real sites only: the simulator has no volume type access (the flavor half runs against it
/// in `tests/tests/mirror_resources.rs`).
pub fn access_of_a_deleted_project(s: &mut Steps, cli: &Cli, tag: &str) {
    let (project, flavor, vtype) = (
        format!("gw-access-proj-{tag}"),
        format!("gw-private-flavor-{tag}"),
        format!("gw-private-vt-{tag}"),
    );
    let access = |cloud: &str, flavor_id: &str, remove: Option<&str>| {
        let mut env = vec![
            ("CLOUD", cloud),
            ("FLAVOR_ID", flavor_id),
            ("VTYPE", &vtype),
        ];
        if let Some(p) = remove {
            env.push(("REMOVE", p));
        }
        cli.run_python(PRIVATE_ACCESS, &env)?.ok()?.json()
    };
    let made = s.step(
        "gold: a project's access to a private flavor and volume type is at the recovery site when the CLI returns",
        || {
            let p = cli.json("gw", &["project", "create", &project])?;
            let f = cli.json(
                "gw",
                &["flavor", "create", "--private", "--project", &project, "--vcpus", "1", "--ram", "128", "--disk", "1", &flavor],
            )?;
            cli.json("gw", &["volume", "type", "create", "--private", "--project", &project, &vtype])?;
            let r_project = cli.json("recovery", &["project", "show", &project])?;
            let flavor_id = f["id"].as_str().unwrap_or_default().to_string();
            let there = access("recovery", &flavor_id, None)?;
            let want = serde_json::json!([r_project["id"]]);
            ensure!(
                there["flavor"] == want && there["volume_type"] == want,
                "the recovery copies give access to the recovery project {want}: {there}"
            );
            Ok((p["id"].as_str().unwrap_or_default().to_string(), flavor_id))
        },
    );
    let Some((project_id, flavor_id)) = made else {
        return;
    };
    s.step(
        "gold: removing a deleted project's access reaches the recovery site",
        || {
            cli.run("gw", &["project", "delete", &project])?;
            let kept = access("recovery", &flavor_id, None)?;
            ensure!(
                kept["flavor"].as_array().is_some_and(|a| a.len() == 1)
                    && kept["volume_type"].as_array().is_some_and(|a| a.len() == 1),
                "Nova and Cinder keep a deleted project's access: {kept}"
            );
            let here = access("gw", &flavor_id, Some(&project_id))?;
            let none = serde_json::json!([]);
            ensure!(
                here["flavor"] == none && here["volume_type"] == none,
                "removed at the primary: {here}"
            );
            let there = access("recovery", &flavor_id, None)?;
            ensure!(
                there["flavor"] == none && there["volume_type"] == none,
                "the deleted project's access is still at the recovery site: {there}"
            );
            cli.run("gw", &["flavor", "delete", &flavor])?;
            cli.run("gw", &["volume", "type", "delete", &vtype])?;
            Ok(())
        },
    );
}

/// Prints, as JSON, the projects with access to the private flavor `$FLAVOR_ID` and to the
/// private volume type named `$VTYPE` at the cloud `$CLOUD`, after removing the project
/// `$REMOVE` from both if set.
const PRIVATE_ACCESS: &str = r#"
import json, os, openstack
c = openstack.connect(cloud=os.environ["CLOUD"])
flavor = os.environ["FLAVOR_ID"]
vtype = next(t for t in c.block_storage.types(is_public="None") if t.name == os.environ["VTYPE"])
project = os.environ.get("REMOVE")
if project:
    c.compute.flavor_remove_tenant_access(flavor, project)
    c.block_storage.remove_type_access(vtype.id, project)
print(json.dumps({
    "flavor": sorted(a["tenant_id"] for a in c.compute.get_flavor_access(flavor)),
    "volume_type": sorted(a["project_id"] for a in c.block_storage.get_type_access(vtype.id)),
}))
"#;
