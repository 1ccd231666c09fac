//! The simulator's HTTP surface (axum).

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::SecondsFormat;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{
    Shared,
    faults::{Fault, FaultRule},
    merchant::{AdvanceOptions, Merchant, SimInvoice, SimOrder},
};
use crate::poomgo::{MAX_PAGE_SIZE, ORDERS_PATH, Person};

/// The documented default page size.
const DEFAULT_PAGE_SIZE: u32 = 20;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(ORDERS_PATH, post(orders))
        .route("/_sim/advance", post(advance))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/stats", axum::routing::get(stats))
        .route("/_sim/key", post(set_key))
        .with_state(shared)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrdersBody {
    page: Option<u32>,
    page_size: Option<u32>,
    #[serde(flatten)]
    query: crate::poomgo::Query,
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "statusCode": status.as_u16(), "message": message })),
    )
        .into_response()
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn orders(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    {
        let mut times = shared.request_times.lock().expect("sim lock");
        if times.len() >= super::REQUEST_TIMES {
            times.pop_front();
        }
        times.push_back(std::time::Instant::now());
    }
    let _in_flight = InFlight::enter(&shared);
    let Some(slot) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|key| shared.by_key(key))
    else {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    slot.requests.fetch_add(1, Ordering::Relaxed);
    // The vendor's own example sends an empty body: that means all defaults.
    let request: OrdersBody = if body.iter().all(u8::is_ascii_whitespace) {
        OrdersBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
        }
    };
    let page = request.page.unwrap_or(1);
    let page_size = request.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return error(
            StatusCode::BAD_REQUEST,
            "page must be >= 1 and pageSize 1..=500",
        );
    }
    let fault = slot.faults.lock().expect("sim lock").take(page);
    if let Some(Fault::Slow { millis }) = fault {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    }
    match fault {
        Some(Fault::Status { status }) => {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "injected fault",
            );
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            return r;
        }
        Some(Fault::NotJson) => {
            return (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response();
        }
        _ => {}
    }
    let json = {
        let merchant = slot.merchant.lock().expect("sim lock");
        let mut total = 0u64;
        let skip = (page as usize - 1) * page_size as usize;
        let mut rows = Vec::with_capacity(page_size as usize);
        for order in merchant.matching(&request.query) {
            if total as usize >= skip && rows.len() < page_size as usize {
                rows.push(RowView::of(order, &merchant));
            }
            total += 1;
        }
        if matches!(fault, Some(Fault::EmptyRows)) {
            rows.clear();
        }
        let page = PageView {
            total: total.to_string(),
            rows,
        };
        match &fault {
            Some(Fault::Mangle {
                row,
                pointer,
                value,
            }) => mangle(&page, *row, pointer, value.as_ref()),
            _ => serde_json::to_vec(&page).expect("a page serializes"),
        }
    };
    match fault {
        Some(Fault::Truncated) => {
            let cut = json.len() / 2;
            let head = Bytes::from(json).slice(..cut);
            // The headers and half the body go out; then the connection breaks.
            let chunks = futures_util::stream::iter([Ok(head), Err(())]).then(|chunk| async move {
                match chunk {
                    Ok(bytes) => Ok(bytes),
                    Err(()) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected truncation",
                        ))
                    }
                }
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(chunks),
            )
                .into_response()
        }
        _ => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
    }
}

/// `?merchant=N` of a control call: which merchant (from 1).
#[derive(Debug, Default, Deserialize)]
struct Which {
    merchant: Option<usize>,
}

impl Which {
    /// The merchants the call is about: the one named, or `all` when none
    /// is (else the first). An index out of range is an answer, not a panic.
    fn slots<'a>(&self, shared: &'a Shared, all: bool) -> Result<Vec<&'a super::Slot>, String> {
        match self.merchant {
            Some(n) if n >= 1 && n <= shared.merchants.len() => Ok(vec![&shared.merchants[n - 1]]),
            Some(n) => Err(format!(
                "merchant {n} does not exist: expected 1 to {}",
                shared.merchants.len()
            )),
            None if all => Ok(shared.merchants.iter().collect()),
            None => Ok(vec![&shared.merchants[0]]),
        }
    }
}

async fn advance(
    State(shared): State<Arc<Shared>>,
    Query(which): Query<Which>,
    body: Bytes,
) -> Response {
    let options: AdvanceOptions = if body.is_empty() {
        AdvanceOptions::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(o) => o,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid advance options: {e}"),
                );
            }
        }
    };
    let slots = match which.slots(&shared, true) {
        Ok(s) => s,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let mut reports: Vec<_> = slots
        .iter()
        .map(|slot| {
            slot.merchant
                .lock()
                .expect("sim lock")
                .advance(options, chrono::Utc::now())
        })
        .collect();
    if reports.len() == 1 {
        return Json(reports.remove(0)).into_response();
    }
    Json(reports).into_response()
}

/// Applies `change` to the merchants a control call names; 204, or 400
/// for a merchant that does not exist.
fn change_each(
    shared: &Shared,
    which: &Which,
    all: bool,
    change: impl Fn(&super::Slot),
) -> Response {
    match which.slots(shared, all) {
        Ok(slots) => {
            slots.into_iter().for_each(change);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(why) => error(StatusCode::BAD_REQUEST, &why),
    }
}

async fn add_fault(
    State(shared): State<Arc<Shared>>,
    Query(which): Query<Which>,
    Json(rule): Json<FaultRule>,
) -> Response {
    change_each(&shared, &which, false, |slot| {
        slot.faults.lock().expect("sim lock").add(rule.clone());
    })
}

async fn clear_faults(State(shared): State<Arc<Shared>>, Query(which): Query<Which>) -> Response {
    change_each(&shared, &which, true, |slot| {
        slot.faults.lock().expect("sim lock").clear();
    })
}

/// The page as JSON with one value inside one row set (or removed).
fn mangle(
    page: &PageView<'_>,
    row: usize,
    pointer: &str,
    value: Option<&serde_json::Value>,
) -> Vec<u8> {
    let mut json = serde_json::to_value(page).expect("a page serializes");
    if let Some(target) = json["rows"].get_mut(row) {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        let parent = if parent.is_empty() {
            Some(target)
        } else {
            target.pointer_mut(parent)
        };
        match (parent, value) {
            (Some(serde_json::Value::Object(map)), Some(v)) => {
                map.insert(key.to_owned(), v.clone());
            }
            (Some(serde_json::Value::Object(map)), None) => {
                map.remove(key);
            }
            (Some(serde_json::Value::Array(items)), Some(v)) => {
                if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *slot = v.clone();
                }
            }
            _ => {}
        }
    }
    serde_json::to_vec(&json).expect("a page serializes")
}

#[derive(Deserialize)]
struct KeyBody {
    api_key: String,
}

async fn set_key(
    State(shared): State<Arc<Shared>>,
    Query(which): Query<Which>,
    Json(body): Json<KeyBody>,
) -> Response {
    change_each(&shared, &which, false, |slot| {
        *slot.api_key.lock().expect("sim lock") = body.api_key.clone();
    })
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let merchants: Vec<serde_json::Value> = shared
        .merchants
        .iter()
        .map(|slot| {
            let merchant = slot.merchant.lock().expect("sim lock");
            let invoices: usize = merchant
                .orders
                .iter()
                .map(|o| o.invoices.len() + o.canceled.len())
                .sum();
            serde_json::json!({
                "orders": merchant.orders.len(),
                "invoices": invoices,
                "requests": slot.requests.load(Ordering::Relaxed),
            })
        })
        .collect();
    let sum = |key: &str| -> u64 { merchants.iter().filter_map(|m| m[key].as_u64()).sum() };
    Json(serde_json::json!({
        "orders": sum("orders"),
        "invoices": sum("invoices"),
        "requests": shared.requests.load(Ordering::Relaxed),
        "max_in_flight": shared.max_in_flight.load(Ordering::Relaxed),
        "merchants": merchants,
    }))
    .into_response()
}

#[derive(Serialize)]
struct PageView<'a> {
    total: String,
    rows: Vec<RowView<'a>>,
}

/// A row exactly as the real API shapes it: amounts as strings, `invoices`
/// null until packed, invoice ids as numbers (as in the vendor's example).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RowView<'a> {
    id: u64,
    channel_name: &'a str,
    order_code: &'a str,
    code: &'a str,
    subsidiary_code: &'a str,
    release_code: &'a str,
    receiver_data: &'a Person,
    customer_data: &'a Person,
    deal_name: &'a str,
    deal_option_name: &'a str,
    created_at: String,
    order_at: String,
    invoices: Option<Vec<InvoiceView<'a>>>,
    canceled_invoices: Vec<InvoiceView<'a>>,
    items: [ItemView<'a>; 1],
    original_data: Option<()>,
    price: String,
    settlement_price: String,
    total_payment_amount: String,
    settlement_group_price: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvoiceView<'a> {
    invoice_id: u64,
    invoice_code: &'a str,
    is_printed: bool,
    is_closed: bool,
    cargo_status_code_key: Option<&'a str>,
    logistics_partner_name: &'a str,
}

#[derive(Serialize)]
struct ItemView<'a> {
    resource_name: &'a str,
    quantity: u32,
}

impl<'a> RowView<'a> {
    fn of(o: &'a SimOrder, merchant: &'a Merchant) -> RowView<'a> {
        // A combined shipment: this order also lists invoices another order holds.
        let linked = |canceled: bool| {
            o.linked
                .iter()
                .filter(move |l| l.canceled == canceled)
                .filter_map(|l| merchant.invoice(l.invoice_id))
                .map(InvoiceView::of)
        };
        let price = o.price.to_string();
        RowView {
            id: o.id,
            channel_name: o.channel,
            order_code: &o.order_code,
            code: &o.code,
            subsidiary_code: "",
            release_code: &o.release_code,
            receiver_data: &o.receiver,
            customer_data: &o.customer,
            deal_name: o.deal,
            deal_option_name: o.option,
            created_at: o.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            order_at: o.order_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            invoices: (o.packed || !o.linked.is_empty()).then(|| {
                o.invoices
                    .iter()
                    .map(InvoiceView::of)
                    .chain(linked(false))
                    .collect()
            }),
            canceled_invoices: o
                .canceled
                .iter()
                .map(InvoiceView::of)
                .chain(linked(true))
                .collect(),
            items: [ItemView {
                resource_name: o.deal,
                quantity: 1,
            }],
            original_data: None,
            settlement_price: price.clone(),
            total_payment_amount: (o.price + 2500).to_string(),
            settlement_group_price: price.clone(),
            price,
        }
    }
}

impl<'a> InvoiceView<'a> {
    fn of(i: &'a SimInvoice) -> InvoiceView<'a> {
        InvoiceView {
            invoice_id: i.id,
            invoice_code: &i.code,
            is_printed: i.printed,
            is_closed: i.closed,
            cargo_status_code_key: i.cargo,
            logistics_partner_name: i.partner,
        }
    }
}
