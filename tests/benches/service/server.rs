//! The release server as a child process: built with cargo, started with its environment,
//! watched through /proc (resident memory, peak, CPU time), stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_EMAIL: &str = "bench@example.com";
pub const ADMIN_PASSWORD: &str = "bench password that is long enough";
pub const JWT_SECRET: &str = "bench-secret-that-is-at-least-32-characters-long";

/// The workspace root (this crate is `tests/` inside it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds `chatdesk` in release mode and returns its path and how long the build took.
///
/// The `bench` profile is `release` (it inherits every setting), and building under its name,
/// with the bench target in the same build, makes every unit identical to what `cargo bench`
/// just compiled: the dev-dependencies' features resolve the same way, so nothing is built
/// twice. (`--release -p api` alone recompiled the api crate and a few dozen dependencies with
/// other features, and `--release` with the bench target still rebuilt sqlx and up, 3-5 min.)
pub fn build_release() -> Result<(PathBuf, Duration), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let started = Instant::now();
    let mut command = Command::new(cargo);
    // Cargo runs this bench with the variables it gives a crate (`CARGO_MANIFEST_DIR`,
    // `CARGO_PKG_NAME`…). Build scripts watch some of them (ring's `rerun-if-env-changed`), so
    // an inner build that inherits them sees other values than the outer `cargo bench` did and
    // rebuilds ring, rustls, sqlx and everything above them (3 minutes), and the next outer
    // build rebuilds them back.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_set_by_cargo_for_a_crate(&name) {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .current_dir(workspace())
        .args([
            "build",
            "--profile",
            "bench",
            "-p",
            "api",
            "-p",
            "tests",
            "--bin",
            "chatdesk",
            "--bench",
            "service",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !output.status.success() {
        return Err(format!("cargo build --release failed ({})", output.status));
    }
    // The artifact message names the executable, wherever the target folder is.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let executable = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "chatdesk")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or("cargo did not report the chatdesk executable")?;
    Ok((executable, started.elapsed()))
}

/// The variables cargo sets when it compiles or runs a crate's target (not the user's own
/// `CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_BUILD_*`, which the inner build must keep).
fn is_set_by_cargo_for_a_crate(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("no free port: {error}"))
}

impl Server {
    /// Starts the server on `database_url` with limits set out of the way of a benchmark (and
    /// `extra_env` besides), and waits until `/readyz` answers.
    pub async fn start(
        executable: &Path,
        database_url: &str,
        data_dir: &Path,
        name: &str,
        extra_env: &[(&str, String)],
    ) -> Result<Self, String> {
        let port = free_port()?;
        std::fs::create_dir_all(data_dir).map_err(|error| error.to_string())?;
        let log = data_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).map_err(|error| error.to_string())?;
        let log_err = log_file.try_clone().map_err(|error| error.to_string())?;
        let mut command = Command::new(executable);
        command
            .arg("serve")
            .current_dir(workspace())
            .env("DATABASE_URL", database_url)
            .env("CHATDESK_BIND", format!("127.0.0.1:{port}"))
            .env("CHATDESK_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("CHATDESK_JWT_SECRET", JWT_SECRET)
            .env("CHATDESK_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("CHATDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CHATDESK_DATA_DIR", data_dir)
            .env("CHATDESK_STORAGE", data_dir.join("uploads"))
            .env("CHATDESK_RATE_START_PER_HOUR", "100000000")
            .env("CHATDESK_RATE_SEND_PER_MIN", "100000000")
            .env("CHATDESK_RATE_LOGIN_PER_MIN", "100000000")
            .env("CHATDESK_MAX_SOCKETS_PER_ADDRESS", "100000")
            // Every bench client is 127.0.0.1: the per-address connection cap is for strangers.
            .env("CHATDESK_MAX_CONNECTIONS_PER_ADDRESS", "100000")
            .env("CHATDESK_RETENTION_DAYS", "0")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
            )
            .envs(extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        // Tuning aids for the server only: its runtime's worker threads (tokio reads
        // TOKIO_WORKER_THREADS), and another allocator (e.g. libjemalloc.so.2).
        if let Ok(workers) = std::env::var("BENCH_SERVER_WORKERS") {
            command.env("TOKIO_WORKER_THREADS", workers);
        }
        if let Ok(preload) = std::env::var("BENCH_SERVER_LD_PRELOAD") {
            command.env("LD_PRELOAD", preload);
        }
        let child = command
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", executable.display()))?;
        let pid = child.id();
        let mut server = Self {
            child,
            port,
            pid,
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        // Migrations on a 1M-row table may build an index first.
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited ({status}); see {}",
                    self.log.display()
                ));
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the server was not ready within 300 s; see {}",
            self.log.display()
        ))
    }

    fn status_field(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|line| line.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:").unwrap_or(0)
    }

    /// Peak resident memory since the last [`Server::reset_peak`], in KiB.
    pub fn peak_kib(&self) -> u64 {
        self.status_field("VmHWM:").unwrap_or(0)
    }

    /// Starts a new peak (Linux: writing 5 to clear_refs resets VmHWM to the current RSS).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }

    /// User + system CPU time used so far, in seconds.
    pub fn cpu_secs(&self) -> f64 {
        process_cpu_secs(self.pid)
    }

    /// SIGTERM, then a kill if it has not stopped within 10 s.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached when `stop` was not called (an error path): never leave it running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Raises this process's open-file limit to the hard limit; children inherit it.
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return 0;
        }
    }
    limit.rlim_cur
}

/// The Postgres backends serving `database` now, with the CPU time (user + system, in ticks)
/// each has used so far. A backend's command line reads
/// `postgres: 15/main: <user> <database> <client> <state>`.
fn backends_of(database: &str) -> Vec<(u32, f64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == "postgres");
        if !is_postgres {
            continue;
        }
        let serves_database = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
            String::from_utf8_lossy(&line)
                .split_whitespace()
                .nth(3)
                .is_some_and(|db| db == database)
        });
        if !serves_database {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) {
            found.push((pid, utime + stime));
        }
    }
    found
}

/// The CPU time Postgres spends serving one database while it runs: its backends' user +
/// system time from /proc, sampled every 50 ms so that backends which exit before the end
/// (a pool closing) still count up to their last sample. Only that database's backends: the
/// machine's Postgres also serves other work (other databases, and its shared WAL writer and
/// checkpointer), which would otherwise land in the figure.
pub struct PostgresCpu {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<f64>,
}

impl PostgresCpu {
    pub fn start(database: &str) -> Self {
        let database = database.to_owned();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            // pid → (ticks when first seen, ticks last seen)
            let mut seen: std::collections::HashMap<u32, (f64, f64)> = Default::default();
            let mut first = true;
            loop {
                let sample = tokio::task::spawn_blocking({
                    let database = database.clone();
                    move || backends_of(&database)
                })
                .await
                .unwrap_or_default();
                for (pid, ticks) in sample {
                    // A backend born during the run counts from zero.
                    let start = if first { ticks } else { 0.0 };
                    seen.entry(pid).or_insert((start, ticks)).1 = ticks;
                }
                first = false;
                if *stopped.borrow() {
                    break;
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            seen.values().map(|(start, last)| last - start).sum::<f64>() / 100.0
        });
        Self { stop, task }
    }

    /// Seconds of CPU since `start`.
    pub async fn stop(self) -> f64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0.0)
    }
}

/// A process's user + system CPU time so far, in seconds (0 when it cannot be read).
pub fn process_cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz
}
