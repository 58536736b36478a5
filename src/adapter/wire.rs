//! The proxy-wasm ABI's wire formats: header maps and property paths.
//! Bounds-checked: a malformed buffer from the host is an error, never a panic.

/// Decodes a serialized header map: a count, then (key size, value size)
/// pairs, then the NUL-terminated keys and values.
pub fn decode_map(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let mut p = count.checked_mul(8)?.checked_add(4)?;
    let mut map = Vec::with_capacity(count.min(bytes.len() / 8));
    for n in 0..count {
        let key_len = word(4 + n * 8)?;
        let value_len = word(8 + n * 8)?;
        let key = bytes.get(p..p.checked_add(key_len)?)?;
        p = p.checked_add(key_len + 1)?;
        let value = bytes.get(p..p.checked_add(value_len)?)?;
        p = p.checked_add(value_len + 1)?;
        map.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(map)
}

pub fn encode_map(map: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + map.iter().map(|(k, v)| k.len() + v.len() + 10).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// A property path: its parts joined by NUL.
pub fn encode_path(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trips_with_binary_values() {
        let enc = encode_map(&[(":path", "/a"), ("x", "")]);
        let dec = decode_map(&enc).unwrap();
        assert_eq!(dec, vec![(":path".to_string(), b"/a".to_vec()), ("x".to_string(), vec![])]);
    }

    #[test]
    fn truncated_or_lying_buffers_are_errors() {
        let enc = encode_map(&[("key", "value")]);
        for cut in 1..enc.len() - 1 {
            assert!(decode_map(&enc[..cut]).is_none(), "cut at {cut}");
        }
        let mut huge = enc.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_map(&huge).is_none());
        assert_eq!(decode_map(&[]), Some(vec![]));
    }

    #[test]
    fn paths_join_with_nul() {
        assert_eq!(encode_path(&["source", "address"]), b"source\0address".to_vec());
    }
}
