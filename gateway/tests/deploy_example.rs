//! deploy/drgw.toml, the operators' commented example, passes `check-config` once the files
//! it names (password files, TLS material) exist.

use drgw::config::Config;

#[test]
fn deploy_example_passes_check_config() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/drgw.toml");
    let text = std::fs::read_to_string(&example).expect("deploy/drgw.toml exists");
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/drgw");
    std::fs::create_dir_all(etc.join("tls")).unwrap();
    for f in [
        "dc1-password",
        "dc2-password",
        "tls/cloud.pem",
        "tls/cloud.key",
    ] {
        std::fs::write(etc.join(f), "x\n").unwrap();
    }
    let text = text.replace("/etc/drgw/", &format!("{}/", etc.display()));
    let config =
        Config::parse(&text, root.path()).unwrap_or_else(|e| panic!("deploy/drgw.toml:\n{e}"));
    assert_eq!(
        config.listeners.len(),
        3,
        "identity, compute and the shared listener"
    );
    assert_eq!(
        config
            .service_listener(drgw::operation::Service::Image)
            .unwrap()
            .public_url,
        "https://api.cloud.example.com/image"
    );
    assert!(
        config.admin.listen.ip().is_loopback(),
        "the admin listener stays on loopback"
    );
    assert_eq!(
        config.access_log,
        drgw::access_log::AccessLogTarget::File("/var/log/drgw/access.log".into()),
        "the unit's LogsDirectory"
    );
}
