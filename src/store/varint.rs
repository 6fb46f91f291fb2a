//! LEB128 varints, 7 bits a byte, low bits first: the one encoding of small integers in
//! sealed histograms, packed ring cells and snapshot files. Snapshot files outlive the
//! process that wrote them, so every reader and writer goes through this one codec.

/// Appends `v` as a varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes one varint from bytes pulled by `next`, so an in-memory slice and a
/// checksummed file stream share the decoder; `Ok(None)` when it overflows 64 bits, and
/// `next`'s error when the bytes end inside one.
pub(crate) fn decode_varint<E>(mut next: impl FnMut() -> Result<u8, E>) -> Result<Option<u64>, E> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = next()?;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Reads a varint off the front of `r`; `None` when `r` ends inside one or it overflows
/// 64 bits.
pub(crate) fn read_varint(r: &mut &[u8]) -> Option<u64> {
    decode_varint(|| {
        let (&b, rest) = r.split_first().ok_or(())?;
        *r = rest;
        Ok::<_, ()>(b)
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_edges_of_each_length() {
        let values = [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let mut buf = Vec::new();
        for v in values {
            write_varint(&mut buf, v);
        }
        let mut r = buf.as_slice();
        for v in values {
            assert_eq!(read_varint(&mut r), Some(v));
        }
        assert!(r.is_empty());
        assert_eq!(read_varint(&mut r), None);
    }

    #[test]
    fn a_single_byte_is_the_value_and_longer_ones_are_low_bits_first() {
        let mut buf = Vec::new();
        write_varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
    }

    #[test]
    fn a_truncated_or_overlong_varint_is_refused() {
        assert_eq!(read_varint(&mut [0x80u8].as_slice()), None);
        assert_eq!(read_varint(&mut [0xffu8; 10].as_slice()), None);
    }
}
