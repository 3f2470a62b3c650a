//! A large model for the memory benchmark, built with the sidecar's own types
//! so it is in exactly the format `nfguard` loads: one entry in ten is a
//! process, two a TCP peer, seven a written file, spread over 50 executables.

use std::path::Path;

use nfguard_sidecar::model::{FileEntry, Model, ModelError, PeerEntry, ProcessEntry};

/// Writes a model of exactly `entries` distinct entries to `path`.
pub fn write(path: &Path, entries: usize) -> Result<(), ModelError> {
    let mut m = Model::default();
    for i in 0..entries {
        let exe = format!("/usr/bin/nf-{}", i % 50);
        match i % 10 {
            0 => {
                m.processes.insert(ProcessEntry {
                    exe: format!("/usr/lib/nf/helper-{i}"),
                    parent: exe,
                });
            }
            1 | 2 => {
                m.network.connect.insert(PeerEntry {
                    exe,
                    protocol: "tcp".into(),
                    address: format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
                    port: 8000 + (i % 1000) as u16,
                });
            }
            _ => {
                m.filesystem.insert(FileEntry {
                    exe,
                    op: "write".into(),
                    path: format!("/var/lib/nf/data-{}/file-{i}.db", i % 97),
                });
            }
        }
    }
    m.save(path)
}
