//! Rendering events into message bodies with handlebars.
//!
//! Two registries, because the escaping depends on where a value lands:
//!
//! - `slack/…` templates produce Slack Block Kit JSON: a value is escaped for
//!   Slack's mrkdwn (`&`, `<`, `>`, and `@here`-style mentions) and then for
//!   a JSON string.
//! - every other template produces JSON (webhook bodies, JANDI): a value is
//!   escaped for a JSON string only.
//!
//! handlebars' default HTML escaping would turn `"` into `&quot;` and leave a
//! `\` alone, corrupting both; here a `"` or `\` in a product name stays
//! valid JSON. Every rendered body is parsed back as JSON before it is sent,
//! so a broken template is an error naming the template, never a bad request.
//!
//! Strict mode is on: a variable that does not exist is an error naming the
//! template, the line and the variable.
//!
//! The default templates are compiled into the binary; a file under
//! `templates_dir` with the same name (e.g. `slack/default.hbs`) overrides one.
//! `templates_dir/console/` is never read here: the console's pages are HTML
//! with their own contexts, compiled in by [`crate::console`], so a copy of
//! the repository's `templates/` folder (which holds them too) is still a
//! valid `templates_dir` and `check` never renders a page as a message.
//!
//! Templates see the event JSON plus `labels`: Korean text computed here (the
//! one place besides [`StatusTable`] that words a change).

use std::{path::Path, sync::Arc};

use handlebars::Handlebars;
use serde_json::{Value, json};

use crate::event::{Change, Event, EventType, Field};
use crate::status::StatusTable;

/// Templates compiled into the binary: (name, source).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "slack/default",
        include_str!("../templates/slack/default.hbs"),
    ),
    (
        "slack/digest",
        include_str!("../templates/slack/digest.hbs"),
    ),
    (
        "jandi/default",
        include_str!("../templates/jandi/default.hbs"),
    ),
    (
        "jandi/digest",
        include_str!("../templates/jandi/digest.hbs"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{name}`: {message}")]
    Template { name: String, message: String },
    #[error("template `{0}` does not exist (looked in templates_dir and the built-in templates)")]
    Missing(String),
    #[error("template `{name}` rendered a body that is not JSON: {reason}")]
    NotJson { name: String, reason: String },
    #[error("cannot read templates in {path}: {reason}")]
    Io { path: String, reason: String },
}

pub struct Renderer {
    slack: Handlebars<'static>,
    json: Handlebars<'static>,
    statuses: Arc<StatusTable>,
    /// Merchant name → display name, when the process serves more than one
    /// (then `labels.merchant` is set and `labels.header` names it).
    merchants: std::collections::HashMap<String, String>,
}

impl Renderer {
    /// The built-in templates, overridden by `*.hbs` files under `dir` (when it exists).
    pub fn new(dir: &Path, statuses: Arc<StatusTable>) -> Result<Renderer, RenderError> {
        let mut r = Renderer {
            slack: registry(slack_escape, &statuses),
            json: registry(json_escape, &statuses),
            statuses,
            merchants: Default::default(),
        };
        for (name, source) in BUILTIN {
            r.register(name, source)?;
        }
        if dir.is_dir() {
            let mut files = Vec::new();
            collect_hbs(dir, dir, &mut files)?;
            for (name, path) in files {
                let source = std::fs::read_to_string(&path).map_err(|e| RenderError::Io {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                r.register(&name, &source)?;
            }
        }
        Ok(r)
    }

    /// Names merchants in messages (only when there is more than one):
    /// `(name, display name)`.
    pub fn name_merchants<'a>(&mut self, names: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.merchants = names
            .into_iter()
            .map(|(n, d)| (n.to_owned(), d.to_owned()))
            .collect();
    }

    fn register(&mut self, name: &str, source: &str) -> Result<(), RenderError> {
        let registry = if is_slack(name) {
            &mut self.slack
        } else {
            &mut self.json
        };
        registry
            .register_template_string(name, source)
            .map_err(|e| RenderError::Template {
                name: name.to_owned(),
                message: e.to_string(),
            })
    }

    /// Every template name known.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .slack
            .get_templates()
            .keys()
            .chain(self.json.get_templates().keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn has(&self, name: &str) -> bool {
        let registry = if is_slack(name) {
            &self.slack
        } else {
            &self.json
        };
        registry.has_template(name)
    }

    /// Renders `name` for `event`; the result is checked to be JSON.
    pub fn render(&self, name: &str, event: &Event, lang: Lang) -> Result<String, RenderError> {
        let mut context = serde_json::to_value(event).expect("an event serializes");
        context["labels"] = self.labels(event, lang);
        context["lang"] = json!(match lang {
            Lang::Ko => "ko",
            Lang::En => "en",
        });
        self.render_value(name, &context)
    }

    /// Renders `name` for any context; the result is checked to be JSON.
    pub fn render_value(&self, name: &str, context: &Value) -> Result<String, RenderError> {
        let registry = if is_slack(name) {
            &self.slack
        } else {
            &self.json
        };
        if !registry.has_template(name) {
            return Err(RenderError::Missing(name.to_owned()));
        }
        let body = registry
            .render(name, context)
            .map_err(|e| RenderError::Template {
                name: name.to_owned(),
                message: describe(&e),
            })?;
        serde_json::from_str::<Value>(&body).map_err(|e| RenderError::NotJson {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(body)
    }

    /// Human wording of the event in `lang`: what templates see as `labels`
    /// (`type`, `summary`, `emoji`, `header`, `status`, `status_emoji`,
    /// `color`, `detected`, and `field.*` titles).
    pub fn labels(&self, event: &Event, lang: Lang) -> Value {
        let ko = lang == Lang::Ko;
        let summary: Vec<String> = event
            .changes
            .iter()
            .map(|c| self.describe_change(c, event, lang))
            .collect();
        let summary = summary.join(", ");
        let status = &event.invoice.status;
        let emoji = match event.kind {
            EventType::StatusChanged if !status.emoji.is_empty() => status.emoji.as_str(),
            other => type_emoji(other),
        };
        let order = event.order.order_code.as_deref().unwrap_or("-");
        let category: crate::status::Category = status
            .category
            .parse()
            .unwrap_or(crate::status::Category::Unknown);
        let field = |k: &str, e: &str| if ko { k.to_owned() } else { e.to_owned() };
        let merchant = self.merchants.get(&event.merchant);
        let header = match merchant {
            Some(m) => format!("{emoji} [{m}] {order} {summary}"),
            None => format!("{emoji} {order} {summary}"),
        };
        json!({
            "type": if ko { type_label(event.kind) } else { type_label_en(event.kind) },
            "summary": summary,
            "emoji": emoji,
            "merchant": merchant,
            "header": header,
            "status": if ko || status.label_en.is_empty() { &status.label } else { &status.label_en },
            "status_emoji": status.emoji,
            "color": category.color(),
            "detected": kst(&event.detected_at.to_rfc3339()).unwrap_or_default(),
            "field": {
                "channel": field("판매처", "Channel"),
                "product": field("상품", "Product"),
                "option": field("옵션", "Option"),
                "courier": field("택배사 · 송장번호", "Courier · tracking no."),
                "status": field("배송 상태", "Status"),
                "recipient": field("받는 분", "Recipient"),
                "time": field("감지 시각 (KST)", "Detected (KST)"),
                "orders": field("합배송 주문", "Combined orders"),
                "event": field("이벤트", "Event"),
            },
        })
    }

    fn status_word(&self, code: Option<&str>, closed: bool, lang: Lang) -> String {
        let s = self.statuses.lookup(code, closed);
        if lang == Lang::Ko || s.label_en.is_empty() {
            s.label
        } else {
            s.label_en
        }
    }

    fn describe_change(&self, c: &Change, event: &Event, lang: Lang) -> String {
        let ko = lang == Lang::Ko;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let closed = event.invoice.is_closed == Some(true);
        let set = c.to == Value::Bool(true);
        let pick = |k: &'static str, e: &'static str| if ko { k } else { e }.to_owned();
        match c.field {
            Field::InvoiceId => format!(
                "{} ({} {})",
                pick("송장 할당", "Invoice assigned"),
                event
                    .invoice
                    .logistics_partner_name
                    .clone()
                    .unwrap_or_else(|| pick("택배사 미정", "courier unknown")),
                event.invoice.invoice_code.as_deref().unwrap_or("-")
            ),
            Field::CargoStatusCodeKey => format!(
                "{} → {}",
                self.status_word(text(&c.from).as_deref(), closed, lang),
                self.status_word(text(&c.to).as_deref(), closed, lang)
            ),
            Field::IsPrinted if set => pick("송장 출력", "Label printed"),
            Field::IsPrinted => pick(
                "송장 출력 취소 (재출력 대기)",
                "Label print undone (reprint pending)",
            ),
            Field::IsClosed if set => pick("출고 마감", "Closed (handed to the courier)"),
            Field::IsClosed => pick("출고 마감 취소", "Close undone"),
            Field::InvoiceCode => format!(
                "{} {} → {}",
                pick("송장번호", "Tracking no."),
                text(&c.from).unwrap_or_else(|| "-".into()),
                text(&c.to).unwrap_or_else(|| "-".into())
            ),
            Field::Canceled if set => pick("송장 취소", "Invoice canceled"),
            Field::Canceled => pick(
                "취소 철회 (배송 재개)",
                "Cancellation withdrawn (shipment live again)",
            ),
        }
    }
}

/// The language of a target's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Ko,
    En,
}

pub fn type_label(kind: EventType) -> &'static str {
    match kind {
        EventType::Assigned => "송장 할당",
        EventType::Printed => "송장 출력",
        EventType::Unprinted => "송장 출력 취소",
        EventType::Closed => "출고 마감",
        EventType::Unclosed => "출고 마감 취소",
        EventType::CodeChanged => "송장번호 변경",
        EventType::StatusChanged => "배송 상태 변경",
        EventType::Uncanceled => "취소 철회",
        EventType::Canceled => "송장 취소",
    }
}

pub fn type_label_en(kind: EventType) -> &'static str {
    match kind {
        EventType::Assigned => "Invoice assigned",
        EventType::Printed => "Label printed",
        EventType::Unprinted => "Label print undone",
        EventType::Closed => "Closed",
        EventType::Unclosed => "Close undone",
        EventType::CodeChanged => "Tracking number changed",
        EventType::StatusChanged => "Status changed",
        EventType::Uncanceled => "Cancellation withdrawn",
        EventType::Canceled => "Invoice canceled",
    }
}

fn type_emoji(kind: EventType) -> &'static str {
    match kind {
        EventType::Assigned => "🆕",
        EventType::Printed => "🖨️",
        EventType::Unprinted | EventType::Unclosed | EventType::CodeChanged => "🔁",
        EventType::Closed => "📦",
        EventType::StatusChanged => "🚚",
        EventType::Uncanceled => "♻️",
        EventType::Canceled => "❌",
    }
}

/// An RFC 3339 time as Korea time, `2026-12-01 19:05`.
pub fn kst(time: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    Some(
        t.with_timezone(&crate::poomgo::kst())
            .format("%Y-%m-%d %H:%M")
            .to_string(),
    )
}

/// At most `max` characters, ending in "…" when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn is_slack(name: &str) -> bool {
    name.starts_with("slack/")
}

fn registry(escape: fn(&str) -> String, statuses: &Arc<StatusTable>) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(escape);
    helpers::register(&mut h, statuses.clone());
    h
}

/// The template helpers, documented in docs/messages.md with an example each.
/// Every helper takes null or a missing value as "nothing" and gives "".
mod helpers {
    use std::sync::Arc;

    use handlebars::{
        Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, ScopedJson,
    };
    use serde_json::Value;

    use crate::status::StatusTable;

    /// A helper that is a plain function of its parameters' values.
    struct Pure<F>(F);

    impl<F> HelperDef for Pure<F>
    where
        F: Fn(&[Value]) -> Value + Send + Sync,
    {
        fn call_inner<'reg: 'rc, 'rc>(
            &self,
            h: &Helper<'rc>,
            _: &'reg Handlebars<'reg>,
            _: &'rc Context,
            _: &mut RenderContext<'reg, 'rc>,
        ) -> Result<ScopedJson<'rc>, RenderError> {
            let params: Vec<Value> = h.params().iter().map(|p| p.value().clone()).collect();
            Ok(ScopedJson::Derived((self.0)(&params)))
        }
    }

    fn text(v: Option<&Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn en(params: &[Value], at: usize) -> bool {
        params.get(at).and_then(Value::as_str) == Some("en")
    }

    pub fn register(h: &mut Handlebars<'static>, statuses: Arc<StatusTable>) {
        let s = statuses.clone();
        // {{status_label invoice.cargoStatusCodeKey}} / {{status_label code "en"}}
        h.register_helper(
            "status_label",
            Box::new(Pure(move |p: &[Value]| {
                let info = s.lookup(text(p.first()).as_deref(), true);
                Value::String(if en(p, 1) { info.label_en } else { info.label })
            })),
        );
        let s = statuses.clone();
        h.register_helper(
            "status_emoji",
            Box::new(Pure(move |p: &[Value]| {
                Value::String(s.lookup(text(p.first()).as_deref(), true).emoji)
            })),
        );
        let s = statuses.clone();
        h.register_helper(
            "status_category",
            Box::new(Pure(move |p: &[Value]| {
                Value::String(s.lookup(text(p.first()).as_deref(), true).category)
            })),
        );
        let s = statuses;
        // {{tracking_url invoice.logisticsPartnerName invoice.invoiceCode}}
        h.register_helper(
            "tracking_url",
            Box::new(Pure(move |p: &[Value]| {
                Value::String(
                    s.tracking_url(text(p.first()).as_deref(), text(p.get(1)).as_deref())
                        .unwrap_or_default(),
                )
            })),
        );
        // {{kst detectedAt}} → 2026-12-01 19:05
        h.register_helper(
            "kst",
            Box::new(Pure(|p: &[Value]| {
                Value::String(
                    text(p.first())
                        .and_then(|t| super::kst(&t))
                        .unwrap_or_default(),
                )
            })),
        );
        h.register_helper(
            "mask_name",
            Box::new(Pure(|p: &[Value]| {
                Value::String(
                    text(p.first())
                        .map(|s| crate::mask::name(&s))
                        .unwrap_or_default(),
                )
            })),
        );
        h.register_helper(
            "mask_phone",
            Box::new(Pure(|p: &[Value]| {
                Value::String(
                    text(p.first())
                        .map(|s| crate::mask::phone(&s))
                        .unwrap_or_default(),
                )
            })),
        );
        // {{truncate order.dealName 40}}
        h.register_helper(
            "truncate",
            Box::new(Pure(|p: &[Value]| {
                let max = p.get(1).and_then(Value::as_u64).unwrap_or(100) as usize;
                Value::String(
                    text(p.first())
                        .map(|s| super::truncate(&s, max))
                        .unwrap_or_default(),
                )
            })),
        );
        // {{{json order}}}: the value as JSON (triple braces: no escaping).
        h.register_helper(
            "json",
            Box::new(Pure(|p: &[Value]| {
                Value::String(
                    serde_json::to_string(p.first().unwrap_or(&Value::Null))
                        .expect("JSON serializes"),
                )
            })),
        );
    }
}

/// A value inside a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_owned()
}

/// A value inside Slack mrkdwn inside a JSON string literal.
pub fn slack_escape(s: &str) -> String {
    json_escape(&mrkdwn_escape(s))
}

/// Text as Slack mrkdwn shows it literally: `&`, `<` and `>` as entities (so
/// `<!channel>` pings nobody), and `@here`, `@channel`, `@everyone` with a
/// zero-width space after the `@`, so no client turns them into a ping.
pub fn mrkdwn_escape(s: &str) -> String {
    let mut out = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if out.contains('@') {
        for word in [
            "here", "channel", "everyone", "Here", "Channel", "Everyone", "HERE", "CHANNEL",
            "EVERYONE",
        ] {
            out = out.replace(&format!("@{word}"), &format!("@\u{200B}{word}"));
        }
    }
    out
}

/// handlebars' render errors, with the line and the variable when it has them.
fn describe(e: &handlebars::RenderError) -> String {
    let mut message = e.reason().to_string();
    if let Some(line) = e.line_no {
        message = format!("line {line}: {message}");
    }
    message
}

/// The folder under `templates_dir` that holds the console's pages, which
/// are not message templates (see the module docs).
const CONSOLE_DIR: &str = "console";

fn collect_hbs(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), RenderError> {
    let io = |e: std::io::Error| RenderError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            if dir == root && path.file_name().is_some_and(|n| n == CONSOLE_DIR) {
                continue;
            }
            collect_hbs(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "hbs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        serde_json::from_value(json!({
            "id": "g1-456000-3", "type": "invoice.status_changed", "detectedAt": "2026-12-01T10:05:00Z",
            "order": { "id": 1, "orderCode": "20261201_000123", "code": null, "channelName": "쿠팡",
                       "releaseCode": null, "dealName": "키보드 \"K10\" <블랙> & C:\\path @here", "dealOptionName": null,
                       "orderAt": null, "createdAt": null },
            "invoice": { "invoiceId": "456000", "invoiceCode": "380424004285", "logisticsPartnerName": "CJ대한통운",
                         "trackingUrl": "https://trace.cjlogistics.com/next/tracking.html?wblNo=380424004285",
                         "cargoStatusCodeKey": "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED",
                         "status": { "label": "배송완료", "labelEn": "Delivered", "category": "delivered", "final": true, "emoji": "✅" },
                         "isPrinted": true, "isClosed": true, "canceled": false },
            "changes": [ { "field": "cargoStatusCodeKey", "from": "INVOICE_CARGO_STATUS_OUTFORDELIVERY",
                           "to": "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED" } ]
        }))
        .unwrap()
    }

    fn renderer_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Renderer, RenderError>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(format!("{name}.hbs"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let r = Renderer::new(dir.path(), Arc::new(StatusTable::default()));
        (dir, r)
    }

    #[test]
    fn slack_default_is_valid_json_with_escaped_mrkdwn() {
        let (_d, r) = renderer_with(&[]);
        let body = r
            .unwrap()
            .render("slack/default", &event(), Lang::Ko)
            .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "✅ 20261201_000123 배송출발 → 배송완료");
        assert_eq!(v["blocks"][0]["text"]["text"], v["text"]);
        let product = v["blocks"][1]["fields"][2]["text"].as_str().unwrap();
        assert!(
            product.contains("키보드 \"K10\" &lt;블랙&gt; &amp; C:\\path @\u{200B}here"),
            "{product}"
        );
        let courier = v["blocks"][1]["fields"][4]["text"].as_str().unwrap();
        assert!(
            courier.ends_with("CJ대한통운 <https://trace.cjlogistics.com/next/tracking.html?wblNo=380424004285|380424004285>"),
            "{courier}"
        );
        assert!(!body.contains("&quot;"), "no HTML escaping");
    }

    #[test]
    fn english_labels_for_english_targets() {
        let (_d, r) = renderer_with(&[]);
        let body = r
            .unwrap()
            .render("slack/default", &event(), Lang::En)
            .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "✅ 20261201_000123 Out for delivery → Delivered");
        assert!(
            v["blocks"][1]["fields"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Status*")
        );
    }

    #[test]
    fn helpers_do_what_the_readme_says() {
        let (_d, r) = renderer_with(&[(
            "webhook/helpers",
            r#"{"label": "{{status_label invoice.cargoStatusCodeKey}}", "en": "{{status_label invoice.cargoStatusCodeKey "en"}}",
                "emoji": "{{status_emoji invoice.cargoStatusCodeKey}}", "category": "{{status_category "INVOICE_CARGO_STATUS_ATTEMPTFAIL"}}",
                "null": "{{status_label null}}", "kst": "{{kst detectedAt}}",
                "url": "{{tracking_url "대한통운" invoice.invoiceCode}}", "none": "{{tracking_url "경동택배" "1"}}",
                "name": "{{mask_name "홍길동"}}", "short": "{{mask_name "김철"}}", "phone": "{{mask_phone "010-1234-5678"}}",
                "cut": "{{truncate order.dealName 5}}", "order": {{{json order.orderCode}}}}"#,
        )]);
        let v: Value = serde_json::from_str(
            &r.unwrap()
                .render("webhook/helpers", &event(), Lang::Ko)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "label": "배송완료", "en": "Delivered", "emoji": "✅", "category": "failed_attempt",
                "null": "택배사 연동 대기", "kst": "2026-12-01 19:05",
                "url": "https://trace.cjlogistics.com/next/tracking.html?wblNo=380424004285", "none": "",
                "name": "홍*동", "short": "김*", "phone": "010-****-5678",
                "cut": "키보드 …", "order": "20261201_000123"
            })
        );
    }

    #[test]
    fn json_templates_escape_for_json_only_and_override_builtins() {
        let (_d, r) = renderer_with(&[
            (
                "webhook/custom",
                r#"{"name": "{{order.dealName}}", "status": "{{invoice.status.label}}"}"#,
            ),
            ("slack/default", r#"{"text": "override {{id}}"}"#),
        ]);
        let r = r.unwrap();
        let v: Value =
            serde_json::from_str(&r.render("webhook/custom", &event(), Lang::Ko).unwrap()).unwrap();
        assert_eq!(v["name"], "키보드 \"K10\" <블랙> & C:\\path @here");
        assert_eq!(
            r.render("slack/default", &event(), Lang::Ko).unwrap(),
            r#"{"text": "override g1-456000-3"}"#
        );
    }

    #[test]
    fn template_errors_name_the_template_line_and_variable() {
        let (_d, r) = renderer_with(&[("webhook/broken", "{\n\"a\": \"{{#if}}\"\n}")]);
        let e = r.err().unwrap().to_string();
        assert!(e.starts_with("template `webhook/broken`:"), "{e}");

        let (_d, r) = renderer_with(&[("webhook/typo", "{\n\"a\": \"{{order.orderCod}}\"\n}")]);
        let e = r
            .unwrap()
            .render("webhook/typo", &event(), Lang::Ko)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("template `webhook/typo`: line 2") && e.contains("orderCod"),
            "{e}"
        );

        let (_d, r) = renderer_with(&[("webhook/notjson", "{{id}} is not json")]);
        let e = r
            .unwrap()
            .render("webhook/notjson", &event(), Lang::Ko)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not JSON"), "{e}");
        let (_d, r) = renderer_with(&[]);
        assert!(matches!(
            r.unwrap().render("jandi/none", &event(), Lang::Ko),
            Err(RenderError::Missing(_))
        ));
    }
}
