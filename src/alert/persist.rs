//! Alert state across restarts: `alerts.json` next to the history snapshot.
//!
//! Firing alerts come back firing and already notified, so a restart neither re-fires
//! them nor forgets to send their resolve; silences and 24 h of resolved alerts come
//! back too. Traffic memory is deliberately not kept: after a restart a `qps` rule
//! waits to see healthy traffic again, rather than calling every model dead before the
//! first batch arrives (a firing `qps` alert keeps what it fired on: see
//! `AlertState::restore`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::baseline::Baseline;
use super::engine::{Alert, AlertState, Silence};

/// The file, in the snapshot directory.
pub const FILE: &str = "alerts.json";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AlertsFileError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not an alerts file this version reads: {source}", path.display())]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub v: u32,
    #[serde(rename = "saved_ms")]
    pub at_ms: i64,
    pub active: Vec<Alert>,
    pub history: Vec<Alert>,
    pub silences: Vec<Silence>,
    /// The normals of the models in an incident (a relative alert that fired): after a
    /// restart in a long one, what is left of the learning window is too short to learn
    /// a normal from, and without the one before it the incident would resolve and then
    /// be learnt as normal. Absent from files of earlier versions.
    #[serde(default)]
    pub baselines: BTreeMap<String, Baseline>,
}

impl Saved {
    /// What `state` saves at `at_ms`.
    pub fn of(state: &AlertState, at_ms: i64) -> Self {
        let (active, history, silences) = state.parts();
        Self {
            v: VERSION,
            at_ms,
            baselines: state.incident_baselines(),
            active,
            history,
            silences,
        }
    }
}

/// Writes the state to `dir/alerts.json`, atomically (a reader never sees half a file).
pub fn save(state: &AlertState, dir: &Path, now_ms: i64) -> Result<(), AlertsFileError> {
    let saved = Saved::of(state, now_ms);
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let write = |p: &Path| {
        // Serialising plain structs of strings and numbers cannot fail.
        let body = serde_json::to_vec(&saved).unwrap_or_default();
        std::fs::write(p, body)
    };
    write(&tmp)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| AlertsFileError::Write { path, source })
}

/// Reads `dir/alerts.json`; `None` when there is none.
pub fn load(dir: &Path) -> Result<Option<Saved>, AlertsFileError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AlertsFileError::Read { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| AlertsFileError::Decode { path, source })
}
