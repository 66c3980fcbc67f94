//! The single writer: appends lines to `DIR/llm-cost-YYYY-MM-DD.ndjson` and fsyncs them.
//!
//! Every request hands its lines to one writer thread and waits for the answer, so lines of
//! different requests never interleave and each request's lines stay together. The writer commits
//! in groups: it takes every request waiting, appends each one's lines, then `fsync`s each file
//! touched once (and the directory when a file was created) before answering them all. A request
//! whose append fails is cut back out of the file (no partial line stays behind) and answered with
//! an error; a failed `fsync` fails every request that touched that file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::day::Day;

/// Most requests committed together.
const GROUP: usize = 64;
/// Requests waiting for the writer before senders block.
const QUEUE: usize = 256;

/// The name of a day's file.
pub fn file_name(day: Day) -> String {
    format!("llm-cost-{}.ndjson", day.as_str())
}

/// One request's lines and where to send the outcome.
struct Job {
    parts: Vec<(Day, Vec<u8>)>,
    done: Sender<Result<(), String>>,
}

/// The writer thread.
pub struct Store {
    tx: SyncSender<Job>,
    thread: JoinHandle<()>,
}

/// A sender to the writer, one per connection.
#[derive(Clone)]
pub struct StoreHandle {
    tx: SyncSender<Job>,
}

impl Store {
    /// Starts the writer for `dir` (which must exist).
    pub fn start(dir: &Path) -> Result<Store, String> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("collect-writer".into())
            .spawn(move || writer(&dir, &rx))
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        Ok(Store { tx, thread })
    }

    pub fn handle(&self) -> StoreHandle {
        StoreHandle {
            tx: self.tx.clone(),
        }
    }

    /// Waits until every request handed over is written (all handles must be gone).
    pub fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

impl StoreHandle {
    /// Appends `parts` and returns once they are on disk (written and fsynced).
    pub fn append(&self, parts: Vec<(Day, Vec<u8>)>) -> Result<(), String> {
        if parts.is_empty() {
            return Ok(());
        }
        let (done, outcome) = mpsc::channel();
        self.tx
            .send(Job { parts, done })
            .map_err(|_| "writer stopped".to_owned())?;
        outcome
            .recv()
            .unwrap_or_else(|_| Err("writer stopped".to_owned()))
    }
}

fn writer(dir: &Path, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit(dir, group);
    }
}

/// Appends and syncs a group of requests, then answers each.
fn commit(dir: &Path, group: Vec<Job>) {
    let mut files: BTreeMap<Day, File> = BTreeMap::new();
    let mut created = false;
    let mut outcomes: Vec<Result<(), String>> = Vec::with_capacity(group.len());
    for job in &group {
        outcomes.push(append_job(dir, job, &mut files, &mut created));
    }
    let mut unsynced: BTreeSet<Day> = BTreeSet::new();
    let mut sync_error = String::new();
    for (day, file) in &files {
        if let Err(e) = file.sync_data() {
            unsynced.insert(*day);
            sync_error = format!("cannot fsync {}: {e}", file_name(*day));
        }
    }
    if created {
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            // The new file's name may not be durable: fail everything in this group.
            unsynced.extend(files.keys().copied());
            sync_error = format!("cannot fsync {}: {e}", dir.display());
        }
    }
    for (job, outcome) in group.into_iter().zip(outcomes) {
        let outcome = match outcome {
            Ok(()) if job.parts.iter().any(|(d, _)| unsynced.contains(d)) => {
                Err(sync_error.clone())
            }
            other => other,
        };
        if let Err(e) = &outcome {
            eprintln!("llm-cost collect: {e}");
        }
        let _ = job.done.send(outcome);
    }
}

/// Appends one request's lines; on failure truncates what it appended.
fn append_job(
    dir: &Path,
    job: &Job,
    files: &mut BTreeMap<Day, File>,
    created: &mut bool,
) -> Result<(), String> {
    let mut undo: Vec<(Day, u64)> = Vec::new();
    let mut result = Ok(());
    for (day, bytes) in &job.parts {
        let path = dir.join(file_name(*day));
        let step = (|| -> std::io::Result<()> {
            if !files.contains_key(day) {
                let (file, new) = open_day(&path)?;
                *created |= new;
                files.insert(*day, file);
            }
            let Some(file) = files.get_mut(day) else {
                return Ok(());
            };
            undo.push((*day, file.metadata()?.len()));
            file.write_all(bytes)
        })();
        if let Err(e) = step {
            result = Err(format!("cannot append to {}: {e}", path.display()));
            break;
        }
    }
    if result.is_err() {
        for (day, len) in undo.into_iter().rev() {
            if let Some(file) = files.get(&day) {
                let _ = file.set_len(len);
            }
        }
    }
    result
}

/// Opens a day's file for appending; a file whose last line was cut (a crash mid-write) gets a
/// newline first, so the next line starts on a line of its own. Returns whether it was created.
fn open_day(path: &PathBuf) -> std::io::Result<(File, bool)> {
    let new = !path.exists();
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    if file.metadata()?.len() > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok((file, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("llm-cost-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn day(s: &str) -> Day {
        Day::from_timestamp(s).unwrap()
    }

    #[test]
    fn appends_per_day_and_repairs_a_cut_last_line() {
        let dir = tmp("append");
        std::fs::write(dir.join("llm-cost-2026-01-01.ndjson"), b"{\"cut").unwrap();
        let store = Store::start(&dir).unwrap();
        let h = store.handle();
        h.append(vec![
            (day("2026-01-01"), b"{\"a\":1}\n".to_vec()),
            (day("2026-01-02"), b"{\"b\":2}\n".to_vec()),
        ])
        .unwrap();
        h.append(vec![(day("2026-01-01"), b"{\"c\":3}\n".to_vec())])
            .unwrap();
        drop(h);
        store.finish();
        let read = |d: &str| std::fs::read_to_string(dir.join(d)).unwrap();
        assert_eq!(
            read("llm-cost-2026-01-01.ndjson"),
            "{\"cut\n{\"a\":1}\n{\"c\":3}\n"
        );
        assert_eq!(read("llm-cost-2026-01-02.ndjson"), "{\"b\":2}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_append_is_reported_and_leaves_nothing() {
        let dir = tmp("fail");
        // A directory where the file should be: opening it for appending fails.
        std::fs::create_dir(dir.join("llm-cost-2026-01-02.ndjson")).unwrap();
        let store = Store::start(&dir).unwrap();
        let h = store.handle();
        let err = h.append(vec![
            (day("2026-01-01"), b"{\"a\":1}\n".to_vec()),
            (day("2026-01-02"), b"{\"b\":2}\n".to_vec()),
        ]);
        assert!(err.is_err());
        drop(h);
        store.finish();
        let first = std::fs::read(dir.join("llm-cost-2026-01-01.ndjson")).unwrap();
        assert!(
            first.is_empty(),
            "the request's first part was cut back out"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
