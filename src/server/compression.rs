//! Compression of Raft messages between peers (lz4, pure Rust). A node announces that it
//! can read compressed messages with a header on the streams it opens to its peers; a peer
//! compresses only to nodes that announced it, and only messages of at least
//! [`THRESHOLD`] bytes that shrink by an eighth or more (entries of rows compress; heartbeats
//! are not worth it). A compressed message carries its length, and one claiming more than the
//! message limit is refused before anything is allocated.

/// The metadata key on a `Raft.Step` stream announcing the compressions its sender reads.
pub const HEADER: &str = "chronos-compression";
/// The one compression so far.
pub const LZ4: &str = "lz4";
/// Messages shorter than this go as they are.
pub const THRESHOLD: usize = 1024;

/// A message as sent: compressed (with its length in front) if that saves at least an eighth.
pub fn pack(message: Vec<u8>) -> (Vec<u8>, bool) {
    if message.len() < THRESHOLD {
        return (message, false);
    }
    let packed = lz4_flex::block::compress_prepend_size(&message);
    if packed.len() <= message.len() - message.len() / 8 {
        (packed, true)
    } else {
        (message, false)
    }
}

/// A message as received: decompressed if it was compressed, refused if it claims more than
/// `limit` bytes or does not decompress.
pub fn unpack(bytes: Vec<u8>, compressed: bool, limit: usize) -> Result<Vec<u8>, String> {
    if !compressed {
        return Ok(bytes);
    }
    let Some((length, body)) = bytes.split_first_chunk::<4>() else {
        return Err("a compressed message without its length".into());
    };
    let length = u32::from_le_bytes(*length) as usize;
    if length > limit {
        return Err(format!("a compressed message claims {length} bytes, over the limit"));
    }
    lz4_flex::block::decompress(body, length).map_err(|e| format!("undecodable compression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_compressible_messages_shrink_and_come_back_the_same() {
        let entry = b"INSERT INTO t VALUES (1, 'aaaaaaaaaaaaaaaaaaaa')".repeat(200);
        let (packed, compressed) = pack(entry.clone());
        assert!(compressed && packed.len() * 10 < entry.len(), "{}", packed.len());
        assert_eq!(unpack(packed, true, 1 << 20).unwrap(), entry);
        // Small or incompressible messages go as they are.
        assert_eq!(pack(b"heartbeat".to_vec()), (b"heartbeat".to_vec(), false));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(!pack(noise).1);
    }

    #[test]
    fn a_compressed_message_claiming_too_much_or_damaged_is_refused() {
        let (packed, _) = pack(vec![7u8; 64 << 10]);
        assert!(unpack(packed.clone(), true, 1 << 10).unwrap_err().contains("over the limit"));
        let mut damaged = packed;
        let last = damaged.len() - 1;
        damaged.truncate(last / 2);
        assert!(unpack(damaged, true, 1 << 20).is_err());
        assert!(unpack(vec![1, 2], true, 1 << 20).is_err());
        assert_eq!(unpack(vec![1, 2], false, 1).unwrap(), vec![1, 2]);
    }
}
