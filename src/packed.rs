//! Event JSON as the store keeps it: LZ4-compressed, for the two places
//! that hold one per event (an outbox entry's body, a history record).
//!
//! Why: sled rewrites a whole leaf (up to 16 entries) every 10 changes to
//! it, so what a removal or an insert costs grows with the size of the
//! entries around it (`bench`: removing a 1,207-byte entry costs sled by
//! itself 4–6 µs and writes about 4.4 KB; a 100-byte one 2–3 µs). An event's
//! JSON shrinks to about 0.57 of its size (its order is listed twice, keys
//! repeat): less to write per delivery and per poll, and less on disk.
//! Compressing costs about 2.5 µs per event when it is committed, and reading
//! it back 0.3 µs.
//!
//! The format is a field of its own, so nothing else changes: a packed
//! value is a 0 byte, then the JSON's length and its LZ4 block
//! (`lz4_flex`'s size-prepended block). JSON never starts with a 0 byte, so
//! values written before this (the JSON itself) are read as they are, and
//! no migration is needed. Short values stay as they are.
//!
//! Use as `#[serde(with = "crate::packed")]` on a `Vec<u8>` of JSON.

use serde::{Deserializer, Serializer, de};

/// Marks a packed value (JSON never starts with it).
const PACKED: u8 = 0;

/// Shorter values are kept as they are: LZ4 saves little on them.
const PACK_FROM: usize = 128;

pub fn serialize<S: Serializer>(json: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(&pack(json))
}

/// What the store keeps for `json`.
pub fn pack(json: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if json.len() < PACK_FROM {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(1 + 4 + json.len() / 2);
    out.push(PACKED);
    out.extend(lz4_flex::compress_prepend_size(json));
    std::borrow::Cow::Owned(out)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_bytes(Visitor)
}

/// The JSON of a stored value, packed or not.
pub fn unpack(stored: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    let Some((&PACKED, packed)) = stored.split_first() else {
        return Ok(std::borrow::Cow::Borrowed(stored));
    };
    let Some((size, block)) = packed.split_first_chunk::<4>() else {
        return Err("a packed event is cut short".into());
    };
    // The length is allocated before the block is read: a damaged one must
    // not ask for gigabytes. LZ4 expands at most 255 to 1.
    let size = u32::from_le_bytes(*size) as usize;
    if size > MAX_UNPACKED || size > block.len().saturating_mul(255) + 16 {
        return Err(format!(
            "a packed event claims {size} bytes from {} packed: damaged",
            block.len()
        ));
    }
    lz4_flex::decompress(block, size)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| format!("a packed event cannot be unpacked: {e}"))
}

/// No event's JSON comes near this.
const MAX_UNPACKED: usize = 16 << 20;

struct Visitor;

impl<'de> de::Visitor<'de> for Visitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("event JSON, packed or not")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        unpack(v).map(|json| json.into_owned()).map_err(E::custom)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        if v.first() == Some(&PACKED) {
            return self.visit_bytes(&v);
        }
        Ok(v)
    }

    /// Formats that write bytes as a sequence of numbers.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element()? {
            v.push(b);
        }
        self.visit_byte_buf(v)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Packed {
        #[serde(with = "super")]
        json: Vec<u8>,
    }

    /// The layout before packing: the JSON as it is.
    #[derive(Serialize)]
    struct Plain<'a> {
        json: &'a Vec<u8>,
    }

    fn event_json() -> Vec<u8> {
        let order = r#"{"id":1001,"orderCode":"20261201_000123","channelName":"스마트스토어","dealName":"무선 키보드 \"K10\" <블랙>"}"#;
        format!(
            r#"{{"id":"g5a3f1e-456000-3","type":"invoice.status_changed","order":{order},"orders":[{order}],"invoice":{{"invoiceId":"456000","status":{{"label":"배송완료"}}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn event_json_is_stored_smaller_and_read_back_the_same() {
        let value = Packed { json: event_json() };
        let stored = postcard::to_stdvec(&value).unwrap();
        assert!(
            stored.len() < value.json.len() * 3 / 4,
            "{} bytes stored for {}",
            stored.len(),
            value.json.len()
        );
        assert_eq!(postcard::from_bytes::<Packed>(&stored).unwrap(), value);
        // Through a format that writes bytes as numbers, too.
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<Packed>(&text).unwrap(), value);
    }

    #[test]
    fn values_stored_before_packing_and_short_ones_are_read_as_they_are() {
        for json in [event_json(), b"{}".to_vec(), Vec::new()] {
            let before = postcard::to_stdvec(&Plain { json: &json }).unwrap();
            assert_eq!(postcard::from_bytes::<Packed>(&before).unwrap().json, json);
        }
        let short = Packed {
            json: b"{\"a\":1}".to_vec(),
        };
        assert_eq!(
            postcard::to_stdvec(&short).unwrap(),
            postcard::to_stdvec(&Plain { json: &short.json }).unwrap()
        );
    }

    #[test]
    fn a_damaged_packed_value_is_an_error_not_a_panic() {
        // The marker, a claimed length of 200 and three bytes of no block.
        let damaged = vec![0, 200, 0, 0, 0, 1, 2, 3];
        let stored = postcard::to_stdvec(&Plain { json: &damaged }).unwrap();
        let e = postcard::from_bytes::<Packed>(&stored).unwrap_err();
        assert!(!e.to_string().is_empty());
        assert!(super::unpack(&damaged).is_err());
        // A length of 4 GiB is refused before anything is allocated.
        let huge = [0, 0xff, 0xff, 0xff, 0xff, 0x10, b'{', b'}'];
        let e = super::unpack(&huge).unwrap_err();
        assert!(e.contains("damaged"), "{e}");
        assert!(super::unpack(&[0, 1]).unwrap_err().contains("cut short"));
    }
}
