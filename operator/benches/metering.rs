//! The operator's metering cost per window at a province's scale: 20,000 tenant namespaces
//! (10,000 agencies), each with its quota, 5 running pods and a bound claim, 1 % of the pods
//! replaced during each window. Measures what the operator does at each window's end — close
//! the window's integrals and build the samples — and what the watch events cost in between.
//! (Listing PodMetrics from the cluster once per window is not included: that is the cluster's
//! metrics-server, not the operator's, work.)
//!
//!   cargo bench -p govcloud-operator --bench metering [-- NAMESPACES]

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use govcloud_operator::metering::track::{Amount, Amounts, Source, Tracker};
use govcloud_operator::metering::window_samples;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let pods_per_ns = 5;
    let window_ms: i64 = 60_000;
    let start: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap_or_default();
    let t0 = start.timestamp_millis();
    let mut tracker = Tracker::new(t0);
    let mut namespaces = BTreeMap::new();
    let pod = |i: usize| -> Amounts {
        BTreeMap::from([
            (Amount::CpuRequested, 100 + (i % 7) as i64 * 50),
            (Amount::MemoryRequested, (128 + (i % 5) as i64 * 64) << 20),
        ])
    };
    let started = Instant::now();
    for ns in 0..n {
        let name = format!(
            "agency-{}-{}",
            ns / 2,
            if ns % 2 == 0 { "prod" } else { "staging" }
        );
        namespaces.insert(name.clone(), format!("agency-{}", ns / 2));
        tracker.apply(
            Source::Quota,
            &format!("q{ns}"),
            &name,
            BTreeMap::from([
                (Amount::CpuReserved, 4000),
                (Amount::MemoryReserved, 8 << 30),
                (Amount::StorageReserved, 100 << 30),
                (Amount::LoadbalancersReserved, 1),
            ]),
            t0,
        );
        tracker.apply(
            Source::Claim,
            &format!("c{ns}"),
            &name,
            BTreeMap::from([(Amount::StorageBound, 20 << 30)]),
            t0,
        );
        for p in 0..pods_per_ns {
            tracker.apply(Source::Pod, &format!("p{ns}-{p}"), &name, pod(p), t0);
        }
    }
    let listed = started.elapsed();
    let usage: BTreeMap<String, (i64, i64)> = namespaces
        .keys()
        .map(|k| (k.clone(), (250, 512 << 20)))
        .collect();

    let windows = 5;
    let churn = n * pods_per_ns / 100;
    let mut events_time = std::time::Duration::ZERO;
    let mut close_time = std::time::Duration::ZERO;
    let mut samples = 0;
    let names: Vec<String> = namespaces.keys().cloned().collect();
    for w in 0..windows {
        let base = t0 + w as i64 * window_ms;
        let started = Instant::now();
        for k in 0..churn {
            let ns = (k * 7919 + w * 31) % n;
            let at = base + (k as i64 * window_ms) / churn as i64;
            tracker.delete(Source::Pod, &format!("p{ns}-{}", k % pods_per_ns), at);
            tracker.apply(
                Source::Pod,
                &format!("p{ns}-{}", k % pods_per_ns),
                &names[ns],
                pod(k),
                at + 1,
            );
        }
        events_time += started.elapsed();
        let started = Instant::now();
        let integrals = tracker.close(base + window_ms);
        let built = window_samples(
            DateTime::from_timestamp_millis(base).unwrap_or_default(),
            60,
            &namespaces,
            &integrals,
            Some(&usage),
        );
        samples = built.len();
        let body = serde_json::to_vec(&govcloud_tenant::usage::Batch {
            window_seconds: 60,
            samples: built,
        })
        .unwrap_or_default();
        std::hint::black_box(body);
        close_time += started.elapsed();
    }
    println!(
        "metering at {n} namespaces, {} pods, {churn} pods replaced per window, {} cores\n",
        n * pods_per_ns,
        std::thread::available_parallelism().map_or(0, |c| c.get())
    );
    println!("| {:<58} | {:>12} |", "step", "time");
    println!("|{}|{}|", "-".repeat(60), "-".repeat(14));
    println!(
        "| {:<58} | {:>9.1} ms |",
        "first list of every object (once, at start)",
        listed.as_secs_f64() * 1000.0
    );
    println!(
        "| {:<58} | {:>9.1} ms |",
        format!("watch events of one window ({} events)", churn * 2),
        events_time.as_secs_f64() * 1000.0 / windows as f64
    );
    println!(
        "| {:<58} | {:>9.1} ms |",
        format!("window end: integrals, {samples} samples, JSON"),
        close_time.as_secs_f64() * 1000.0 / windows as f64
    );
    println!(
        "\nper 60 s window: {:.2} % of one core",
        (events_time + close_time).as_secs_f64() / windows as f64 / 60.0 * 100.0
    );
}
