//! Snapshot files: the 24-hour history on disk, so a restart does not lose it.
//!
//! One file, `history.snap`, in the snapshot directory. It is replaced atomically: the
//! new content goes to a temporary file in the same directory, which is fsynced, renamed
//! over the old one, and the directory is fsynced. A crash at any instant therefore
//! leaves the old snapshot or the new one, never a torn one.
//!
//! Format (all integers little-endian):
//!
//! ```text
//! header  "MODELMON" "HIST" version:u32 payload_len:u64 crc32(payload):u32
//! payload saved_ms:i64 · ingest counters (5 varints) · (v4) stream mark · uptime spans · models
//! mark    0 (none) | 1 · stream name · offset of the first message not covered (varint)
//! model   name · ring · (v2) routes · instances · (v3) versions · measures · streams;
//!         each of those = count · (name · ring)*
//! ring    count · hours
//! hour    start_s:i64 tier:u8 has_res:u8 · N cells of 7 varints
//!         · distributions as varint length + bytes (0 = none) · if has_res: N × (cpu:f32, mem_kib:u32)
//! tier    0: model, 360 cells, 360 dists · 1: model, 360 cells, 12 dists
//!         2: route/instance, 12 cells, 12 dists · 3: route/instance, 12 cells, 1 dist
//! ```
//!
//! Versions 1 (no routes and instances), 2 (no versions, measures and streams) and 3
//! (no stream mark) are still read.
//!
//! A cell's 7 varints are how the store keeps the cells of hours past the fine tier
//! (packed, see [`ring::Cells`]): those are written by copying their bytes, and hours of
//! tier 1 and 3 are loaded packed.
//!
//! A file that fails any check is never overwritten: the writer renames it aside
//! (`history.snap.corrupt-<unix s>`) and says so on stderr. One writer per directory is
//! enforced with an exclusive lock on `lock`; a second monitor reads but never writes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs4::fs_std::FileExt;

use super::IngestTotals;
use super::history::{HistoryView, KeyKind, KeyRings, Uptime};
use super::ring::{self, Cell, Cells, Dist, Dists, Grain, HOUR_S, Hour, Res, Ring};
use super::varint::{decode_varint, write_varint};

pub const FILE_NAME: &str = "history.snap";
pub const LOCK_NAME: &str = "lock";
const MAGIC: &[u8; 12] = b"MODELMONHIST";
/// The format this build writes; it reads this one and every one before it.
pub const VERSION: u32 = 4;
const HEADER_LEN: usize = 12 + 4 + 8 + 4;

/// What a snapshot holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The format it was read in: an older monitor's file keeps its own, which says
    /// what it can hold (stream marks from 4, version and measure rings from 3).
    /// Written snapshots are always in [`VERSION`].
    pub format_version: u32,
    pub saved_ms: i64,
    pub history: Arc<HistoryView>,
    /// Counters of the run that wrote it (a restarted monitor counts from zero).
    pub ingest: IngestTotals,
    /// In stream mode, where in the stream this history ends (format 4 on).
    pub stream: Option<StreamMark>,
}

/// The stream a history was read from, and the offset of the first message it does not
/// cover: where a restarted monitor resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMark {
    pub name: String,
    pub next_offset: u64,
}

/// Why a snapshot file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a modelmon snapshot (wrong magic bytes)")]
    NotASnapshot,
    #[error(
        "format version {found} is not one this build reads (it reads versions 1 to {VERSION}); \
         it was written by a newer modelmon"
    )]
    UnknownVersion { found: u32 },
    #[error("truncated: {expected} bytes expected, {found} present")]
    Truncated { expected: u64, found: u64 },
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    #[error("malformed content ({0})")]
    Malformed(&'static str),
}

/// A failure to read or write the snapshot directory.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot use the snapshot directory {}: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot write the snapshot {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read the snapshot {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("snapshot {} is unusable: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: SnapshotError,
    },
}

/// `$XDG_STATE_HOME/modelmon`, else `~/.local/state/modelmon`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
        })?;
    Some(base.join("modelmon"))
}

// ---------------------------------------------------------------------------------
// Encoding

/// Serialises a snapshot, header and checksum included, into memory.
pub fn encode(snap: &Snapshot) -> Vec<u8> {
    let mut out = io::Cursor::new(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = write_to(&mut out, snap);
    out.into_inner()
}

/// A writer that counts and checksums what passes through it.
struct Summing<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Summing<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

/// Writes a snapshot to `w`, streaming: a day of 100 models is tens of MiB, and the
/// writer must not double the monitor's memory while it works. The header's length
/// and checksum are written last, over the zeros reserved for them.
pub fn write_to<W: Write + Seek>(w: &mut W, snap: &Snapshot) -> io::Result<u64> {
    w.write_all(&[0; HEADER_LEN])?;
    let mut sum = Summing {
        inner: io::BufWriter::with_capacity(1 << 16, &mut *w),
        crc: crc32fast::Hasher::new(),
        len: 0,
    };
    let mut p = Vec::with_capacity(1 << 16);
    p.extend_from_slice(&snap.saved_ms.to_le_bytes());
    let i = &snap.ingest;
    for v in [i.events, i.rejected, i.late, i.dropped_at_source, i.batches] {
        write_varint(&mut p, v);
    }
    match &snap.stream {
        None => write_varint(&mut p, 0),
        Some(mark) => {
            write_varint(&mut p, 1);
            put_name(&mut p, &mark.name);
            write_varint(&mut p, mark.next_offset);
        }
    }
    let spans = snap.history.uptime().spans();
    write_varint(&mut p, spans.len() as u64);
    for (a, b) in spans {
        p.extend_from_slice(&a.to_le_bytes());
        p.extend_from_slice(&b.to_le_bytes());
    }
    let h = &snap.history;
    let mut names: Vec<&str> = h.models();
    names.extend(h.keyed_models().map(|(n, _)| n));
    names.sort_unstable();
    names.dedup();
    let no_ring = Ring::default();
    let no_keys = KeyRings::default();
    write_varint(&mut p, names.len() as u64);
    for name in names {
        put_name(&mut p, name);
        write_ring(&mut sum, &mut p, h.ring(name).unwrap_or(&no_ring))?;
        let keys = h.keys(name).unwrap_or(&no_keys);
        for rings in keys.by_kind() {
            write_varint(&mut p, rings.len() as u64);
            for (key, ring) in rings {
                put_name(&mut p, key);
                write_ring(&mut sum, &mut p, ring)?;
            }
        }
    }
    sum.put(&p)?;
    let Summing {
        mut inner,
        crc,
        len,
    } = sum;
    inner.flush()?;
    let w = inner.into_inner().map_err(io::IntoInnerError::into_error)?;
    let crc = crc.finalize();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&crc.to_le_bytes());
    w.seek(SeekFrom::Start(0))?;
    w.write_all(&header)?;
    w.seek(SeekFrom::End(0))?;
    Ok(HEADER_LEN as u64 + len)
}

fn put_name(p: &mut Vec<u8>, name: &str) {
    write_varint(p, name.len() as u64);
    p.extend_from_slice(name.as_bytes());
}

/// Appends a ring to `p`, handing the bytes to the writer hour by hour.
fn write_ring<W: Write>(sum: &mut Summing<W>, p: &mut Vec<u8>, ring: &Ring) -> io::Result<()> {
    write_varint(p, ring.hours().count() as u64);
    for h in ring.hours() {
        encode_hour(p, h, ring.grain());
        sum.put(p)?;
        p.clear();
    }
    Ok(())
}

/// The tier byte of an hour: its grain and whether its distributions are per cell.
fn tier_of(grain: Grain, fine: bool) -> u8 {
    match (grain, fine) {
        (Grain::Model, true) => 0,
        (Grain::Model, false) => 1,
        (Grain::Key, true) => 2,
        (Grain::Key, false) => 3,
    }
}

fn encode_hour(p: &mut Vec<u8>, h: &Hour, grain: Grain) {
    p.extend_from_slice(&h.start_s.to_le_bytes());
    let (tier, dists) = match &h.dists {
        Dists::Fine(d) => (tier_of(grain, true), d),
        Dists::Coarse(d) => (tier_of(grain, false), d),
    };
    p.push(tier);
    p.push(u8::from(h.res.is_some()));
    // A packed hour's cells are already in this form: they are copied as they are.
    h.put_cells(p);
    for d in dists {
        match d {
            Some(d) => {
                write_varint(p, d.len() as u64);
                p.extend_from_slice(d);
            }
            None => write_varint(p, 0),
        }
    }
    if let Some(res) = &h.res {
        for r in res {
            p.extend_from_slice(&r.cpu.to_bits().to_le_bytes());
            p.extend_from_slice(&r.mem_kib.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------------
// Decoding

/// Reads the payload as a stream, checksumming what it reads: loading must not hold
/// the whole file in memory next to the history decoded from it.
struct Reader<R> {
    inner: R,
    crc: crc32fast::Hasher,
    /// Payload bytes not read yet.
    left: u64,
}

const SHORT: SnapshotError = SnapshotError::Malformed("ends inside a record");

impl<R: Read> Reader<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        if buf.len() as u64 > self.left {
            return Err(SHORT);
        }
        self.inner.read_exact(buf).map_err(|_| SHORT)?;
        self.crc.update(buf);
        self.left -= buf.len() as u64;
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, SnapshotError> {
        if n as u64 > self.left {
            return Err(SHORT);
        }
        let mut v = vec![0; n];
        self.fill(&mut v)?;
        Ok(v)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }

    fn varint(&mut self) -> Result<u64, SnapshotError> {
        decode_varint(|| self.u8())?.ok_or(SnapshotError::Malformed("bad varint"))
    }

    fn u32_varint(&mut self) -> Result<u32, SnapshotError> {
        u32::try_from(self.varint()?).map_err(|_| SnapshotError::Malformed("counter too large"))
    }

    /// A count of records, bounded by the bytes left so a damaged count cannot make us
    /// allocate gigabytes.
    fn count(&mut self) -> Result<usize, SnapshotError> {
        let n = self.varint()?;
        if n > self.left {
            return Err(SHORT);
        }
        usize::try_from(n).map_err(|_| SHORT)
    }

    /// Checksums the rest of the payload, so a damaged file is reported as damaged
    /// rather than by whichever record the damage happened to break.
    fn drain(&mut self) {
        let mut buf = vec![0; 1 << 16];
        while self.left > 0 {
            let n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            if self.fill(&mut buf[..n]).is_err() {
                return;
            }
        }
    }
}

/// Reads a snapshot from its bytes, checking header, version, length and checksum.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    decode_from(bytes, bytes.len() as u64)
}

/// Reads a snapshot of `total_len` bytes from `r`.
fn decode_from(mut r: impl Read, total_len: u64) -> Result<Snapshot, SnapshotError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(SHORT),
        }
    }
    let head = &head[..got];
    let truncated = SnapshotError::Truncated {
        expected: HEADER_LEN as u64,
        found: total_len,
    };
    if got < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        return Err(if got < MAGIC.len() && MAGIC.starts_with(head) {
            truncated
        } else {
            SnapshotError::NotASnapshot
        });
    }
    if got < HEADER_LEN {
        return Err(truncated);
    }
    let field = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let version = field(MAGIC.len()) as u32;
    if !(1..=VERSION).contains(&version) {
        return Err(SnapshotError::UnknownVersion { found: version });
    }
    let len = field(MAGIC.len() + 4);
    let crc = u32::from_le_bytes([head[24], head[25], head[26], head[27]]);
    if total_len.checked_sub(HEADER_LEN as u64) != Some(len) {
        return Err(SnapshotError::Truncated {
            expected: (HEADER_LEN as u64).saturating_add(len),
            found: total_len,
        });
    }
    let mut rd = Reader {
        inner: r,
        crc: crc32fast::Hasher::new(),
        left: len,
    };
    let decoded = decode_payload(&mut rd, version);
    let trailing = rd.left > 0;
    rd.drain();
    if rd.crc.finalize() != crc {
        return Err(SnapshotError::Checksum);
    }
    if trailing && decoded.is_ok() {
        return Err(SnapshotError::Malformed("trailing bytes"));
    }
    decoded
}

fn decode_payload(r: &mut Reader<impl Read>, version: u32) -> Result<Snapshot, SnapshotError> {
    let saved_ms = r.i64()?;
    let mut c = [0u64; 5];
    for v in &mut c {
        *v = r.varint()?;
    }
    let ingest = IngestTotals {
        events: c[0],
        rejected: c[1],
        late: c[2],
        dropped_at_source: c[3],
        batches: c[4],
    };
    let stream = if version >= 4 {
        match r.varint()? {
            0 => None,
            1 => Some(StreamMark {
                name: read_name(r)?,
                next_offset: r.varint()?,
            }),
            _ => return Err(SnapshotError::Malformed("bad stream mark")),
        }
    } else {
        None
    };
    let n = r.count()?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        spans.push((r.i64()?, r.i64()?));
    }
    let n = r.count()?;
    let mut models = BTreeMap::new();
    let mut keyed = BTreeMap::new();
    let mut merger = ring::Merger::default();
    for _ in 0..n {
        let name = read_name(r)?;
        let ring = read_ring(r, Grain::Model, &mut merger)?;
        if version >= 2 {
            let mut keys = KeyRings::default();
            // Version 2 saved routes and instances only.
            let families = if version >= 3 { KeyKind::ALL.len() } else { 2 };
            for rings in keys.by_kind_mut().into_iter().take(families) {
                for _ in 0..r.count()? {
                    let key = read_name(r)?;
                    rings.insert(key, read_ring(r, Grain::Key, &mut merger)?);
                }
            }
            keyed.insert(name.clone(), keys);
        }
        if !ring.is_empty() {
            models.insert(name, ring);
        }
    }
    Ok(Snapshot {
        format_version: version,
        saved_ms,
        history: Arc::new(
            HistoryView::new(saved_ms, models, Uptime::from_spans(spans)).with_keys(keyed),
        ),
        ingest,
        stream,
    })
}

fn read_name(r: &mut Reader<impl Read>) -> Result<String, SnapshotError> {
    let len = r.count()?;
    String::from_utf8(r.bytes(len)?).map_err(|_| SnapshotError::Malformed("name is not UTF-8"))
}

fn read_ring(
    r: &mut Reader<impl Read>,
    grain: Grain,
    merger: &mut ring::Merger,
) -> Result<Ring, SnapshotError> {
    let hours = r.count()?;
    let mut hs = Vec::with_capacity(hours.min(64));
    for _ in 0..hours {
        hs.push(decode_hour(r, grain, merger)?);
    }
    Ok(Ring::from_hours(hs, grain))
}

fn decode_hour(
    r: &mut Reader<impl Read>,
    grain: Grain,
    merger: &mut ring::Merger,
) -> Result<Hour, SnapshotError> {
    let start_s = r.i64()?;
    if start_s.rem_euclid(HOUR_S) != 0 {
        return Err(SnapshotError::Malformed("hour not on an hour boundary"));
    }
    let tier = r.u8()?;
    let has_res = r.u8()?;
    let fine = if tier == tier_of(grain, true) {
        true
    } else if tier == tier_of(grain, false) {
        false
    } else {
        return Err(SnapshotError::Malformed("unknown distribution tier"));
    };
    let n_cells = grain.cells_per_hour();
    // Hours past the fine tier stay packed, as the store keeps them.
    let mut cells = Cells::builder(n_cells, !fine);
    for _ in 0..n_cells {
        let mut c = Cell::default();
        for v in &mut c.status {
            *v = r.u32_varint()?;
        }
        c.errors = r.u32_varint()?;
        c.max_us = r.u32_varint()?;
        cells.push(&c);
    }
    let n = if fine {
        n_cells
    } else {
        grain.coarse_per_hour()
    };
    let mut dists: Vec<Option<Dist>> = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.count()?;
        if len == 0 {
            dists.push(None);
            continue;
        }
        let d = r.bytes(len)?;
        // A checksum cannot catch a bug in the writer; a distribution that does not
        // decode would silently skew percentiles, so check each one once here.
        merger
            .try_add_dist(&d)
            .map_err(|_| SnapshotError::Malformed("bad latency distribution"))?;
        merger.reset();
        dists.push(Some(Dist::from(d)));
    }
    let dists = dists.into_boxed_slice();
    let res = match has_res {
        0 => None,
        1 => {
            let mut res = Vec::with_capacity(n_cells);
            for _ in 0..n_cells {
                res.push(Res {
                    cpu: f32::from_bits(r.u32()?),
                    mem_kib: r.u32()?,
                });
            }
            Some(res.into_boxed_slice())
        }
        _ => return Err(SnapshotError::Malformed("bad resource flag")),
    };
    let dists = if fine {
        Dists::Fine(dists)
    } else {
        Dists::Coarse(dists)
    };
    Ok(Hour::from_parts(start_s, cells.finish(), dists, res))
}

// ---------------------------------------------------------------------------------
// Files

/// Reads and checks the snapshot at `path`. `Ok(None)`: there is none.
pub fn read_file(path: &Path) -> Result<Option<Snapshot>, PersistError> {
    let read_err = |source| PersistError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let len = file.metadata().map_err(read_err)?.len();
    decode_from(io::BufReader::with_capacity(1 << 16, file), len)
        .map(Some)
        .map_err(|source| PersistError::Invalid {
            path: path.to_path_buf(),
            source,
        })
}

/// Whether `e` says the directory cannot be written (not that it is missing or broken).
fn is_read_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Temporary files of writers killed mid-write: only the lock holder may remove them.
fn remove_stale_temps(dir: &Path) {
    let prefix = format!("{FILE_NAME}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// What starting on a snapshot directory found.
#[derive(Debug)]
pub enum Loaded {
    /// No snapshot yet: a first start.
    Nothing,
    Snapshot(Snapshot),
    /// The file was unusable and was moved to `aside` (or left in place by a reader).
    SetAside {
        path: PathBuf,
        aside: Option<PathBuf>,
        error: SnapshotError,
    },
}

/// A snapshot directory, with the writer's lock when this process got it.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    /// Held for the life of the process: the lock is released when the file closes,
    /// which the kernel does even on SIGKILL.
    lock: Option<File>,
}

impl SnapshotDir {
    /// Opens (creating) `dir` and tries to become its writer. The second value says who
    /// holds the lock when another process does.
    pub fn open(dir: &Path) -> Result<(Self, Option<String>), PersistError> {
        let dir_err = |source| PersistError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        let lock_path = dir.join(LOCK_NAME);
        let opened = fs::create_dir_all(dir).and_then(|()| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
        });
        let mut file = match opened {
            Ok(f) => f,
            // A directory this monitor may read but not write (a read-only mount, another
            // user's): its history is still worth showing.
            Err(e) if dir.is_dir() && is_read_only(&e) => {
                return Ok((
                    Self {
                        dir: dir.to_path_buf(),
                        lock: None,
                    },
                    Some(format!(
                        "{} is read-only ({e}): its history is read, nothing will be saved",
                        dir.display()
                    )),
                ));
            }
            Err(e) => return Err(dir_err(e)),
        };
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => {
                // The pid is for the other monitor's message, nothing relies on it.
                file.set_len(0).map_err(dir_err)?;
                writeln!(file, "{}", std::process::id()).map_err(dir_err)?;
                remove_stale_temps(dir);
                Ok((
                    Self {
                        dir: dir.to_path_buf(),
                        lock: Some(file),
                    },
                    None,
                ))
            }
            Ok(false) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another monitor".to_owned()
                } else {
                    format!("another monitor (pid {holder})")
                };
                Ok((
                    Self {
                        dir: dir.to_path_buf(),
                        lock: None,
                    },
                    Some(format!(
                        "{who} writes the snapshots in {}; this one reads its history but will not write",
                        dir.display()
                    )),
                ))
            }
            Err(e) => Err(dir_err(e)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    pub fn is_writer(&self) -> bool {
        self.lock.is_some()
    }

    /// Loads the snapshot; an unusable one is moved aside (by the writer only).
    pub fn load(&self, now_s: i64) -> Result<Loaded, PersistError> {
        let path = self.path();
        match read_file(&path) {
            Ok(Some(s)) => Ok(Loaded::Snapshot(s)),
            Ok(None) => Ok(Loaded::Nothing),
            Err(PersistError::Invalid { path, source }) => {
                let aside = if self.is_writer() {
                    let mut aside = path.clone().into_os_string();
                    aside.push(format!(".corrupt-{now_s}"));
                    let aside = PathBuf::from(aside);
                    fs::rename(&path, &aside).map_err(|source| PersistError::Write {
                        path: aside.clone(),
                        source,
                    })?;
                    Some(aside)
                } else {
                    None
                };
                Ok(Loaded::SetAside {
                    path,
                    aside,
                    error: source,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `snap` atomically. Returns the bytes written.
    /// Refused without the lock: a reader never writes.
    pub fn write(&self, snap: &Snapshot) -> Result<u64, PersistError> {
        let path = self.path();
        if !self.is_writer() {
            return Err(PersistError::Write {
                path,
                source: io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "another monitor holds the lock",
                ),
            });
        }
        let tmp = self
            .dir
            .join(format!("{FILE_NAME}.tmp-{}", std::process::id()));
        let werr = |source| PersistError::Write {
            path: path.clone(),
            source,
        };
        let result = (|| {
            let mut f = File::create(&tmp)?;
            let n = write_to(&mut f, snap)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // The rename itself must reach the disk, or a power cut could bring back
            // the old directory entry (or neither).
            File::open(&self.dir)?.sync_all()?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_history_round_trips_and_every_damage_is_named() {
        let snap = Snapshot {
            format_version: VERSION,
            saved_ms: 1_800_000_000_000,
            history: Arc::new(HistoryView::new(
                1_800_000_000_000,
                std::collections::BTreeMap::new(),
                Uptime::from_spans(vec![(1, 2)]),
            )),
            ingest: IngestTotals {
                events: 5,
                ..IngestTotals::default()
            },
            stream: None,
        };
        let bytes = encode(&snap);
        let back = decode(&bytes).expect("round trip");
        assert_eq!(back.ingest.events, 5);
        assert_eq!(back.history.uptime().spans(), &[(1, 2)]);

        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Truncated { .. })
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x10;
        assert_eq!(decode(&flipped).err(), Some(SnapshotError::Checksum));
        let mut future = bytes.clone();
        future[12] = 9;
        assert_eq!(
            decode(&future).err(),
            Some(SnapshotError::UnknownVersion { found: 9 })
        );
        assert_eq!(
            decode(b"hello world!!").err(),
            Some(SnapshotError::NotASnapshot)
        );
    }

    #[test]
    fn older_snapshots_without_some_key_families_still_load() {
        // Version 1 is the current format without any key list after each model;
        // version 2 has routes and instances but not versions, measures and streams.
        let mut ring = Ring::default();
        let mut slot = super::super::window::Slot {
            start: 1_800_000_000,
            ..Default::default()
        };
        slot.record(200, 1234, false);
        let mut merger = ring::Merger::default();
        ring.add(&slot, 1_800_000_000, &mut merger);
        let models = BTreeMap::from([("m".to_owned(), ring)]);
        let history = HistoryView::new(1_800_000_000_000, models, Uptime::default());
        let snap = Snapshot {
            format_version: VERSION,
            saved_ms: 1_800_000_000_000,
            history: Arc::new(history.clone()),
            ingest: IngestTotals::default(),
            stream: None,
        };
        let now = encode(&snap);
        // One model, no keys: its five empty lists are the payload's last five bytes.
        assert_eq!(&now[now.len() - 5..], &[0; 5]);
        // Before version 4, no stream mark (one 0 byte after saved_ms and five counters).
        let mark = HEADER_LEN + 8 + 5;
        assert_eq!(now[mark], 0);
        for (version, lists) in [(1u32, 0), (2, 2), (3, 5)] {
            let payload = [
                &now[HEADER_LEN..mark],
                &now[mark + 1..now.len() - 5 + lists],
            ]
            .concat();
            let mut old = Vec::new();
            old.extend_from_slice(MAGIC);
            old.extend_from_slice(&version.to_le_bytes());
            old.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            old.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            old.extend_from_slice(&payload);
            let back = decode(&old).unwrap_or_else(|e| panic!("version {version} reads: {e}"));
            assert_eq!(*back.history, history, "version {version}");
            assert!(back.history.keys("m").is_none());
            assert_eq!(back.stream, None);
            // What `report` shows: the file's own format, not this build's.
            assert_eq!(back.format_version, version);
        }
        assert_eq!(decode(&now).expect("reads").format_version, VERSION);
    }

    #[test]
    fn the_stream_offset_a_history_ends_at_round_trips() {
        let snap = Snapshot {
            format_version: VERSION,
            saved_ms: 1_800_000_000_000,
            history: Arc::new(HistoryView::new(
                1_800_000_000_000,
                BTreeMap::new(),
                Uptime::default(),
            )),
            ingest: IngestTotals::default(),
            stream: Some(StreamMark {
                name: "modelmon.events".to_owned(),
                next_offset: 1 << 40,
            }),
        };
        let back = decode(&encode(&snap)).expect("reads");
        assert_eq!(back.stream, snap.stream);
    }

    #[test]
    fn packed_hours_are_written_as_they_are_and_load_packed() {
        let t0 = 1_800_000_000 - 1_800_000_000 % HOUR_S;
        let mut ring = Ring::default();
        let mut merger = ring::Merger::default();
        for h in 0..4 {
            let mut slot = super::super::window::Slot {
                start: t0 + h * HOUR_S + 70,
                ..Default::default()
            };
            slot.record(200, 1234 << h, false);
            slot.record(503, 99, true);
            ring.add(&slot, slot.start, &mut merger);
        }
        let now_s = t0 + 3 * HOUR_S + 100;
        ring.age(now_s, &mut merger);
        let packed: Vec<bool> = ring.hours().map(Hour::is_packed).collect();
        assert_eq!(packed, [true, true, false, false]);
        let models = BTreeMap::from([("m".to_owned(), ring)]);
        let history = HistoryView::new(now_s * 1000, models, Uptime::default());
        let snap = Snapshot {
            format_version: VERSION,
            saved_ms: now_s * 1000,
            history: Arc::new(history.clone()),
            ingest: IngestTotals::default(),
            stream: None,
        };
        let bytes = encode(&snap);
        let back = decode(&bytes).expect("round trip");
        assert_eq!(*back.history, history);
        let ring = back.history.ring("m").expect("model");
        assert_eq!(
            ring.hours().map(Hour::is_packed).collect::<Vec<_>>(),
            packed
        );
        assert_eq!(encode(&back), bytes);
    }
}
