//! `drgw sandbox`, the README's first command, as a newcomer runs it: the binary starts two
//! `drgw-sim` processes and the gateway, writes a drgw.toml that passes `check-config` and a
//! clouds.yaml the real CLI uses, answers `drgw status`, and stops cleanly on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use drgw_tests::cli::OpenStackCli;
use drgw_tests::testbed::drgw_binary;

#[test]
fn sandbox_runs_and_the_cli_uses_it() {
    let bin = drgw_binary();
    assert!(
        bin.is_file(),
        "{} not built (cargo build --workspace)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // Ten free ports for the gateway (base..+9) and ten for each simulated site (+100,
    // +200), below the kernel's ephemeral range so that no client socket takes one.
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let base = loop {
        let p = 20_000 + (rand::random::<u16>() % 900) * 10;
        if [0u16, 100, 200]
            .iter()
            .all(|off| (0..10).all(|o| free(p + off + o)))
        {
            break p;
        }
    };
    let mut child = Command::new(&bin)
        .args(["sandbox", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("drgw sandbox starts");
    let _stop = StopOnPanic(child.id());
    let clouds = dir.path().join("clouds.yaml");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(clouds.exists() && std::net::TcpStream::connect(("127.0.0.1", base)).is_ok()) {
        assert!(
            Instant::now() < deadline,
            "the sandbox did not come up within 60 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "drgw sandbox exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let check = Command::new(&bin)
        .arg("check-config")
        .arg(dir.path().join("drgw.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    let cli = OpenStackCli::new(&clouds).expect("the real openstack CLI");
    let token = cli
        .json("drgw", &["token", "issue"])
        .expect("token issue through the sandbox");
    assert!(
        token["project_id"].as_str().is_some_and(|p| !p.is_empty()),
        "{token}"
    );
    let catalog = cli
        .json("drgw-admin", &["catalog", "list"])
        .expect("catalog list");
    assert!(
        catalog.to_string().contains(&format!("127.0.0.1:{base}")),
        "{catalog}"
    );

    let status = Command::new(&bin)
        .args(["status", "--config"])
        .arg(dir.path().join("drgw.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success()
            && text.contains("active site: primary")
            && text.contains("ID translation: off"),
        "drgw status:\n{text}"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "drgw sandbox ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "drgw sandbox exit: {exit}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", base)).is_err(),
        "the gateway still listens"
    );
}

/// Sends SIGTERM to the sandbox (which stops its simulators too) when the test fails before
/// its own stop, so that a failure leaves no process behind.
struct StopOnPanic(u32);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
}
