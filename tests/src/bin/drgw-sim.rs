//! `drgw-sim`: runs one or more simulated OpenStack sites until SIGTERM/SIGINT, printing one
//! JSON line per site (name, region, endpoints, control URL) on stdout.

use clap::Parser;
use drgw_tests::sim::{Site, SiteConfig};
use std::io::Write as _;

/// Simulated OpenStack sites for the drgw sandbox and tests.
#[derive(Debug, Parser)]
#[command(name = "drgw-sim")]
struct Args {
    /// Site name (single-site mode).
    #[arg(long, default_value = "primary")]
    name: String,
    /// Keystone region (single-site mode).
    #[arg(long, default_value = "RegionOne")]
    region: String,
    /// Base port: keystone +0, nova +1, glance +2, cinder +3, neutron +4, control +9; 0 or
    /// absent = ephemeral ports.
    #[arg(long)]
    base_port: Option<u16>,
    /// Several sites in one process, `NAME:REGION:BASEPORT` (repeatable; overrides the above).
    #[arg(long = "site")]
    sites: Vec<String>,
    /// Seconds a new server stays in BUILD.
    #[arg(long, default_value_t = 1.0)]
    server_build_secs: f64,
}

fn parse_site(spec: &str) -> anyhow::Result<(String, String, Option<u16>)> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] => Ok((name.to_string(), "RegionOne".into(), None)),
        [name, region] => Ok((name.to_string(), region.to_string(), None)),
        [name, region, port] => Ok((name.to_string(), region.to_string(), Some(port.parse()?))),
        _ => anyhow::bail!("--site must be NAME:REGION:BASEPORT, got {spec}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let specs = if args.sites.is_empty() {
        vec![(args.name.clone(), args.region.clone(), args.base_port)]
    } else {
        args.sites
            .iter()
            .map(|s| parse_site(s))
            .collect::<anyhow::Result<_>>()?
    };
    let build = std::time::Duration::from_secs_f64(args.server_build_secs.max(0.0));
    let mut handles = Vec::new();
    for (name, region, base_port) in specs {
        let site = Site::start(SiteConfig {
            name,
            region,
            base_port,
            server_build_time: build,
            ..SiteConfig::default()
        })
        .await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", site.describe())?;
        out.flush()?;
        handles.push(site);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for site in handles {
        site.shutdown().await;
    }
    Ok(())
}
