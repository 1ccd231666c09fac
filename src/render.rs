//! Rendering events into message bodies with handlebars.
//!
//! Two registries, because the escaping depends on where a value lands:
//!
//! - `slack/…` templates produce Slack Block Kit JSON: a value is escaped for
//!   Slack's mrkdwn (`&`, `<`, `>`) and then for a JSON string.
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
}

impl Renderer {
    /// The built-in templates, overridden by `*.hbs` files under `dir` (when it exists).
    pub fn new(dir: &Path, statuses: Arc<StatusTable>) -> Result<Renderer, RenderError> {
        let mut r = Renderer {
            slack: registry(slack_escape),
            json: registry(json_escape),
            statuses,
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
    pub fn render(&self, name: &str, event: &Event) -> Result<String, RenderError> {
        let mut context = serde_json::to_value(event).expect("an event serializes");
        context["labels"] = self.labels(event);
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

    /// Human wording of the event, in Korean.
    pub fn labels(&self, event: &Event) -> Value {
        let summary: Vec<String> = event
            .changes
            .iter()
            .map(|c| self.describe_change(c, event))
            .collect();
        json!({
            "type": type_label(event.kind),
            "summary": summary.join(", "),
        })
    }

    fn describe_change(&self, c: &Change, event: &Event) -> String {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        match c.field {
            Field::InvoiceId => format!(
                "송장 할당 ({} {})",
                event
                    .invoice
                    .logistics_partner_name
                    .as_deref()
                    .unwrap_or("택배사 미정"),
                event.invoice.invoice_code.as_deref().unwrap_or("-")
            ),
            Field::CargoStatusCodeKey => format!(
                "{} → {}",
                self.statuses.lookup(text(&c.from).as_deref()).label,
                self.statuses.lookup(text(&c.to).as_deref()).label
            ),
            Field::IsPrinted if c.to == Value::Bool(true) => "송장 출력".into(),
            Field::IsPrinted => "송장 출력 취소 (재출력 대기)".into(),
            Field::IsClosed if c.to == Value::Bool(true) => "출고 마감".into(),
            Field::IsClosed => "출고 마감 취소".into(),
            Field::InvoiceCode => format!(
                "송장번호 {} → {}",
                text(&c.from).unwrap_or_else(|| "-".into()),
                text(&c.to).unwrap_or_else(|| "-".into())
            ),
            Field::Canceled if c.to == Value::Bool(true) => "송장 취소".into(),
            Field::Canceled => "송장 취소 철회".into(),
        }
    }
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

fn is_slack(name: &str) -> bool {
    name.starts_with("slack/")
}

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(escape);
    h
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

/// Text as Slack mrkdwn shows it literally: `&`, `<` and `>` as entities
/// (so `<!channel>` pings nobody).
pub fn mrkdwn_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// handlebars' render errors, with the line and the variable when it has them.
fn describe(e: &handlebars::RenderError) -> String {
    let mut message = e.reason().to_string();
    if let Some(line) = e.line_no {
        message = format!("line {line}: {message}");
    }
    message
}

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
            "id": "456000-3", "type": "invoice.status_changed", "detectedAt": "2026-12-01T10:05:00Z",
            "order": { "id": 1, "orderCode": "20261201_000123", "code": null, "channelName": "쿠팡",
                       "releaseCode": null, "dealName": "키보드 \"K10\" <블랙> & C:\\path", "dealOptionName": null,
                       "orderAt": null, "createdAt": null },
            "invoice": { "invoiceId": "456000", "invoiceCode": "380424004285", "logisticsPartnerName": "CJ대한통운",
                         "cargoStatusCodeKey": "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED",
                         "status": { "label": "배송완료", "category": "delivered", "final": true },
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
        let body = r.unwrap().render("slack/default", &event()).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["text"],
            "[배송 상태 변경] 주문 20261201_000123 · 배송출발 → 배송완료"
        );
        let context = v["blocks"][1]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.contains("키보드 \"K10\" &lt;블랙&gt; &amp; C:\\path"),
            "{context}"
        );
        assert!(!body.contains("&quot;"), "no HTML escaping");
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
            serde_json::from_str(&r.render("webhook/custom", &event()).unwrap()).unwrap();
        assert_eq!(v["name"], "키보드 \"K10\" <블랙> & C:\\path");
        assert_eq!(
            r.render("slack/default", &event()).unwrap(),
            r#"{"text": "override 456000-3"}"#
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
            .render("webhook/typo", &event())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("template `webhook/typo`: line 2") && e.contains("orderCod"),
            "{e}"
        );

        let (_d, r) = renderer_with(&[("webhook/notjson", "{{id}} is not json")]);
        let e = r
            .unwrap()
            .render("webhook/notjson", &event())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not JSON"), "{e}");
        let (_d, r) = renderer_with(&[]);
        assert!(matches!(
            r.unwrap().render("jandi/none", &event()),
            Err(RenderError::Missing(_))
        ));
    }
}
