//! Walks a segment's batches. Recovery and `sluice check` share this walk so that they
//! can never disagree about what is valid.

use super::codec::{self, BatchRead, Record, SEGMENT_HEADER_LEN};

/// Where and why a segment stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first bad batch.
    pub offset: u64,
    /// What check failed.
    pub reason: &'static str,
    /// Whether a valid batch follows the damage. If none does, the damage is what an
    /// interrupted final write looks like (a torn tail); if one does, it is corruption.
    pub valid_batch_follows: bool,
}

/// The result of walking one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Offset just past the last valid batch: where the next batch goes.
    pub end: u64,
    /// Valid batches seen.
    pub batches: u64,
    /// The first damage, if any.
    pub damage: Option<Damage>,
}

/// Calls `visit(record_offset, record)` for every record of every valid batch in
/// `bytes` (a whole segment file), in order, and stops at the end of data or at the
/// first damage.
pub fn walk(bytes: &[u8], mut visit: impl FnMut(u64, Record<'_>)) -> Walk {
    let mut pos = SEGMENT_HEADER_LEN;
    let mut batches = 0;
    loop {
        match codec::read_batch(bytes, pos) {
            BatchRead::End => {
                // Zero fill ends the data, unless a valid batch hides behind it (a
                // zeroed-out header is damage, not an end).
                if let Some(_next) = codec::find_valid_batch_after(bytes, pos) {
                    return Walk {
                        end: pos as u64,
                        batches,
                        damage: Some(Damage {
                            offset: pos as u64,
                            reason: "zeroed batch header before valid data",
                            valid_batch_follows: true,
                        }),
                    };
                }
                return Walk {
                    end: pos as u64,
                    batches,
                    damage: None,
                };
            }
            BatchRead::Damaged(reason) => {
                return Walk {
                    end: pos as u64,
                    batches,
                    damage: Some(Damage {
                        offset: pos as u64,
                        reason,
                        valid_batch_follows: codec::find_valid_batch_after(bytes, pos).is_some(),
                    }),
                };
            }
            BatchRead::Batch {
                body,
                records,
                frame_len,
            } => {
                let body_start = pos + codec::BATCH_HEADER_LEN;
                let mut seen = 0u32;
                for item in codec::records(body) {
                    match item {
                        Ok((at, record)) => {
                            seen += 1;
                            visit((body_start + at) as u64, record);
                        }
                        Err(reason) => {
                            // The batch checksum matched, so this is a writer bug or a
                            // forged frame: never something to skip.
                            return Walk {
                                end: pos as u64,
                                batches,
                                damage: Some(Damage {
                                    offset: pos as u64,
                                    reason,
                                    valid_batch_follows: true,
                                }),
                            };
                        }
                    }
                }
                if seen != records {
                    return Walk {
                        end: pos as u64,
                        batches,
                        damage: Some(Damage {
                            offset: pos as u64,
                            reason: "batch record count mismatch",
                            valid_batch_follows: true,
                        }),
                    };
                }
                batches += 1;
                pos += frame_len;
            }
        }
    }
}
