//! State snapshots under `--storage.path`: every series' detector (window,
//! state, incident bookkeeping), written now and then and at shutdown, read
//! back at start, so a restart neither forgets a baseline nor announces a
//! known incident again.
//!
//! The file is written to a temporary name, fsynced and renamed, so a crash
//! leaves either the old snapshot or the new one, never half of one. A file
//! that does not read back whole (wrong magic, a future format version, a
//! checksum that does not match, a truncated record) is moved aside and the
//! daemon starts fresh.
//!
//! Layout, little-endian: the magic `DRIFTWCH`, a `u32` format version, the
//! records, and an FNV-1a 64 checksum of everything before it. A record is a
//! series id and its [`SavedDetector`].

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::detector::{Evaluation, SavedDetector, State};

const MAGIC: &[u8; 8] = b"DRIFTWCH";
/// Bumped whenever the layout changes; an older or newer file is set aside.
pub const FORMAT_VERSION: u32 = 2;
/// The snapshot's name inside `--storage.path`.
pub const FILE_NAME: &str = "driftwatch.snapshot";

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a driftwatch snapshot")]
    NotASnapshot { path: PathBuf },
    #[error("{path} has format version {found}; this driftwatch reads version {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The detectors of a snapshot, by series id.
pub type Restored = HashMap<u64, SavedDetector>;

/// Builds a snapshot file's bytes one record at a time, so the caller can
/// hold each source's lock only while its own series are written.
pub struct Encoder {
    out: Vec<u8>,
    records: usize,
}

impl Encoder {
    pub fn new() -> Encoder {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        Encoder { out, records: 0 }
    }

    pub fn add(&mut self, id: u64, saved: &SavedDetector) {
        encode_record(&mut self.out, id, saved);
        self.records += 1;
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// The file's bytes, checksum included.
    pub fn finish(mut self) -> Vec<u8> {
        let checksum = fnv1a(&self.out);
        self.out.extend_from_slice(&checksum.to_le_bytes());
        self.out
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

/// Encodes `records` as a whole snapshot file's bytes.
pub fn encode<'a>(records: impl IntoIterator<Item = (u64, &'a SavedDetector)>) -> Vec<u8> {
    let mut encoder = Encoder::new();
    for (id, saved) in records {
        encoder.add(id, saved);
    }
    encoder.finish()
}

fn encode_record(out: &mut Vec<u8>, id: u64, saved: &SavedDetector) {
    out.extend_from_slice(&id.to_le_bytes());
    out.push(state_code(saved.state));
    out.extend_from_slice(&saved.since_ms.to_le_bytes());
    out.extend_from_slice(&saved.incident_ms.to_le_bytes());
    out.extend_from_slice(&saved.breaches.to_le_bytes());
    match &saved.last {
        None => out.push(0),
        Some(last) => {
            out.push(1);
            let pack = |x: Option<f64>| x.unwrap_or(f64::NAN);
            for x in [
                last.value,
                pack(last.zscore),
                pack(last.badness),
                pack(last.mean),
            ] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(&pack(last.stddev).to_le_bytes());
            let samples = u32::try_from(last.window_samples).unwrap_or(u32::MAX);
            out.extend_from_slice(&samples.to_le_bytes());
        }
    }
    let len = u32::try_from(saved.baseline.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    for x in saved.baseline.iter().take(len as usize) {
        out.extend_from_slice(&x.to_le_bytes());
    }
    for x in saved.accumulator {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Decodes a snapshot file's bytes; `path` names it in errors.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Restored, SnapshotError> {
    let corrupt = |reason: &str| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotASnapshot {
            path: path.to_owned(),
        });
    }
    let mut header = Reader {
        bytes: &bytes[MAGIC.len()..],
    };
    let version = header
        .u32()
        .ok_or_else(|| corrupt("it ends inside its header"))?;
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version {
            path: path.to_owned(),
            found: version,
        });
    }
    if bytes.len() < MAGIC.len() + 4 + 8 {
        return Err(corrupt("it ends before its checksum"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    let stored = u64::from_le_bytes(tail.try_into().map_err(|_| corrupt("no checksum"))?);
    if fnv1a(body) != stored {
        return Err(corrupt(
            "its checksum does not match (truncated or overwritten)",
        ));
    }
    let mut reader = Reader {
        bytes: &body[MAGIC.len() + 4..],
    };
    let mut restored = Restored::new();
    while !reader.bytes.is_empty() {
        let (id, saved) =
            decode_record(&mut reader).ok_or_else(|| corrupt("a record is cut short"))?;
        restored.insert(id, saved);
    }
    Ok(restored)
}

fn decode_record(reader: &mut Reader<'_>) -> Option<(u64, SavedDetector)> {
    let id = reader.u64()?;
    let state = state_from(reader.u8()?)?;
    let since_ms = reader.u64()? as i64;
    let incident_ms = reader.u64()? as i64;
    let breaches = reader.u32()?;
    let last = match reader.u8()? {
        0 => None,
        1 => {
            let value = reader.f64()?;
            let unpack = |x: f64| (!x.is_nan()).then_some(x);
            let (zscore, badness, mean, stddev) = (
                unpack(reader.f64()?),
                unpack(reader.f64()?),
                unpack(reader.f64()?),
                unpack(reader.f64()?),
            );
            let window_samples = reader.u32()? as usize;
            Some(Evaluation {
                value,
                zscore,
                badness,
                mean,
                stddev,
                window_samples,
                evidence: None,
            })
        }
        _ => return None,
    };
    let len = reader.u32()? as usize;
    // Checked against what is left before allocating, so a corrupt length
    // cannot ask for gigabytes.
    if len.checked_mul(8)? > reader.bytes.len() {
        return None;
    }
    let baseline = (0..len)
        .map(|_| reader.f64())
        .collect::<Option<Vec<f64>>>()?;
    let accumulator = [reader.f32()?, reader.f32()?];
    Some((
        id,
        SavedDetector {
            state,
            since_ms,
            incident_ms,
            breaches,
            last,
            baseline,
            accumulator,
        },
    ))
}

/// Writes `bytes` as the snapshot in `dir`: temporary file, fsync, rename,
/// fsync of the folder, so the rename itself survives a power cut.
pub fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let final_path = dir.join(FILE_NAME);
    let temporary = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &final_path)?;
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// Reads the snapshot in `dir`. No file is an empty start, not an error; a
/// file that does not read back is moved aside (so the next snapshot does
/// not overwrite the evidence) and reported.
pub fn read(dir: &Path) -> Result<Restored, SnapshotError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::new()),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    decode(&path, &bytes).inspect_err(|_| {
        let aside = dir.join(format!("{FILE_NAME}.unreadable"));
        let _ = std::fs::rename(&path, aside);
    })
}

fn state_code(state: State) -> u8 {
    match state {
        State::Learning => 0,
        State::Ok => 1,
        State::Pending => 2,
        State::Degraded => 3,
    }
}

fn state_from(code: u8) -> Option<State> {
    Some(match code {
        0 => State::Learning,
        1 => State::Ok,
        2 => State::Pending,
        3 => State::Degraded,
        _ => return None,
    })
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike a hasher
/// of the standard library or a crate whose output may change.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_at_checked(N)?;
        self.bytes = rest;
        head.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn f64(&mut self) -> Option<f64> {
        self.take().map(f64::from_le_bytes)
    }

    fn f32(&mut self) -> Option<f32> {
        self.take().map(f32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(state: State, baseline: Vec<f64>) -> SavedDetector {
        SavedDetector {
            state,
            since_ms: 1_700_000_000_000,
            incident_ms: 1_699_999_990_000,
            breaches: 2,
            last: Some(Evaluation {
                value: 0.5,
                zscore: Some(-7.5),
                badness: Some(7.5),
                mean: Some(0.9),
                stddev: None,
                window_samples: baseline.len(),
                evidence: None,
            }),
            baseline,
            accumulator: [1.5, 0.0],
        }
    }

    fn sample_file() -> (Vec<u8>, Restored) {
        let mut records = Restored::new();
        records.insert(7, saved(State::Degraded, vec![0.9, 0.91, 0.89]));
        records.insert(u64::MAX, saved(State::Learning, Vec::new()));
        let mut none = saved(State::Ok, vec![1.0]);
        none.last = None;
        records.insert(0, none);
        (encode(records.iter().map(|(id, s)| (*id, s))), records)
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        let (bytes, records) = sample_file();
        assert_eq!(decode(Path::new("s"), &bytes).unwrap(), records);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let (bytes, _) = sample_file();
        for len in 0..bytes.len() {
            assert!(
                decode(Path::new("s"), &bytes[..len]).is_err(),
                "cut at {len} accepted"
            );
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x40;
            assert!(
                decode(Path::new("s"), &flipped).is_err(),
                "flip at {i} accepted"
            );
        }
    }

    #[test]
    fn another_format_version_is_named() {
        let (mut bytes, _) = sample_file();
        bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
        let error = decode(Path::new("s"), &bytes).unwrap_err();
        assert!(error.to_string().contains("format version 99"), "{error}");
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_and_a_missing_one_is_an_empty_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"DRIFTWCH\x01\x00\x00\x00garbage",
        )
        .unwrap();
        assert!(read(dir.path()).is_err());
        assert!(!dir.path().join(FILE_NAME).exists());
        assert!(dir.path().join(format!("{FILE_NAME}.unreadable")).exists());
        let (bytes, records) = sample_file();
        write(dir.path(), &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), records);
    }
}
