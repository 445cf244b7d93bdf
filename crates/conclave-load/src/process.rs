//! Child processes the harness starts (the server, the relay) and what they cost, read from
//! `/proc`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// A child process whose stdout is read line by line.
pub(crate) struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` with piped stdin and stdout (stderr inherited).
    pub(crate) fn start(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    /// The next line the process printed.
    pub(crate) fn line(&self) -> anyhow::Result<String> {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .context("the process printed nothing for two minutes, or exited")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has cost so far.
    pub(crate) fn usage(&self) -> anyhow::Result<Usage> {
        Usage::of(self.pid())
    }

    /// Closes its stdin (the relay's signal to stop) and returns its next line.
    pub(crate) fn close_stdin(&mut self) -> anyhow::Result<String> {
        self.stdin.take();
        self.line()
    }

    /// SIGTERM, then waits for the exit.
    pub(crate) fn terminate(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and memory of a process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    /// CPU time of each of its threads, in nanoseconds (the scheduler's exact account), by
    /// thread id.
    threads: BTreeMap<u64, u64>,
    /// Resident memory, in bytes.
    pub(crate) rss_bytes: u64,
}

impl Usage {
    /// Reads `/proc/PID/task/*/schedstat` (first field: nanoseconds on CPU) and `VmRSS`.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        let mut threads = BTreeMap::new();
        let tasks = Path::new("/proc").join(pid.to_string()).join("task");
        for task in std::fs::read_dir(&tasks).with_context(|| format!("{}", tasks.display()))? {
            let task = task?;
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            // a thread may end between listing and reading
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                let ns = text
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                threads.insert(tid, ns);
            }
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Self {
            threads,
            rss_bytes: rss_kb * 1024,
        })
    }

    /// This process.
    pub(crate) fn own() -> anyhow::Result<Self> {
        Self::of(std::process::id())
    }

    /// CPU time spent since `before`, in nanoseconds: by the threads alive then and now, and
    /// by those started since. A thread that ended in between is not counted: the ones that
    /// come and go are the runtime's idle blocking threads, which end after 10 s of nothing
    /// (a sum over the living threads dropped by their whole lifetime's CPU time when one
    /// of them ended, and went negative).
    pub(crate) fn cpu_since(&self, before: &Usage) -> u64 {
        self.threads
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(before.threads.get(tid).copied().unwrap_or(0)))
            .sum()
    }
}
