//! Digests: when more than `digest_over` events are due for a chat target at
//! once, they go out as summary messages instead of one message each.
//!
//! Each summary message carries the counts per change kind of the whole
//! burst, then up to [`ITEMS_PER_MESSAGE`] invoices with their change (one
//! Block Kit section each, so a message stays within 50 blocks), then
//! "외 N건" for the invoices that follow in the next messages. Every
//! invoice of the burst is in exactly one message.

use serde_json::{Value, json};

use super::EncodeError;
use super::queue::OutboxEntry;
use crate::event::{Event, EventType};
use crate::render::{Lang, Renderer, type_label, type_label_en};

/// Invoices listed per summary message: header + counts + items + footer
/// stays under Block Kit's 50 blocks.
pub const ITEMS_PER_MESSAGE: usize = 40;

/// One summary message of a burst.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// 1-based.
    pub part: usize,
    pub parts: usize,
    /// Events in the whole burst.
    pub total: usize,
    /// Per change kind, over the whole burst, most frequent first.
    pub counts: Vec<(EventType, usize)>,
    /// Invoices listed in later messages.
    pub after: usize,
}

/// Splits a burst of `n` entries (their kinds given) into summary messages:
/// (range of entries, digest).
pub fn plan(kinds: &[EventType]) -> Vec<(std::ops::Range<usize>, Digest)> {
    let total = kinds.len();
    let mut counts: Vec<(EventType, usize)> = Vec::new();
    for k in kinds {
        match counts.iter_mut().find(|(c, _)| c == k) {
            Some((_, n)) => *n += 1,
            None => counts.push((*k, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let parts = total.div_ceil(ITEMS_PER_MESSAGE).max(1);
    (0..parts)
        .map(|p| {
            let start = p * ITEMS_PER_MESSAGE;
            let end = (start + ITEMS_PER_MESSAGE).min(total);
            (
                start..end,
                Digest {
                    part: p + 1,
                    parts,
                    total,
                    counts: counts.clone(),
                    after: total - end,
                },
            )
        })
        .collect()
}

impl Digest {
    /// What the `…/digest` templates see: `total`, `part`, `parts`,
    /// `counts` (`type`, `label`, `count`), `items` (each an event with its
    /// `labels`) and `more`.
    pub fn context(
        &self,
        renderer: &Renderer,
        entries: &[&OutboxEntry],
        lang: Lang,
    ) -> Result<Value, EncodeError> {
        let events = entries
            .iter()
            .map(|e| super::read_event(e))
            .collect::<Result<Vec<_>, EncodeError>>()?;
        Ok(self.context_for(renderer, &events, lang))
    }

    /// As [`Digest::context`], from events (`check` renders samples with it).
    pub fn context_for(&self, renderer: &Renderer, events: &[Event], lang: Lang) -> Value {
        let ko = lang == Lang::Ko;
        let items: Vec<Value> = events
            .iter()
            .map(|event| {
                let mut v = serde_json::to_value(event).expect("an event serializes");
                v["labels"] = renderer.labels(event, lang);
                v
            })
            .collect();
        let part = format!("{}/{}", self.part, self.parts);
        json!({
            "title": if ko {
                format!("📦 배송 알림 요약 {}건 ({part})", self.total)
            } else {
                format!("📦 Shipment updates: {} ({part})", self.total)
            },
            "footer": match (ko, self.after) {
                (true, 0) => "요약 끝".to_owned(),
                (true, n) => format!("외 {n}건은 다음 메시지에 이어집니다"),
                (false, 0) => "End of summary".to_owned(),
                (false, n) => format!("{n} more in the next message"),
            },
            "total": self.total,
            "part": self.part,
            "parts": self.parts,
            "counts": self.counts.iter().map(|(k, n)| json!({
                "type": k.as_str(),
                "label": if ko { type_label(*k) } else { type_label_en(*k) },
                "count": n,
                "unit": if ko { "건" } else { "" },
            })).collect::<Vec<_>>(),
            "items": items,
            "more": self.after,
        })
    }

    /// A digest of `events` as the first of two messages (for `check` and `preview`).
    pub fn sample(events: &[Event]) -> Digest {
        let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
        let mut d = plan(&kinds).remove(0).1;
        d.parts = 2;
        d.after = events.len();
        d.total = events.len() * 2;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invoice_is_in_exactly_one_message() {
        let kinds: Vec<EventType> = (0..201)
            .map(|i| {
                if i % 3 == 0 {
                    EventType::Canceled
                } else {
                    EventType::StatusChanged
                }
            })
            .collect();
        let plan = plan(&kinds);
        assert_eq!(plan.len(), 6);
        let covered: usize = plan.iter().map(|(r, _)| r.len()).sum();
        assert_eq!(covered, 201);
        assert_eq!(plan[0].1.after, 161);
        assert_eq!(plan[5].1.after, 0);
        assert_eq!(
            plan[0].1.counts,
            [(EventType::StatusChanged, 134), (EventType::Canceled, 67)]
        );
    }
}
