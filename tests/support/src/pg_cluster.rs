//! A PostgreSQL cluster of one test's own, for tests that restart the
//! server: the shared test server (`scripts/services.sh`) serves every
//! other test at once and must never go down under them. Built from the
//! same PostgreSQL 15 binaries (`DAG_PG_BIN`, default Debian's path), in a
//! temporary folder, listening on a free loopback port.
//! [`PgCluster::crash_restart`] stops it the way a crash does (`pg_ctl
//! stop -m immediate`: no shutdown checkpoint, every client cut, crash
//! recovery at the next start) and starts it again after an outage.
//!
//! Durable as a production server is against a process crash: commits are
//! acknowledged only once their WAL reached the operating system
//! (`synchronous_commit` stays on; the shared test server turns it off for
//! speed, and then a crash loses acknowledged commits: the fault test saw
//! `dag.loaded_versions` go back from 2 to 1). `fsync` is off: the files
//! outlive the killed server in the OS cache, only a machine crash would
//! lose them.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    root: bool,
}

/// Whether we are root (PostgreSQL refuses to run as root), from `id -u`
/// (no libc dependency for one call), asked once per cluster.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program as the user `postgres` when we are root,
/// else as ourselves.
fn as_postgres(root: bool, bin: &Path, program: &str) -> Command {
    let exe = bin.join(program);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c
        .output()
        .with_context(|| format!("{what}: cannot start"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl PgCluster {
    /// Initialises and starts a new cluster.
    pub fn start() -> Result<PgCluster> {
        let bin = PathBuf::from(
            std::env::var("DAG_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        if !bin.join("postgres").exists() {
            bail!(
                "PostgreSQL 15 not found in {}: run scripts/setup.sh",
                bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        // The server runs as `postgres`: it must reach the folder and own
        // its data directory.
        run(
            {
                let mut c = Command::new("chmod");
                c.args(["0755"]).arg(dir.path());
                c
            },
            "chmod",
        )?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&data)
            .output();
        let _ = Command::new("chmod").args(["0700"]).arg(&data).output();
        let root = is_root();
        let mut initdb = as_postgres(root, &bin, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let c = PgCluster {
            dir,
            port,
            bin,
            root,
        };
        c.up()?;
        Ok(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn up(&self) -> Result<()> {
        let mut c = as_postgres(self.root, &self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.data().join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
                 -c fsync=off -c full_page_writes=off -c max_connections=100",
                self.port
            ))
            .arg("start");
        run(c, "pg_ctl start")
    }

    fn down(&self) -> Result<()> {
        let mut c = as_postgres(self.root, &self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "stop", "-m", "immediate"]);
        run(c, "pg_ctl stop")
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server as a crash would, keeps it down for `outage`, and
    /// starts it again (crash recovery runs at the start).
    pub fn crash_restart(&self, outage: Duration) -> Result<()> {
        self.down()?;
        std::thread::sleep(outage);
        self.up()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.down();
    }
}
