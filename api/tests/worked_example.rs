//! docs/finance/worked-example.md, recomputed: its JSON block's inputs rated by govcloud's own
//! rating code must give exactly the lines and totals it states, and its tables must show the
//! same figures.

use chrono::{DateTime, Utc};
use govcloud_api::domain::money::format_vi;
use govcloud_api::domain::period::month_range;
use govcloud_api::domain::quota::{parse_bytes, parse_cpu};
use govcloud_api::domain::rating::{
    self, Month, NamespaceMonth, Price, QuotaPoint, Resource, Version,
};
use govcloud_tenant::crd::Plan;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

const DOC: &str = include_str!("../../docs/finance/worked-example.md");

fn block() -> Value {
    let start = DOC
        .find("```json worked-example")
        .unwrap_or_else(|| panic!("the worked example has no JSON block"));
    let body = &DOC[start..];
    let body = &body[body.find('\n').unwrap_or(0)..];
    let end = body.find("```").unwrap_or(body.len());
    serde_json::from_str(&body[..end]).unwrap_or_else(|e| panic!("the worked example's block: {e}"))
}

fn at(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .with_timezone(&Utc)
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[test]
fn the_worked_example_is_what_govcloud_computes() {
    let doc = block();
    let quota: Vec<QuotaPoint> = doc["quota"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| QuotaPoint {
            at: at(&q["from"]),
            cpu_milli: parse_cpu(q["cpu"].as_str().unwrap_or_default()).unwrap_or(0),
            memory_bytes: parse_bytes(q["memory"].as_str().unwrap_or_default()).unwrap_or(0),
            storage_bytes: parse_bytes(q["storage"].as_str().unwrap_or_default()).unwrap_or(0),
            load_balancers: q["loadBalancers"].as_i64().unwrap_or(0),
            suspended: false,
        })
        .collect();
    let versions: Vec<Version> = doc["rateCard"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| Version {
            id: uuid::Uuid::new_v4(),
            version: i32::try_from(v["version"].as_i64().unwrap_or(0)).unwrap_or(0),
            effective_from: at(&v["effectiveFrom"]),
            prices: v["prices"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(r, p)| Price {
                    resource: Resource::from_str(r).unwrap_or_else(|e| panic!("{e}")),
                    class: String::new(),
                    price: dec(p),
                    usage_price: None,
                })
                .collect(),
        })
        .collect();
    let month = doc["month"].as_str().unwrap_or_default();
    let (start, end) = month_range(month).unwrap_or_else(|e| panic!("{e}"));
    let in_force =
        rating::versions_in(&versions, &[], start, end).unwrap_or_else(|e| panic!("{e}"));
    let namespaces = [NamespaceMonth {
        namespace: doc["namespace"].as_str().unwrap_or_default().to_string(),
        since: quota[0].at,
        until: None,
        quota,
        hours: Vec::new(),
    }];
    assert_eq!(doc["plan"], "Reserved");
    let lines = rating::rate(&Month {
        plan: Plan::Reserved,
        period: (start, end),
        until: end,
        namespaces: &namespaces,
        versions: &in_force,
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let expected = doc["lines"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (got, want) in lines.iter().zip(&expected) {
        assert_eq!(got.metric, want["metric"].as_str().unwrap_or_default());
        assert_eq!(
            (got.start, got.end),
            (at(&want["from"]), at(&want["to"])),
            "{want}"
        );
        assert_eq!(got.priced_quantity, dec(&want["pricedQuantity"]), "{want}");
        assert_eq!(got.unit_price, dec(&want["unitPrice"]), "{want}");
        assert_eq!(got.amount, dec(&want["amount"]), "{want}");
        // the page's table shows the same amount, written the Vietnamese way
        assert!(
            DOC.contains(&format!("| {} |", format_vi(got.amount))),
            "the table lacks {}",
            format_vi(got.amount)
        );
    }
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let totals = rating::totals(&amounts, dec(&doc["vatRate"])).unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in [
        ("subtotal", totals.subtotal),
        ("vat", totals.vat),
        ("total", totals.total),
    ] {
        assert_eq!(value, dec(&doc[name]), "{name}");
        assert!(
            DOC.contains(&format!("**{} ₫**", format_vi(value))),
            "the page does not show the {name} {}",
            format_vi(value)
        );
    }
}
