//! Packed block changes: the binary (`B`) form in which this store keeps a
//! set of block rows, in the head's log list `g`, in log items `g#KEY` and
//! in snapshot parts `f#VERSION#PART` (the crate docs describe the items).
//!
//! ```text
//! varint n                  number of blocks
//! varint first key          absolute key of the first block (n > 0)
//! n times:
//!   zigzag dx, dy, dz       position minus the previous block's (the first
//!                           block's relative to the origin)
//!   zigzag w                value (negative: a neighbour's mirror)
//!   varint key delta        key minus the previous block's (0 for the first)
//! ```
//!
//! Blocks of one chunk are close to each other and keys of one share are
//! consecutive, so a block usually takes 5 bytes (`dx dy dz w 1`), against
//! some 60 for an item of its own. Decoding never panics: anything
//! malformed (truncated, overlong varints, coordinates or keys out of
//! range, trailing bytes) is an error.

use world_core::BlockPos;
use world_core::store::{Key, MAX_KEY, StoredBlock};

/// Why packed bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed packed blocks at byte {at}: {what}")]
pub struct PackError {
    /// Offset of the problem.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes `blocks` (in the order given; keys must not decrease, which
/// [`encode`]'s callers guarantee by building them in key order).
pub fn encode(blocks: &[StoredBlock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + blocks.len() * 6);
    put_varint(&mut out, blocks.len() as u64);
    let Some(first) = blocks.first() else {
        return out;
    };
    put_varint(&mut out, first.key.max(0) as u64);
    let (mut x, mut y, mut z, mut key) = (0i64, 0i64, 0i64, first.key);
    for b in blocks {
        let (bx, by, bz) = (i64::from(b.pos.x), i64::from(b.pos.y), i64::from(b.pos.z));
        put_varint(&mut out, zigzag(bx - x));
        put_varint(&mut out, zigzag(by - y));
        put_varint(&mut out, zigzag(bz - z));
        put_varint(&mut out, zigzag(i64::from(b.w)));
        put_varint(&mut out, (b.key - key).max(0) as u64);
        (x, y, z, key) = (bx, by, bz, b.key);
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, what: &'static str) -> PackError {
        PackError { at: self.at, what }
    }

    fn varint(&mut self) -> Result<u64, PackError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(self.fail("truncated"));
            };
            self.at += 1;
            let part = u64::from(byte & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.fail("varint overflows 64 bits"));
            }
            v |= part << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail("varint longer than 10 bytes"))
    }

    fn coord(&mut self, previous: i64) -> Result<i64, PackError> {
        let delta = unzigzag(self.varint()?);
        previous
            .checked_add(delta)
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| self.fail("coordinate out of range"))
    }
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<StoredBlock>, PackError> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.varint()?;
    // Every block takes at least 5 bytes: refuse counts the input cannot
    // hold before allocating for them.
    if n > (bytes.len() / 5) as u64 {
        return Err(r.fail("block count larger than the data"));
    }
    let mut blocks = Vec::with_capacity(n as usize);
    if n == 0 {
        return if r.at == bytes.len() {
            Ok(blocks)
        } else {
            Err(r.fail("trailing bytes"))
        };
    }
    let mut key = i64::try_from(r.varint()?).map_err(|_| r.fail("key out of range"))?;
    let (mut x, mut y, mut z) = (0i64, 0i64, 0i64);
    for _ in 0..n {
        x = r.coord(x)?;
        y = r.coord(y)?;
        z = r.coord(z)?;
        let w = i32::try_from(unzigzag(r.varint()?)).map_err(|_| r.fail("value out of range"))?;
        let delta = i64::try_from(r.varint()?).map_err(|_| r.fail("key out of range"))?;
        key = key
            .checked_add(delta)
            .filter(|k| (0..=MAX_KEY).contains(k))
            .ok_or_else(|| r.fail("key out of range"))?;
        blocks.push(StoredBlock {
            // In range: `coord` checked each against i32.
            pos: BlockPos::new(x as i32, y as i32, z as i32),
            w,
            key: key as Key,
        });
    }
    if r.at != bytes.len() {
        return Err(r.fail("trailing bytes"));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(x: i32, y: i32, z: i32, w: i32, key: Key) -> StoredBlock {
        StoredBlock {
            pos: BlockPos::new(x, y, z),
            w,
            key,
        }
    }

    #[test]
    fn round_trips() {
        let cases = vec![
            vec![],
            vec![block(0, 0, 0, 0, 1)],
            vec![
                block(-33, 12, 64, 5, 100),
                block(-32, 12, 64, -5, 101),
                block(-1, 255, 31, 255, 102),
                block(-1, 0, 31, 0, 2000),
            ],
            vec![
                block(i32::MIN, i32::MAX, i32::MIN, i32::MIN, 1),
                block(i32::MAX, i32::MIN, i32::MAX, i32::MAX, MAX_KEY),
            ],
        ];
        for blocks in cases {
            let bytes = encode(&blocks);
            assert_eq!(decode(&bytes).unwrap(), blocks);
        }
    }

    #[test]
    fn a_share_of_one_chunk_takes_about_five_bytes_a_block() {
        let blocks: Vec<StoredBlock> = (0..1000)
            .map(|i| {
                block(
                    320 + i % 32,
                    10 + i / 32,
                    -640 + (i * 7) % 32,
                    1 + i % 60,
                    5000 + i as Key,
                )
            })
            .collect();
        let bytes = encode(&blocks);
        assert!(bytes.len() < 6 * blocks.len(), "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), blocks);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = encode(&[block(1, 2, 3, 4, 5), block(2, 2, 3, 4, 6)]);
        // Every truncation fails.
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "truncated at {len}");
        }
        // Trailing bytes fail.
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        // Overlong varints, huge counts, out of range values.
        assert!(decode(&[0xff; 12]).is_err());
        assert!(decode(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]).is_err());
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        assert!(decode(&huge).is_err());
        let mut far = Vec::new();
        put_varint(&mut far, 1);
        put_varint(&mut far, 1);
        put_varint(&mut far, zigzag(i64::from(i32::MAX) + 1));
        far.extend([0, 0, 0, 0]);
        assert!(decode(&far).is_err());
        let mut big_key = Vec::new();
        put_varint(&mut big_key, 1);
        put_varint(&mut big_key, (MAX_KEY + 1) as u64);
        big_key.extend([0, 0, 0, 0, 0]);
        assert!(decode(&big_key).is_err());
        // Arbitrary bytes never panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
    }
}
