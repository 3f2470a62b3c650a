//! One sink's delivery queue: a bounded buffer in memory that spills to a
//! spool directory, delivered strictly in order.
//!
//! Why a spool: a receiver (the SOC's webhook, falcosidekick, the API
//! server) can be down for minutes; alerts raised meanwhile must arrive when
//! it comes back, in order, and survive a restart of the sidecar (the spool
//! lives in the pod's emptyDir, which outlives the container).
//!
//! Layout: every item gets a sequence number; the spool holds segment files
//! named by the sequence number of their first item (`<seq>.jsonl`, one item
//! per line), so the file names sort in delivery order.
//!
//! Order argument: items in memory are always older than every spooled
//! item, because once anything is spooled (or the sink is down, or memory is
//! full) new items go to the spool's tail until it has drained. The consumer
//! takes a batch from memory first, then the oldest segment. When a delivery
//! fails, the consumer writes its batch and the memory buffer to segments
//! named by their own (smaller) sequence numbers, so everything pending is on
//! disk during an outage and the names still sort in order.
//!
//! Delivery is at least once: a crash after delivering part of a spooled
//! batch delivers that part again. Loss happens only when the memory buffer
//! is full and the spool is full (or absent, or failing); it is counted and
//! logged by the caller, never silent.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Items per spool segment before a new one starts.
const SEGMENT_ITEMS: u64 = 256;
/// Items taken from memory per batch.
const BATCH: usize = 64;

/// One message for one sink, rendered in the sink's format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub seq: u64,
    /// The event category (for metrics).
    pub category: String,
    /// How many events the message stands for.
    pub events: u64,
    /// The HTTP body.
    pub body: serde_json::Value,
}

/// What `push` did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Memory,
    Spool,
    /// Memory full and the spool full, absent or failing: the item is lost.
    Dropped,
}

/// Items the consumer is delivering.
#[derive(Debug)]
pub struct Batch {
    pub items: Vec<Item>,
    /// The segment holding them, deleted once all are delivered.
    file: Option<(PathBuf, u64)>,
}

struct Segment {
    path: PathBuf,
    items: u64,
    bytes: u64,
}

struct State {
    next_seq: u64,
    mem: VecDeque<Item>,
    /// Segments not taken by the consumer, by first sequence number.
    files: BTreeMap<u64, Segment>,
    /// The segment being appended to (its key in `files`) and its handle.
    tail: Option<(u64, File)>,
    spool_bytes: u64,
    /// The consumer's last delivery failed: everything goes to disk.
    down: bool,
}

pub struct Queue {
    dir: Option<PathBuf>,
    mem_cap: usize,
    spool_max: u64,
    state: Mutex<State>,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.jsonl")
}

impl Queue {
    /// Opens a queue; with a spool directory, items left there by a previous
    /// run are delivered first.
    pub fn open(dir: Option<PathBuf>, mem_cap: usize, spool_max: u64) -> io::Result<Queue> {
        let mut files = BTreeMap::new();
        let mut next_seq = 1;
        let mut spool_bytes = 0;
        if let Some(d) = &dir {
            fs::create_dir_all(d)?;
            for entry in fs::read_dir(d)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(first) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let path = entry.path();
                let bytes = entry.metadata()?.len();
                let items = BufReader::new(File::open(&path)?).lines().count() as u64;
                next_seq = next_seq.max(first + items);
                spool_bytes += bytes;
                files.insert(first, Segment { path, items, bytes });
            }
        }
        let q = Queue {
            dir,
            mem_cap: mem_cap.max(1),
            spool_max,
            state: Mutex::new(State {
                next_seq,
                mem: VecDeque::new(),
                files,
                tail: None,
                spool_bytes,
                down: false,
            }),
        };
        Ok(q)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one message.
    pub fn push(&self, category: &str, events: u64, body: serde_json::Value) -> Pushed {
        let mut st = self.lock();
        let item = Item {
            seq: st.next_seq,
            category: category.to_string(),
            events,
            body,
        };
        st.next_seq += 1;
        let to_spool = st.down || !st.files.is_empty() || st.mem.len() >= self.mem_cap;
        if to_spool && self.dir.is_some() {
            match self.append(&mut st, &item) {
                Ok(()) => return Pushed::Spool,
                Err(e) => eprintln!("nfguard: spool {}: {e}", self.dir_display()),
            }
        }
        // Memory holds only items older than every spooled one.
        if st.files.is_empty() && st.mem.len() < self.mem_cap {
            st.mem.push_back(item);
            Pushed::Memory
        } else {
            Pushed::Dropped
        }
    }

    fn dir_display(&self) -> String {
        self.dir
            .as_deref()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    }

    fn append(&self, st: &mut State, item: &Item) -> io::Result<()> {
        let dir = self
            .dir
            .as_deref()
            .ok_or_else(|| io::Error::other("no spool"))?;
        let mut line = serde_json::to_vec(item).map_err(io::Error::other)?;
        line.push(b'\n');
        if st.spool_bytes + line.len() as u64 > self.spool_max {
            return Err(io::Error::other(format!("full ({} bytes)", self.spool_max)));
        }
        let rotate = match &st.tail {
            Some((first, _)) => st.files.get(first).is_none_or(|s| s.items >= SEGMENT_ITEMS),
            None => true,
        };
        if rotate {
            let path = dir.join(segment_name(item.seq));
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            st.files.insert(
                item.seq,
                Segment {
                    path,
                    items: 0,
                    bytes: 0,
                },
            );
            st.tail = Some((item.seq, f));
        }
        let Some((first, f)) = st.tail.as_mut() else {
            return Err(io::Error::other("no spool segment"));
        };
        let first = *first;
        f.write_all(&line)?;
        if let Some(seg) = st.files.get_mut(&first) {
            seg.items += 1;
            seg.bytes += line.len() as u64;
        }
        st.spool_bytes += line.len() as u64;
        Ok(())
    }

    /// The next batch to deliver, oldest first; `None` when there is nothing.
    pub fn take(&self) -> Option<Batch> {
        let mut st = self.lock();
        if !st.mem.is_empty() {
            let n = st.mem.len().min(BATCH);
            let items = st.mem.drain(..n).collect();
            return Some(Batch { items, file: None });
        }
        let (&first, _) = st.files.iter().next()?;
        let seg = st.files.remove(&first)?;
        if st.tail.as_ref().is_some_and(|(t, _)| *t == first) {
            st.tail = None;
        }
        drop(st);
        let mut items = Vec::new();
        let mut bad = 0;
        match File::open(&seg.path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    match line
                        .ok()
                        .and_then(|l| serde_json::from_str::<Item>(&l).ok())
                    {
                        Some(item) => items.push(item),
                        None => bad += 1,
                    }
                }
            }
            Err(e) => eprintln!("nfguard: spool segment {}: {e}", seg.path.display()),
        }
        if bad > 0 {
            eprintln!(
                "nfguard: spool segment {}: {bad} unreadable line(s) skipped (lost)",
                seg.path.display()
            );
        }
        Some(Batch {
            items,
            file: Some((seg.path, seg.bytes)),
        })
    }

    /// A delivery failed at `batch.items[from]`: put everything pending on
    /// disk (the rest of the batch, then memory) and send new items there too.
    pub fn spill(&self, batch: &mut Batch, from: usize) {
        let mut st = self.lock();
        st.down = true;
        let Some(dir) = self.dir.clone() else {
            return;
        };
        if batch.file.is_none() && from < batch.items.len() {
            match write_segment(&dir, &batch.items[from..]) {
                Ok((path, bytes)) => {
                    st.spool_bytes += bytes;
                    batch.file = Some((path, bytes));
                }
                Err(e) => eprintln!("nfguard: spool {}: {e}", dir.display()),
            }
        }
        if !st.mem.is_empty() {
            let items: Vec<Item> = st.mem.iter().cloned().collect();
            match write_segment(&dir, &items) {
                Ok((path, bytes)) => {
                    st.spool_bytes += bytes;
                    st.files.insert(
                        items[0].seq,
                        Segment {
                            path,
                            items: items.len() as u64,
                            bytes,
                        },
                    );
                    st.mem.clear();
                }
                Err(e) => eprintln!("nfguard: spool {}: {e}", dir.display()),
            }
        }
    }

    /// The sink answered again.
    pub fn up(&self) {
        self.lock().down = false;
    }

    /// Every item of `batch` was delivered (or rejected): forget it.
    pub fn done(&self, batch: Batch) {
        if let Some((path, bytes)) = batch.file {
            if let Err(e) = fs::remove_file(&path) {
                eprintln!("nfguard: spool segment {}: {e}", path.display());
            }
            let mut st = self.lock();
            st.spool_bytes = st.spool_bytes.saturating_sub(bytes);
        }
    }

    /// (items in memory, items in the spool, bytes in the spool)
    pub fn depth(&self) -> (usize, u64, u64) {
        let st = self.lock();
        (
            st.mem.len(),
            st.files.values().map(|s| s.items).sum(),
            st.spool_bytes,
        )
    }

    pub fn spool_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

/// Writes items to a new segment named by the first one's sequence number.
fn write_segment(dir: &Path, items: &[Item]) -> io::Result<(PathBuf, u64)> {
    let first = items
        .first()
        .map(|i| i.seq)
        .ok_or_else(|| io::Error::other("empty segment"))?;
    let path = dir.join(segment_name(first));
    let tmp = dir.join(format!(".{}.tmp", segment_name(first)));
    let mut buf = Vec::new();
    for item in items {
        serde_json::to_writer(&mut buf, item).map_err(io::Error::other)?;
        buf.push(b'\n');
    }
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_data()?;
    }
    // Rename: a crash never leaves half a segment under a real name.
    fs::rename(&tmp, &path)?;
    Ok((path, buf.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drain(q: &Queue) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(b) = q.take() {
            out.extend(b.items.iter().map(|i| i.body["n"].as_u64().unwrap_or(0)));
            q.done(b);
        }
        out
    }

    #[test]
    fn items_beyond_memory_go_to_the_spool_and_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(Some(dir.path().into()), 4, 1 << 20).unwrap();
        for n in 0..1000 {
            assert_ne!(q.push("process", 1, json!({ "n": n })), Pushed::Dropped);
        }
        assert_eq!(q.depth().0, 4);
        assert_eq!(q.depth().1, 996);
        assert_eq!(drain(&q), (0..1000).collect::<Vec<_>>());
        assert_eq!(q.depth(), (0, 0, 0));
    }

    #[test]
    fn a_failed_delivery_puts_everything_on_disk_and_a_restart_delivers_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(Some(dir.path().into()), 100, 1 << 20).unwrap();
            for n in 0..10 {
                q.push("process", 1, json!({ "n": n }));
            }
            let mut b = q.take().unwrap();
            assert_eq!(b.items.len(), 10);
            q.spill(&mut b, 3); // 0..3 delivered, 3 failed
            for n in 10..20 {
                assert_eq!(q.push("process", 1, json!({ "n": n })), Pushed::Spool);
            }
            // The sidecar dies here, batch in hand.
        }
        let q = Queue::open(Some(dir.path().into()), 100, 1 << 20).unwrap();
        assert_eq!(drain(&q), (3..20).collect::<Vec<_>>());
        assert_eq!(q.push("process", 1, json!({ "n": 20 })), Pushed::Memory);
        let b = q.take().unwrap();
        assert_eq!(b.items[0].seq, 21, "sequence numbers go on after a restart");
    }

    #[test]
    fn with_memory_and_spool_full_the_loss_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(Some(dir.path().into()), 2, 200).unwrap();
        let pushed: Vec<Pushed> = (0..10)
            .map(|n| q.push("process", 1, json!({ "n": n })))
            .collect();
        assert_eq!(pushed[..2], [Pushed::Memory, Pushed::Memory]);
        assert!(pushed.contains(&Pushed::Spool));
        assert_eq!(pushed.last(), Some(&Pushed::Dropped));
        let q2 = Queue::open(None, 2, 0).unwrap();
        assert_eq!(q2.push("p", 1, json!({})), Pushed::Memory);
        q2.push("p", 1, json!({}));
        assert_eq!(q2.push("p", 1, json!({})), Pushed::Dropped);
    }
}
