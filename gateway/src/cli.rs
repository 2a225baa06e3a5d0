//! The `drgw` command line: `serve`, `check-config`, `status`, `sandbox`.
//!
//! Subcommands that talk to a running gateway (`status`) read the same `drgw.toml` to find
//! the admin listener and its bearer token file.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use http_body_util::BodyExt;

use crate::config::Config;
use crate::server::BoundGateway;

/// drgw: a disaster-recovery gateway for OpenStack.
#[derive(Debug, Parser)]
#[command(name = "drgw", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
        /// Worker threads (default: `gateway.workers`; 0 there = one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Validate a configuration file and print every error with its key.
    CheckConfig { path: PathBuf },
    /// Show sites, the active site, upstream health and the gateway's version.
    Status {
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check or explain DR policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The mirror journal of a running gateway.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Switch every service to a site (planned: freeze writes, drain, flip; forced: flip
    /// now and report what was not applied).
    Failover {
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
        #[arg(long, default_value = "recovery")]
        to: String,
        #[arg(long, conflicts_with = "force")]
        planned: bool,
        #[arg(long)]
        force: bool,
        /// Seconds a planned switch may wait for the journal to drain.
        #[arg(long, default_value_t = 60)]
        drain_timeout: u64,
    },
    /// Switch back to the primary site.
    Failback {
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
        #[arg(long, conflicts_with = "force")]
        planned: bool,
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = 60)]
        drain_timeout: u64,
    },
    /// Check that every protected resource's mirror exists at the recovery site.
    Drill {
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Start two simulated sites and the gateway in front of them, on 127.0.0.1.
    Sandbox {
        /// Where drgw.toml, clouds.yaml and the state go.
        #[arg(long, default_value = "./drgw-sandbox")]
        dir: PathBuf,
        /// First port of the gateway's listeners (identity, compute, image, volume,
        /// network, then admin at +9); the simulated sites use +100 and +200.
        #[arg(long, default_value_t = 19000)]
        base_port: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and print every error with its key.
    Check { file: PathBuf },
    /// Print the rule that matches a project and the decision for an operation.
    Explain {
        /// drgw.toml (its `gateway.policy_file` is read) or a policy file.
        #[arg(long)]
        config: PathBuf,
        /// Project name or id (`Domain/project` also works).
        #[arg(long)]
        project: String,
        /// e.g. `compute:create_server`.
        #[arg(long)]
        operation: String,
        /// The tier the tenant asks for, if any.
        #[arg(long)]
        tier: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// List journal records (newest state), paged by sequence number.
    List {
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
        /// pending, applied or failed.
        #[arg(long)]
        state: Option<String>,
        /// Project id.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a failed record back to pending.
    Retry {
        seq: u64,
        #[arg(long, default_value = "/etc/drgw/drgw.toml")]
        config: PathBuf,
    },
}

/// Runs a subcommand; the process exit code is the result.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve { config, workers } => {
            let mut cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{}: invalid configuration:\n{errors}", config.display());
                    return Ok(2);
                }
            };
            if let Some(n) = workers {
                cfg.workers = n;
            }
            let bound = BoundGateway::bind(cfg).await?;
            for addr in bound.local_addrs() {
                tracing::info!(%addr, "listening");
            }
            if let Some(addr) = bound.admin_addr() {
                tracing::info!(%addr, "admin listening");
            }
            bound.serve(shutdown_signal()).await;
            Ok(0)
        }
        Command::CheckConfig { path } => match Config::load(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                Ok(0)
            }
            Err(errors) => {
                println!("{}: {} error(s)", path.display(), errors.0.len());
                for e in errors.0 {
                    println!("  {e}");
                }
                Ok(1)
            }
        },
        Command::Status { config, json } => status(&config, json).await,
        Command::Sandbox { dir, base_port } => crate::sandbox::run(&dir, base_port).await,
        Command::Policy { command } => {
            let (code, text) = match command {
                PolicyCommand::Check { file } => crate::policy::cli::check_file(&file),
                PolicyCommand::Explain {
                    config,
                    project,
                    operation,
                    tier,
                } => crate::policy::cli::explain(&config, &project, &operation, tier.as_deref()),
            };
            println!("{text}");
            Ok(code)
        }
        Command::Journal { command } => journal(command).await,
        Command::Failover {
            config,
            to,
            force,
            drain_timeout,
            ..
        } => {
            let body = serde_json::json!({
                "to": to,
                "mode": if force { "forced" } else { "planned" },
                "drain_timeout_s": drain_timeout,
            });
            switch(&config, "/v1/failover", body).await
        }
        Command::Failback {
            config,
            force,
            drain_timeout,
            ..
        } => {
            let body = serde_json::json!({
                "mode": if force { "forced" } else { "planned" },
                "drain_timeout_s": drain_timeout,
            });
            switch(&config, "/v1/failback", body).await
        }
        Command::Drill { config, json } => {
            let (code, value) = admin_call(&config, http::Method::POST, "/v1/drill", None).await?;
            if !code.is_success() {
                eprintln!("admin API answered {code}: {value}");
                return Ok(1);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{}", value["table"].as_str().unwrap_or(&value.to_string()));
            }
            Ok(if value["clean"].as_bool().unwrap_or(false) {
                0
            } else {
                1
            })
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Calls the admin API of the gateway that `config` describes (GET).
pub async fn admin_get(
    config: &Path,
    path: &str,
) -> anyhow::Result<(http::StatusCode, serde_json::Value)> {
    admin_call(config, http::Method::GET, path, None).await
}

/// Calls the admin API of the gateway that `config` describes.
pub async fn admin_call(
    config: &Path,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(http::StatusCode, serde_json::Value)> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let token = std::fs::read_to_string(&cfg.admin.token_file)
        .map_err(|e| anyhow::anyhow!("admin token file {}: {e}", cfg.admin.token_file.display()))?;
    let client: hyper_util::client::legacy::Client<_, crate::body::ProxyBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", cfg.admin.listen))
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(match body {
            Some(v) => crate::body::full(v.to_string()),
            None => crate::body::empty(),
        })?;
    let resp = client.request(req).await.map_err(|e| {
        anyhow::anyhow!(
            "admin listener {}: {}",
            cfg.admin.listen,
            crate::upstream::error_chain(&e)
        )
    })?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, value))
}

async fn status(config: &Path, json: bool) -> anyhow::Result<i32> {
    let (code, value) = admin_get(config, "/v1/status").await?;
    if !code.is_success() {
        eprintln!("admin API answered {code}: {value}");
        return Ok(1);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!("drgw {}", value["version"].as_str().unwrap_or("?"));
    println!(
        "active site: {}",
        value["active_site"].as_str().unwrap_or("?")
    );
    match value["id_translation"].as_bool() {
        Some(true) => println!(
            "ID translation: on (since a first failover; every request takes the general path)"
        ),
        Some(false) => println!("ID translation: off"),
        None => {}
    }
    println!("{:<10} {:<10} {:<5} URL", "SITE", "SERVICE", "UP");
    if let Some(sites) = value["sites"].as_object() {
        for (site, s) in sites {
            if let Some(services) = s["services"].as_object() {
                for (service, v) in services {
                    println!(
                        "{:<10} {:<10} {:<5} {}",
                        site,
                        service,
                        if v["up"].as_bool().unwrap_or(false) {
                            "yes"
                        } else {
                            "NO"
                        },
                        v["url"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    if let Some(tiers) = value["tiers"].as_array() {
        println!();
        println!(
            "{:<8} {:<9} {:>8} {:>16}  LAST CHECKPOINT",
            "TIER", "MODE", "PENDING", "OLDEST PENDING"
        );
        for t in tiers {
            let age = t["oldest_pending_age_seconds"]
                .as_f64()
                .map(|a| format!("{a:.1} s"))
                .unwrap_or_else(|| "-".into());
            let checkpoint = match &t["last_checkpoint"] {
                serde_json::Value::Null => "-".to_string(),
                c => format!("#{} at seq {}", c["id"], c["last_seq"]),
            };
            println!(
                "{:<8} {:<9} {:>8} {:>16}  {}",
                t["tier"].as_str().unwrap_or(""),
                t["mode"].as_str().unwrap_or(""),
                t["pending"],
                age,
                checkpoint
            );
        }
    }
    Ok(0)
}

async fn journal(command: JournalCommand) -> anyhow::Result<i32> {
    match command {
        JournalCommand::List {
            config,
            state,
            tenant,
            tier,
            limit,
            json,
        } => {
            let mut query = format!("limit={limit}");
            for (key, value) in [("state", state), ("tenant", tenant), ("tier", tier)] {
                if let Some(v) = value {
                    query.push_str(&format!("&{key}={v}"));
                }
            }
            let (code, value) = admin_get(&config, &format!("/v1/journal?{query}")).await?;
            if !code.is_success() {
                eprintln!("admin API answered {code}: {value}");
                return Ok(1);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(0);
            }
            println!(
                "{:>8} {:<8} {:<10} {:<24} {:<8} {:<36} STATE",
                "SEQ", "TIER", "SERVICE", "RESOURCE", "ACTION", "PRIMARY ID"
            );
            for r in value["records"].as_array().into_iter().flatten() {
                let state = match r["state"]["state"].as_str().or_else(|| r["state"].as_str()) {
                    Some(s) => s.to_string(),
                    None => r["state"].to_string(),
                };
                println!(
                    "{:>8} {:<8} {:<10} {:<24} {:<8} {:<36} {}",
                    r["seq"],
                    r["tier"].as_str().unwrap_or(""),
                    r["service"].as_str().unwrap_or(""),
                    r["resource_type"].as_str().unwrap_or(""),
                    r["action"].as_str().unwrap_or(""),
                    r["primary_id"].as_str().unwrap_or("-"),
                    state
                );
            }
            Ok(0)
        }
        JournalCommand::Retry { seq, config } => {
            let (code, value) = admin_call(
                &config,
                http::Method::POST,
                &format!("/v1/journal/{seq}/retry"),
                None,
            )
            .await?;
            if code.is_success() {
                println!("record {seq} is pending again");
                Ok(0)
            } else {
                eprintln!("admin API answered {code}: {value}");
                Ok(1)
            }
        }
    }
}

async fn switch(config: &Path, path: &str, body: serde_json::Value) -> anyhow::Result<i32> {
    let (code, value) = admin_call(config, http::Method::POST, path, Some(body)).await?;
    if code.is_success() {
        println!("{}", value["text"].as_str().unwrap_or(&value.to_string()));
        Ok(0)
    } else {
        eprintln!("{}", value["error"].as_str().unwrap_or(&value.to_string()));
        Ok(1)
    }
}
