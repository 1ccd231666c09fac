//! Masking personal data for people to read: chat messages, the console,
//! `dead-letters show`. The raw values go only to webhook targets that opt
//! in; everywhere a person looks, these are what they see.
//!
//! [`redact`] is the other half: text that came from outside (a receiver's
//! answer, which may echo the body it was sent) loses whatever looks like a
//! phone number, an e-mail address or a resident registration number, and
//! the event's own personal values, before it is kept anywhere.

use serde_json::Value;

/// 홍길동 → 홍*동, 김철 → 김*, 남궁민수 → 남**수. One character stays as is.
pub fn name(s: &str) -> String {
    let chars: Vec<char> = s.trim().chars().collect();
    match chars.len() {
        0 | 1 => chars.iter().collect(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// 010-1234-5678 → 010-****-5678; 01012345678 → 010****5678. Only the
/// middle digits are hidden; anything shorter than 7 digits is hidden whole.
pub fn phone(s: &str) -> String {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    if digits < 7 {
        return s
            .chars()
            .map(|c| if c.is_ascii_digit() { '*' } else { c })
            .collect();
    }
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() == 3 {
        return format!(
            "{}-{}-{}",
            parts[0],
            "*".repeat(parts[1].chars().count()),
            parts[2]
        );
    }
    // No dashes: keep the first 3 and last 4 digits.
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= 3 || seen > digits - 4 {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// 서울특별시 강남구 테헤란로 1, 4층 → 서울특별시 강남구 ***: the city and
/// district stay (enough to tell a region), the rest is hidden.
pub fn address(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.len() <= 2 {
        return "***".into();
    }
    format!("{} {} ***", words[0], words[1])
}

/// Masks a person object (`name`, `phone`, `mobile`, `address`, `postcode`) in place.
pub fn person(v: &mut Value) {
    let Some(map) = v.as_object_mut() else { return };
    for (key, value) in map.iter_mut() {
        let Some(s) = value.as_str() else { continue };
        let masked = match key.as_str() {
            "name" => name(s),
            "phone" | "mobile" => phone(s),
            "address" => address(s),
            "postcode" => "*****".into(),
            _ => continue,
        };
        *value = Value::String(masked);
    }
}

/// `text` with phone numbers, e-mail addresses, resident registration
/// numbers and each of `known` (the event's own personal values) replaced by
/// `<phone>`, `<email>`, `<rrn>` and `<personal>`. Recognised: runs of
/// digits with `-`, `.` or single spaces between them that hold 9 to 11
/// digits starting with 0, or that start with `+82`/`82` (phones), or
/// 6+7 digits (RRN); and `local@domain.tld`. Order codes, invoice codes and
/// statuses (which start with other digits or are longer) stay readable.
pub fn redact(text: &str, known: &[String]) -> String {
    let mut text = text.to_owned();
    for value in known {
        // One or two characters are too common to replace without mangling
        // the rest (a one-letter name would hit every word).
        if value.chars().count() >= 2 {
            text = text.replace(value.as_str(), "<personal>");
        }
    }
    let text = redact_emails(&text);
    redact_numbers(&text)
}

fn redact_emails(text: &str) -> String {
    let in_address = |c: char| c.is_ascii_alphanumeric() || "._%+-@".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(in_address) {
        out.push_str(&rest[..start]);
        let run_len = rest[start..]
            .find(|c: char| !in_address(c))
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + run_len];
        let is_email = run.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
        out.push_str(if is_email { "<email>" } else { run });
        rest = &rest[start + run_len..];
    }
    out.push_str(rest);
    out
}

fn redact_numbers(text: &str) -> String {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit()
            || (bytes[i] == b'+' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
        // A number inside a word (`abc123`, `_000123`) is not one.
        if !starts || (i > 0 && word(bytes[i - 1])) {
            i += 1;
            continue;
        }
        // The run: digit groups with one separator between them; each group
        // as (start, end) byte offsets.
        let mut groups = Vec::new();
        let mut at = i;
        loop {
            let start = at;
            if bytes[at] == b'+' {
                at += 1;
            }
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            groups.push((start, at));
            let joins = at + 1 < bytes.len()
                && matches!(bytes[at], b'-' | b'.' | b' ')
                && bytes[at + 1].is_ascii_digit();
            if !joins {
                break;
            }
            at += 1;
        }
        let end = at;
        if bytes.get(end).is_some_and(|b| word(*b)) {
            // The last group is glued to a word after it (`0a`): part of
            // that word, not of the number.
            groups.pop();
        }
        // Within the run, the longest span of groups from each group on that
        // reads as a phone number or an RRN.
        let mut g = 0;
        while g < groups.len() {
            let found = (g..groups.len()).rev().find_map(|last| {
                let span = &text[groups[g].0..groups[last].1];
                label_of(span, &groups[g..=last], text).map(|label| (last, label))
            });
            match found {
                Some((last, label)) => {
                    out.push_str(&text[copied..groups[g].0]);
                    out.push_str(label);
                    copied = groups[last].1;
                    g = last + 1;
                }
                None => g += 1,
            }
        }
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `<phone>` or `<rrn>` for a span of digit groups that reads as one.
fn label_of(span: &str, groups: &[(usize, usize)], text: &str) -> Option<&'static str> {
    let digits = span.bytes().filter(u8::is_ascii_digit).count();
    let sizes: Vec<usize> = groups
        .iter()
        .map(|(a, b)| text[*a..*b].bytes().filter(u8::is_ascii_digit).count())
        .collect();
    let international = span.starts_with("+82") || (span.starts_with("82") && digits >= 11);
    if sizes == [6, 7] && span.contains('-') || sizes == [13] {
        Some("<rrn>")
    } else if (span.starts_with('0') && (9..=11).contains(&digits) && groups.len() <= 4)
        || (international && (10..=13).contains(&digits) && groups.len() <= 5)
    {
        Some("<phone>")
    } else {
        None
    }
}

/// The string values of an event's `receiver` and `customer` (the personal
/// data an event may carry), for [`redact`].
pub fn personal_values(event_json: &[u8]) -> Vec<String> {
    let Ok(event) = serde_json::from_slice::<Value>(event_json) else {
        return Vec::new();
    };
    let mut values = Vec::new();
    for person in ["receiver", "customer"] {
        if let Some(map) = event.get(person).and_then(Value::as_object) {
            values.extend(map.values().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_phones_and_addresses() {
        assert_eq!(name("홍길동"), "홍*동");
        assert_eq!(name("김철"), "김*");
        assert_eq!(name("남궁민수"), "남**수");
        assert_eq!(name("이"), "이");
        assert_eq!(phone("010-1234-5678"), "010-****-5678");
        assert_eq!(phone("02-123-4567"), "02-***-4567");
        assert_eq!(phone("01012345678"), "010****5678");
        assert_eq!(phone("1234"), "****");
        assert_eq!(
            address("서울특별시 강남구 테헤란로 1, 4층"),
            "서울특별시 강남구 ***"
        );
        let mut p =
            serde_json::json!({"name": "홍길동", "mobile": "010-1234-5678", "postcode": "06236"});
        person(&mut p);
        assert_eq!(
            p,
            serde_json::json!({"name": "홍*동", "mobile": "010-****-5678", "postcode": "*****"})
        );
    }

    #[test]
    fn redaction_hides_what_looks_personal_and_keeps_codes() {
        let known = vec![
            "윤도윤".to_owned(),
            "서울특별시 강남구 테헤란로 1".to_owned(),
        ];
        let echoed = r#"invalid payload near: "receiver":{"name":"윤도윤","mobile":"010-7183-8277","phone":"02 123 4567","address":"서울특별시 강남구 테헤란로 1","email":"yoon.d@example.co.kr","rrn":"900101-1234567","intl":"+82-10-7183-8277","raw":"01071838277"} order 20261201_000123 invoice 380424004285 status 500"#;
        let out = redact(echoed, &known);
        for leak in [
            "윤도윤",
            "7183",
            "8277",
            "123 4567",
            "테헤란로",
            "yoon.d",
            "1234567",
            "01071838277",
        ] {
            assert!(!out.contains(leak), "{leak} in {out}");
        }
        for kept in [
            "20261201_000123",
            "380424004285",
            "status 500",
            "<phone>",
            "<email>",
            "<rrn>",
            "<personal>",
        ] {
            assert!(out.contains(kept), "{kept} not in {out}");
        }
        assert_eq!(
            redact("HTTP 500, v1.2.3, 2026-12-08", &[]),
            "HTTP 500, v1.2.3, 2026-12-08"
        );
        assert_eq!(redact("a@b", &[]), "a@b");
        let values = personal_values(
            br#"{"receiver":{"name":"A B","mobile":"1"},"customer":null,"order":{"x":"y"}}"#,
        );
        assert_eq!(values, vec!["1".to_owned(), "A B".to_owned()]);
    }

    proptest::proptest! {
        #[test]
        fn redaction_never_panics_and_always_hides_a_mobile_number(
            prefix in ".{0,24}",
            suffix in ".{0,24}",
            a in 1000u32..10_000,
            b in 1000u32..10_000,
        ) {
            let phone = format!("010-{a}-{b}");
            let out = redact(&format!("{prefix} {phone} {suffix}"), &[]);
            proptest::prop_assert!(!out.contains(&phone), "{}", out);
            let _ = redact(&prefix, std::slice::from_ref(&suffix));
        }
    }
}
