//! Task names (`comm`): records carry none (16 bytes of every record saved). The programs skip
//! `bpf_get_current_comm()` on every event; instead the kernel announces a name when a task is
//! forked (the child's) or renamed (exec, `prctl(PR_SET_NAME)`, `/proc/PID/comm`), in the same
//! ring and so in order with the events, and the tasks that exist when the session starts are
//! read from `/proc` once the announcing programs are attached ([`Names::scan`]). On a kernel
//! whose fork or rename tracepoint lacks the fields, the programs read the name per event and
//! announce it before a task's record whenever it is not the task and name their cpu announced
//! last (`Settings::comm_in_records`).
//!
//! What this cannot name exactly: a task renamed between the programs' attach and the scan
//! has its new name on the events it had before; a task that is in none of these (the
//! announcement was lost with a full ring) is read from `/proc` when its first event arrives,
//! and if it is gone by then it has no name (shown empty, never guessed).

use std::path::PathBuf;

use hashlink::LruCache;

use crate::event::Comm;

/// Tasks remembered; the least recently named go first (they are named from /proc again if
/// they come back).
const CAPACITY: usize = 65_536;

pub struct Names {
    cache: LruCache<u32, Comm>,
    proc: PathBuf,
}

impl Default for Names {
    fn default() -> Self {
        Names::with_proc("/proc")
    }
}

impl Names {
    /// Reading `/proc` at `proc` (a test passes a directory of its own).
    pub fn with_proc(proc: impl Into<PathBuf>) -> Names {
        Names {
            cache: LruCache::new(CAPACITY),
            proc: proc.into(),
        }
    }

    /// Names every task that exists now, from `/proc/PID/task/TID/comm`.
    pub fn scan(&mut self) {
        let Ok(procs) = std::fs::read_dir(&self.proc) else {
            return;
        };
        for p in procs.flatten() {
            let Some(tgid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
                continue;
            };
            for t in tasks.flatten() {
                if let Some(pid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                    if let Some(comm) = self.read(tgid, pid) {
                        self.cache.insert(pid, comm);
                    }
                }
            }
        }
    }

    fn read(&self, tgid: u32, pid: u32) -> Option<Comm> {
        let read = |path: PathBuf| std::fs::read(path).ok();
        read(self.proc.join(format!("{tgid}/task/{pid}/comm")))
            .or_else(|| read(self.proc.join(format!("{pid}/comm"))))
            .map(|b| {
                let s = String::from_utf8_lossy(&b);
                Comm::new(s.strip_suffix('\n').unwrap_or(&s))
            })
    }

    /// Task `pid` is called `comm` from now on.
    pub fn set(&mut self, pid: u32, comm: Comm) {
        self.cache.insert(pid, comm);
    }

    /// The name of thread `pid` of process `tgid`.
    pub fn name(&mut self, tgid: u32, pid: u32) -> Comm {
        if let Some(c) = self.cache.get(&pid) {
            return *c;
        }
        let comm = self
            .read(tgid, pid)
            // Gone before anything named it: unknown, and remembered as such so that its
            // remaining events cost no more reads.
            .unwrap_or_default();
        self.cache.insert(pid, comm);
        comm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_names_win_then_proc_then_nothing() {
        let dir = std::env::temp_dir().join(format!("hmmtrace-names-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("10/task/11")).unwrap();
        std::fs::create_dir_all(dir.join("12")).unwrap();
        std::fs::write(dir.join("10/task/11/comm"), "worker\n").unwrap();
        std::fs::write(dir.join("12/comm"), "main\n").unwrap();
        let mut n = Names::with_proc(&dir);
        n.set(5, Comm::new("hmm-tests"));
        assert_eq!(n.name(5, 5), Comm::new("hmm-tests"));
        // The thread's own name, not its process's.
        assert_eq!(n.name(10, 11), Comm::new("worker"));
        assert_eq!(n.name(99, 12), Comm::new("main"));
        assert_eq!(n.name(7, 7), Comm::default());
        // A rename announced later wins over what /proc said.
        n.set(11, Comm::new("renamed"));
        assert_eq!(n.name(10, 11), Comm::new("renamed"));
        // A scan names what exists, threads by their own names.
        let mut n = Names::with_proc(&dir);
        n.scan();
        std::fs::remove_dir_all(dir.join("10")).unwrap();
        assert_eq!(n.name(10, 11), Comm::new("worker"), "named before it went");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
