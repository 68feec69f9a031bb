//! The byte format of queue events inside event-log records.
//!
//! A record's value is a sequence of events; the storage layer's CRC32C
//! covers the whole record, so an event is never half-present. All integers
//! are little-endian; instants are stored as milliseconds of the node's
//! wall clock (see [`TimeMap`]).
//!
//! ```text
//! 1 Enqueued     u64 id, u64 enqueued_ms, u64 not_before_ms, u32 attempts, u8 flags
//!                (bit 0 group, bit 1 dedup), [u16 len + group], [u16 len + dedup],
//!                u32 header count, per header (u16 len + name, u32 len + value),
//!                u32 len + payload
//! 2 Delivered    u64 id          3 Returned  u64 id       4 Acked  u64 id
//! 5 Nacked       u64 id, u64 not_before_ms, u16 len + reason
//! 6 DeadLettered u64 id, u16 len + reason
//! 7 Redriven     u64 id
//! 8 DedupKept    u16 len + key, u64 id, u64 expires_ms
//! 9 Checkpoint   u64 next_id
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::Event;
use super::types::{Body, MessageId};
use crate::storage::Header;

const ENQUEUED: u8 = 1;
const DELIVERED: u8 = 2;
const RETURNED: u8 = 3;
const ACKED: u8 = 4;
const NACKED: u8 = 5;
const DEAD: u8 = 6;
const REDRIVEN: u8 = 7;
const DEDUP: u8 = 8;
const CHECKPOINT: u8 = 9;

/// Maps the node's monotonic instants to wall-clock milliseconds and back,
/// anchored at one moment. Stored times survive a restart this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeMap {
    /// The anchor, on the monotonic clock.
    pub now: Instant,
    /// The same moment in wall-clock milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

impl TimeMap {
    /// Milliseconds for `t`.
    pub fn to_ms(&self, t: Instant) -> u64 {
        if t >= self.now {
            let d = u64::try_from((t - self.now).as_millis()).unwrap_or(u64::MAX);
            self.wall_ms.saturating_add(d)
        } else {
            let d = u64::try_from((self.now - t).as_millis()).unwrap_or(u64::MAX);
            self.wall_ms.saturating_sub(d)
        }
    }

    /// The instant for `ms`: a time too far ahead for `Instant` stays far
    /// ahead (see [`clock::after`](crate::clock::after)); one too far back
    /// is clamped to `now`.
    pub fn to_instant(&self, ms: u64) -> Instant {
        if ms >= self.wall_ms {
            crate::clock::after(self.now, Duration::from_millis(ms - self.wall_ms))
        } else {
            self.now
                .checked_sub(Duration::from_millis(self.wall_ms - ms))
                .unwrap_or(self.now)
        }
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Longer strings are cut at a char boundary (only reasons can be long:
    // keys are checked at enqueue).
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Append the encoding of `event` to `out`.
pub fn encode(event: &Event, map: &TimeMap, out: &mut Vec<u8>) {
    match event {
        Event::Enqueued {
            id,
            body,
            not_before,
            attempts,
        } => {
            out.push(ENQUEUED);
            out.extend_from_slice(&id.0.to_le_bytes());
            out.extend_from_slice(&map.to_ms(body.enqueued_at).to_le_bytes());
            out.extend_from_slice(&map.to_ms(*not_before).to_le_bytes());
            out.extend_from_slice(&attempts.to_le_bytes());
            let flags = u8::from(body.group.is_some()) | (u8::from(body.dedup_id.is_some()) << 1);
            out.push(flags);
            if let Some(g) = &body.group {
                put_str16(out, g);
            }
            if let Some(d) = &body.dedup_id {
                put_str16(out, d);
            }
            out.extend_from_slice(&(body.headers.len() as u32).to_le_bytes());
            for h in &body.headers {
                put_str16(out, &h.name);
                out.extend_from_slice(&(h.value.len() as u32).to_le_bytes());
                out.extend_from_slice(&h.value);
            }
            out.extend_from_slice(&(body.payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&body.payload);
        }
        Event::Delivered(id) => id_event(out, DELIVERED, *id),
        Event::Returned(id) => id_event(out, RETURNED, *id),
        Event::Acked(id) => id_event(out, ACKED, *id),
        Event::Redriven(id) => id_event(out, REDRIVEN, *id),
        Event::Nacked {
            id,
            not_before,
            reason,
        } => {
            id_event(out, NACKED, *id);
            out.extend_from_slice(&map.to_ms(*not_before).to_le_bytes());
            put_str16(out, reason);
        }
        Event::DeadLettered { id, reason } => {
            id_event(out, DEAD, *id);
            put_str16(out, reason);
        }
        Event::DedupKept { key, id, expires } => {
            out.push(DEDUP);
            put_str16(out, key);
            out.extend_from_slice(&id.0.to_le_bytes());
            out.extend_from_slice(&map.to_ms(*expires).to_le_bytes());
        }
        Event::Checkpoint { next_id } => {
            out.push(CHECKPOINT);
            out.extend_from_slice(&next_id.to_le_bytes());
        }
    }
}

fn id_event(out: &mut Vec<u8>, tag: u8, id: MessageId) {
    out.push(tag);
    out.extend_from_slice(&id.0.to_le_bytes());
}

/// A cursor over one record's bytes; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

const TRUNCATED: &str = "event truncated";

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or(TRUNCATED)?;
        let s = self.b.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        let s: [u8; 4] = self.take(4)?.try_into().map_err(|_| TRUNCATED)?;
        Ok(u32::from_le_bytes(s))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        let s: [u8; 8] = self.take(8)?.try_into().map_err(|_| TRUNCATED)?;
        Ok(u64::from_le_bytes(s))
    }
    fn str16(&mut self) -> Result<&'a str, &'static str> {
        let n = usize::from(self.u16()?);
        std::str::from_utf8(self.take(n)?).map_err(|_| "string is not UTF-8")
    }
    fn id(&mut self) -> Result<MessageId, &'static str> {
        Ok(MessageId(self.u64()?))
    }
}

/// Decode every event of one record's value, in order.
///
/// # Errors
/// A short description of the first malformed event.
pub fn decode_all(value: &[u8], map: &TimeMap) -> Result<Vec<Event>, &'static str> {
    let mut c = Cursor { b: value, at: 0 };
    let mut out = Vec::new();
    while c.at < value.len() {
        out.push(decode_one(&mut c, map)?);
    }
    Ok(out)
}

fn decode_one(c: &mut Cursor<'_>, map: &TimeMap) -> Result<Event, &'static str> {
    Ok(match c.u8()? {
        ENQUEUED => {
            let id = c.id()?;
            let enqueued_at = map.to_instant(c.u64()?);
            let not_before = map.to_instant(c.u64()?);
            let attempts = c.u32()?;
            let flags = c.u8()?;
            if flags > 3 {
                return Err("unknown enqueue flags");
            }
            let group = if flags & 1 != 0 {
                Some(Arc::from(c.str16()?))
            } else {
                None
            };
            let dedup_id = if flags & 2 != 0 {
                Some(Arc::from(c.str16()?))
            } else {
                None
            };
            let count = c.u32()? as usize;
            // Each header takes at least 6 bytes: bound the allocation.
            if count > (c.b.len() - c.at) / 6 {
                return Err("header count exceeds the record");
            }
            let mut headers = Vec::with_capacity(count);
            for _ in 0..count {
                let name = c.str16()?.to_owned();
                let len = c.u32()? as usize;
                headers.push(Header {
                    name,
                    value: c.take(len)?.to_vec(),
                });
            }
            let len = c.u32()? as usize;
            let payload = c.take(len)?.to_vec();
            Event::Enqueued {
                id,
                body: Arc::new(Body {
                    payload,
                    headers,
                    group,
                    dedup_id,
                    enqueued_at,
                }),
                not_before,
                attempts,
            }
        }
        DELIVERED => Event::Delivered(c.id()?),
        RETURNED => Event::Returned(c.id()?),
        ACKED => Event::Acked(c.id()?),
        REDRIVEN => Event::Redriven(c.id()?),
        NACKED => Event::Nacked {
            id: c.id()?,
            not_before: map.to_instant(c.u64()?),
            reason: Arc::from(c.str16()?),
        },
        DEAD => Event::DeadLettered {
            id: c.id()?,
            reason: Arc::from(c.str16()?),
        },
        DEDUP => Event::DedupKept {
            key: Arc::from(c.str16()?),
            id: c.id()?,
            expires: map.to_instant(c.u64()?),
        },
        CHECKPOINT => Event::Checkpoint { next_id: c.u64()? },
        _ => return Err("unknown event tag"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_and_garbage_is_an_error() {
        let now = Instant::now();
        let map = TimeMap {
            now,
            wall_ms: 1_700_000_000_000,
        };
        let ms = Duration::from_millis;
        let body = Arc::new(Body {
            payload: b"hello".to_vec(),
            headers: vec![Header {
                name: "k".into(),
                value: b"v".to_vec(),
            }],
            group: Some(Arc::from("g")),
            dedup_id: Some(Arc::from("d")),
            enqueued_at: now + ms(5),
        });
        let events = vec![
            Event::Enqueued {
                id: MessageId(7),
                body,
                not_before: now + ms(10),
                attempts: 2,
            },
            Event::Delivered(MessageId(7)),
            Event::Returned(MessageId(7)),
            Event::Acked(MessageId(7)),
            Event::Redriven(MessageId(7)),
            Event::Nacked {
                id: MessageId(1),
                not_before: now + ms(3),
                reason: Arc::from("busy"),
            },
            Event::DeadLettered {
                id: MessageId(2),
                reason: Arc::from("poison"),
            },
            Event::DedupKept {
                key: Arc::from("x"),
                id: MessageId(3),
                expires: now + ms(99),
            },
            Event::Checkpoint { next_id: 42 },
        ];
        let mut buf = Vec::new();
        for e in &events {
            encode(e, &map, &mut buf);
        }
        assert_eq!(decode_all(&buf, &map).unwrap(), events);
        for cut in 0..buf.len() {
            // Every prefix either decodes (cut at an event boundary) or errs.
            let _ = decode_all(&buf[..cut], &map);
        }
        assert!(decode_all(&[0xEE], &map).is_err());
        assert!(decode_all(&[ENQUEUED, 1, 2], &map).is_err());
    }
}
