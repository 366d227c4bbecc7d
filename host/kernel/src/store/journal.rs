//! The write journal: one small sequential write makes a frequent write durable.
//!
//! A durable redb commit writes and syncs every page the transaction touched
//! plus the allocator's records: for one conversation turn, about ten pages
//! scattered over the file, which cost more than everything else a message
//! does. A journaled write instead commits to redb without durability and
//! appends a redo record here, synced before the write is acknowledged: one
//! page or two, written in place in a file zero-filled when it was created, so
//! the sync flushes no file metadata.
//!
//! Every journaled write takes the next sequence number, stored in the same
//! redb transaction. After a crash, redb holds the state of its last durable
//! commit, and with it the sequence number of the last journaled write that
//! state contains; the records above it are exactly the writes it lost, and
//! they are applied again, in order, when the store opens.
//!
//! A checkpoint is a durable redb commit that also raises the journal's
//! epoch: it makes every record before it redundant, and writing restarts at
//! the start of the file. Records of older epochs left further on are never
//! read, because a scan stops at the first record that is zero, torn (its
//! checksum fails) or of another epoch. A checkpoint happens when the file is
//! full, when the store opens, and when the daemon shuts down.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use redb::{Database, Durability, ReadableTable, WriteTransaction};
use serde::Deserialize;
use uuid::Uuid;

use super::StoreError;
use super::tables::{META, put_message_rows, put_session_row, put_turn_row};

/// Size of the journal file; a record that does not fit makes its write a checkpoint.
const CAPACITY: u64 = 1 << 20;
/// Record header: payload length (u32), CRC-32 of the rest (u32), epoch (u64), sequence (u64).
const HEADER: usize = 24;

const EPOCH_KEY: &str = "journal_epoch";
const SEQ_KEY: &str = "journal_seq";

/// Applies one redo record inside a write transaction (at recovery).
pub(crate) type Redo = fn(&WriteTransaction, &[u8]) -> Result<(), StoreError>;

/// What a redo record holds: the rows a conversation turn's commit wrote
/// (see `conversation::sessions::commit_turn`), each as the JSON stored in
/// its table. The journal's record format is part of the store's format, so
/// replaying needs nothing from the domain that wrote it: only where each
/// row goes.
#[derive(Deserialize)]
struct TurnRows {
    session: serde_json::Value,
    messages: Vec<serde_json::Value>,
    turn: serde_json::Value,
}

/// The key fields of a row, read from the row itself.
#[derive(Deserialize)]
struct SessionKey {
    id: Uuid,
}

#[derive(Deserialize)]
struct MessageKey {
    seq: u64,
}

#[derive(Deserialize)]
struct TurnKey {
    agent_id: Uuid,
    id: Uuid,
}

/// What the turn journal is called in errors.
const RECORD: &str = "the turn journal";

/// Writes a turn's rows again, at recovery: the [`Redo`] of the store's journal.
pub(crate) fn replay_turn(tx: &WriteTransaction, record: &[u8]) -> Result<(), StoreError> {
    let rows: TurnRows = super::decode(RECORD, record)?;
    fn key<K: serde::de::DeserializeOwned>(row: &serde_json::Value) -> Result<K, StoreError> {
        K::deserialize(row).map_err(|e| StoreError::Corrupt {
            table: RECORD,
            message: e.to_string(),
        })
    }
    let session: SessionKey = key(&rows.session)?;
    let mut messages = Vec::with_capacity(rows.messages.len());
    for row in &rows.messages {
        let message: MessageKey = key(row)?;
        messages.push((message.seq, super::encode(RECORD, row)?));
    }
    put_message_rows(
        tx,
        session.id,
        messages.iter().map(|(seq, json)| (*seq, json.as_slice())),
    )?;
    put_session_row(tx, session.id, &super::encode(RECORD, &rows.session)?)?;
    let turn: TurnKey = key(&rows.turn)?;
    put_turn_row(
        tx,
        turn.agent_id,
        turn.id,
        &super::encode(RECORD, &rows.turn)?,
    )
}

/// The journal beside a database file.
pub(crate) struct Journal {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// The epoch the durable database state names; records carry it.
    epoch: u64,
    /// The sequence number of the last journaled write.
    seq: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

fn read_meta(tx: &WriteTransaction, key: &str) -> Result<u64, StoreError> {
    Ok(tx.open_table(META)?.get(key)?.map_or(0, |v| v.value()))
}

fn set_meta(tx: &WriteTransaction, key: &str, value: u64) -> Result<(), StoreError> {
    tx.open_table(META)?.insert(key, value)?;
    Ok(())
}

/// One record as stored: header, then payload.
fn encode(epoch: u64, seq: u64, payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&epoch.to_le_bytes());
    record.extend_from_slice(&seq.to_le_bytes());
    record.extend_from_slice(payload);
    let crc = crc32fast::hash(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(record)
}

/// The records of `epoch` at the start of `journal`, in order, up to the
/// first one that is zero, torn, of another epoch or out of sequence. It
/// reads no further than that record's header: after a clean shutdown, the
/// first header already belongs to an older epoch, so opening the store does
/// not read the whole file.
fn scan(journal: impl Read, epoch: u64) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    let mut journal = std::io::BufReader::new(journal);
    let mut records = Vec::new();
    let mut last_seq = None;
    let mut header = [0u8; HEADER];
    while fill(&mut journal, &mut header)? {
        let field = |range: std::ops::Range<usize>| {
            let mut buf = [0u8; 8];
            buf[..range.len()].copy_from_slice(&header[range]);
            u64::from_le_bytes(buf)
        };
        let (len, crc) = (field(0..4), field(4..8) as u32);
        let (record_epoch, seq) = (field(8..16), field(16..24));
        let in_order = last_seq.is_none_or(|last: u64| seq == last + 1);
        // A length beyond the file is a torn header: nothing is allocated for it.
        if len == 0 || len > CAPACITY || record_epoch != epoch || !in_order {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if !fill(&mut journal, &mut payload)? {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            break;
        }
        records.push((seq, payload));
        last_seq = Some(seq);
    }
    Ok(records)
}

/// Fills `buf` from `reader`; false if the file ends first.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

impl Journal {
    /// Opens the journal at `path` (creating it), applies what the database
    /// lost with `redo`, and checkpoints.
    pub(crate) fn open(path: &Path, db: &Database, redo: Redo) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;

        let tx = db.begin_write()?;
        let (epoch, durable_seq) = (read_meta(&tx, EPOCH_KEY)?, read_meta(&tx, SEQ_KEY)?);
        let mut seq = durable_seq;
        let mut replayed = 0usize;
        for (record_seq, payload) in scan(&file, epoch)? {
            if record_seq > durable_seq {
                redo(&tx, &payload)?;
                seq = record_seq;
                replayed += 1;
            }
        }
        set_meta(&tx, SEQ_KEY, seq)?;
        set_meta(&tx, EPOCH_KEY, epoch + 1)?;
        tx.commit()?;
        if replayed > 0 {
            tracing::info!(replayed, journal = %path.display(), "replayed journaled writes");
        }

        if file.metadata()?.len() < CAPACITY {
            // Zero-filled once, so later records overwrite allocated blocks
            // and syncing them flushes no metadata.
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&vec![0u8; CAPACITY as usize])?;
            file.sync_all()?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file,
                offset: 0,
                epoch: epoch + 1,
                seq,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent: the
        // offset only moves after a complete write.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write` in a write transaction and makes it durable through the
    /// journal. `write` makes its changes and returns its result and a redo
    /// record: the payload that, handed to the store's [`Redo`], makes the
    /// same changes again. An error from `write` aborts the transaction.
    pub(crate) fn write<T, E>(
        &self,
        db: &Database,
        write: impl FnOnce(&WriteTransaction) -> Result<(T, Vec<u8>), E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        // Held across the transaction, so records are appended in commit order.
        let mut state = self.lock();
        let mut tx = db.begin_write().map_err(StoreError::from)?;
        let (value, payload) = write(&tx)?;
        let seq = state.seq + 1;
        set_meta(&tx, SEQ_KEY, seq)?;
        let record = encode(state.epoch, seq, &payload)
            .filter(|r| state.offset + r.len() as u64 <= CAPACITY);
        let Some(record) = record else {
            // The journal is full (or the record too large for it): this
            // commit is the checkpoint.
            self.commit_checkpoint(&mut state, tx)?;
            state.seq = seq;
            return Ok(value);
        };
        tx.set_durability(Durability::None)
            .map_err(|e| StoreError::Db(redb::Error::from(e)))?;
        tx.commit().map_err(StoreError::from)?;
        state.seq = seq;
        if let Err(e) = state.append(&record) {
            // The write is committed but not yet durable: make it durable the
            // slow way rather than acknowledge it on a failed sync.
            tracing::warn!(error = %e, journal = %self.path.display(), "journal append failed; checkpointing");
            let tx = db.begin_write().map_err(StoreError::from)?;
            self.commit_checkpoint(&mut state, tx)?;
        }
        Ok(value)
    }

    /// Makes every journaled write durable in the database and empties the journal.
    pub(crate) fn checkpoint(&self, db: &Database) -> Result<(), StoreError> {
        let mut state = self.lock();
        let tx = db.begin_write()?;
        self.commit_checkpoint(&mut state, tx)
    }

    fn commit_checkpoint(&self, state: &mut State, tx: WriteTransaction) -> Result<(), StoreError> {
        set_meta(&tx, EPOCH_KEY, state.epoch + 1)?;
        tx.commit()?;
        state.epoch += 1;
        state.offset = 0;
        Ok(())
    }
}

impl State {
    fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        self.file.write_all(record)?;
        self.file.sync_data()?;
        self.offset += record.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_reads_records_of_the_epoch_in_sequence_and_stops_at_damage() {
        let mut bytes = Vec::new();
        for seq in 1..=3 {
            bytes.extend(encode(7, seq, format!("record {seq}").as_bytes()).unwrap());
        }
        let good = bytes.len();
        bytes.extend(encode(6, 4, b"older epoch").unwrap());
        bytes.extend(vec![0u8; 64]);
        let found: Vec<_> = scan(&bytes[..], 7).unwrap();
        assert_eq!(
            found,
            vec![
                (1, b"record 1".to_vec()),
                (2, b"record 2".to_vec()),
                (3, b"record 3".to_vec())
            ]
        );
        assert!(
            scan(&bytes[..], 8).unwrap().is_empty(),
            "another epoch reads nothing"
        );

        // A torn third record: the first two stand.
        let mut torn = bytes[..good].to_vec();
        let last = torn.len() - 1;
        torn[last] ^= 0xff;
        assert_eq!(scan(&torn[..], 7).unwrap().len(), 2);
        // Cut short in the middle of a payload.
        assert_eq!(scan(&bytes[..good - 3], 7).unwrap().len(), 2);
        // A gap in the sequence ends the scan.
        let mut gap = encode(7, 1, b"a").unwrap();
        gap.extend(encode(7, 3, b"c").unwrap());
        assert_eq!(scan(&gap[..], 7).unwrap().len(), 1);
    }

    #[test]
    fn scan_stops_at_a_length_beyond_the_file_and_reads_only_what_it_needs() {
        // A torn header claiming 4 GiB of payload: nothing is allocated for it.
        let mut bytes = encode(7, 1, b"a").unwrap();
        let mut torn = encode(7, 2, b"b").unwrap();
        torn[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend(torn);
        assert_eq!(scan(&bytes[..], 7).unwrap().len(), 1);

        // After a clean shutdown the first header is of an older epoch: a
        // full journal is read no further than one buffer's worth.
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        let mut full = Vec::new();
        let mut seq = 1;
        while full.len() < CAPACITY as usize {
            full.extend(encode(6, seq, &[1u8; 1000]).unwrap());
            seq += 1;
        }
        let mut reader = Counting(&full, 0);
        assert!(scan(&mut reader, 7).unwrap().is_empty());
        assert!(reader.1 <= 8 * 1024, "read {} bytes", reader.1);
    }
}
