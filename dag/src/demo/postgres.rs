//! A private PostgreSQL for `dag demo` when no `DATABASE_URL` is given:
//! a cluster of the machine's PostgreSQL install under
//! `/var/tmp/dag-demo-postgres`, on a free loopback port, trust auth for
//! local connections only. PostgreSQL refuses to run as root, so as root
//! it runs as the `postgres` user (as `scripts/services.sh` does).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    pub url: String,
}

/// The newest PostgreSQL install's bin folder (`DAG_PG_BIN` wins).
fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Ok(b) = std::env::var("DAG_PG_BIN") {
        return Ok(PathBuf::from(b));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).context(
        "no PostgreSQL install in /usr/lib/postgresql (scripts/setup.sh installs one), and no DATABASE_URL",
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `bin/tool args`, as the postgres user when we are root.
fn pg(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut c: Command, what: &str, log: &Path) -> anyhow::Result<()> {
    let out = c
        .output()
        .with_context(|| format!("{what}: cannot start"))?;
    if !out.status.success() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        bail!(
            "{what} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

impl PrivatePostgres {
    /// Starts the cluster (creating it the first time), or reuses it when a
    /// previous `dag demo --keep` left it running.
    pub fn start() -> anyhow::Result<PrivatePostgres> {
        let bin = pg_bin()?;
        let dir = PathBuf::from("/var/tmp/dag-demo-postgres");
        let data = dir.join("data");
        let log = dir.join("log");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(&dir);
                    c
                },
                "chown to postgres",
                &log,
            )?;
        }
        if !data.join("PG_VERSION").exists() {
            let mut c = pg(&bin, "initdb");
            c.arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            run(c, "initdb", &log)?;
        }
        let port_file = dir.join("port");
        let mut status = pg(&bin, "pg_ctl");
        status.arg("-D").arg(&data).arg("status");
        let running = status.output().map(|o| o.status.success()).unwrap_or(false);
        let port: u16 = match std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            Some(p) if running => p,
            _ => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                let mut c = pg(&bin, "pg_ctl");
                c.arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!(
                        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                        dir.display()
                    ))
                    .arg("start");
                run(c, "pg_ctl start", &log)?;
                std::fs::write(&port_file, port.to_string())?;
                port
            }
        };
        Ok(PrivatePostgres {
            url: format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
        })
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        let mut c = pg(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run(c, "pg_ctl stop", &self.dir.join("log"))
    }
}
