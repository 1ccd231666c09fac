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
pub const BUILTIN: &[(&str, &str)] = &[(
    "slack/default",
    include_str!("../templates/slack/default.hbs"),
)];

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
        let registry = if is_slack(name) {
            &self.slack
        } else {
            &self.json
        };
        if !registry.has_template(name) {
            return Err(RenderError::Missing(name.to_owned()));
        }
        let mut context = serde_json::to_value(event).expect("an event serializes");
        context["labels"] = self.labels(event);
        let body = registry
            .render(name, &context)
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
        EventType::Closed => "출고 마감",
        EventType::CodeChanged => "송장번호 변경",
        EventType::StatusChanged => "배송 상태 변경",
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
    json_escape(
        &s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
    )
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
