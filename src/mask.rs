//! Masking personal data for people to read: chat messages, the console,
//! `dead-letters show`. The raw values go only to webhook targets that opt
//! in; everywhere a person looks, these are what they see.

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
}
