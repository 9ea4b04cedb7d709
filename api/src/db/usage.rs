//! The usage ledger: metered namespaces, the windows the operator reports, their hourly roll-up
//! and the watermark that closes rolled-up hours. See `migrations/0007_metering.sql`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use sqlx::PgExecutor;
use uuid::Uuid;

/// Serialises ingestion and roll-up (across API replicas) for the rest of the transaction: a
/// sample's meeting with what is stored is judged on rows no one else is writing.
pub async fn lock_ledger(tx: &mut PgConnection) -> sqlx::Result<()> {
    // "usage" in ASCII names the lock.
    sqlx::query!("select pg_advisory_xact_lock(7565461545)")
        .fetch_one(tx)
        .await?;
    Ok(())
}

/// A tenant namespace the ledger knows, by the names a sample gives.
#[derive(Debug, Clone)]
pub struct MeteredNamespace {
    pub tenant: String,
    pub kube_name: String,
    pub id: i32,
}

/// Finds the namespaces samples name, registering those the ledger does not know yet: a
/// namespace the tenant has (or had, once metered). Pairs naming no such namespace are missing
/// from the answer.
pub async fn metered_namespaces(
    tx: &mut PgConnection,
    tenants: &[String],
    kube_names: &[String],
) -> sqlx::Result<Vec<MeteredNamespace>> {
    let known = find_metered(&mut *tx, tenants, kube_names).await?;
    if known.len() == tenants.len() {
        return Ok(known);
    }
    sqlx::query!(
        r#"insert into metered_namespace (tenant_id, namespace, kube_name)
           select n.tenant_id, n.name, n.kube_name
           from unnest($1::text[], $2::text[]) w(tenant, kube_name)
           join tenant t on t.name = w.tenant
           join tenant_namespace n on n.tenant_id = t.tenant_id and n.kube_name = w.kube_name
           on conflict (tenant_id, kube_name) do nothing"#,
        tenants,
        kube_names,
    )
    .execute(&mut *tx)
    .await?;
    find_metered(&mut *tx, tenants, kube_names).await
}

async fn find_metered(
    tx: &mut PgConnection,
    tenants: &[String],
    kube_names: &[String],
) -> sqlx::Result<Vec<MeteredNamespace>> {
    sqlx::query_as!(
        MeteredNamespace,
        r#"select distinct w.tenant as "tenant!", w.kube_name as "kube_name!",
               m.metered_namespace_id as id
           from unnest($1::text[], $2::text[]) w(tenant, kube_name)
           join tenant t on t.name = w.tenant
           join metered_namespace m on m.tenant_id = t.tenant_id and m.kube_name = w.kube_name"#,
        tenants,
        kube_names,
    )
    .fetch_all(&mut *tx)
    .await
}

/// Windows before this instant are rolled up and closed.
pub async fn rolled_until(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("select rolled_until from usage_rollup")
        .fetch_optional(db)
        .await
}

/// A window row as stored.
#[derive(Debug, Clone)]
pub struct StoredWindow {
    pub metered_namespace_id: i32,
    pub window_start: DateTime<Utc>,
    pub window_seconds: i16,
    pub cpu_reserved: Option<i64>,
    pub memory_reserved: Option<i64>,
    pub storage_reserved: Option<i64>,
    pub loadbalancers_reserved: Option<i64>,
    pub cpu_requested: Option<i64>,
    pub memory_requested: Option<i64>,
    pub cpu_used: Option<i64>,
    pub memory_used: Option<i64>,
    pub storage_bound: Option<i64>,
    /// `{"nvidia.com/gpu": count-seconds}`, as JSON text.
    pub gpu_requested: Option<String>,
}

/// The stored rows among these keys.
pub async fn stored_windows(
    tx: &mut PgConnection,
    ids: &[i32],
    starts: &[DateTime<Utc>],
) -> sqlx::Result<Vec<StoredWindow>> {
    sqlx::query_as!(
        StoredWindow,
        r#"select u.metered_namespace_id, u.window_start, u.window_seconds,
               u.cpu_reserved, u.memory_reserved, u.storage_reserved, u.loadbalancers_reserved,
               u.cpu_requested, u.memory_requested, u.cpu_used, u.memory_used, u.storage_bound,
               u.gpu_requested::text as gpu_requested
           from unnest($1::int[], $2::timestamptz[]) k(id, start)
           join usage_window u on u.metered_namespace_id = k.id and u.window_start = k.start"#,
        ids,
        starts,
    )
    .fetch_all(&mut *tx)
    .await
}

/// Of these (namespace, hour start) pairs, those whose hour holds windows of a length other
/// than `window_seconds`. Every window of a namespace's hour has one length (ingest keeps it
/// so), so one window of the hour tells.
pub async fn hours_of_other_length(
    tx: &mut PgConnection,
    ids: &[i32],
    hours: &[DateTime<Utc>],
    window_seconds: i16,
) -> sqlx::Result<Vec<(i32, DateTime<Utc>)>> {
    let rows = sqlx::query!(
        r#"select k.id as "id!", k.hour as "hour!"
           from unnest($1::int[], $2::timestamptz[]) k(id, hour)
           cross join lateral (
               select u.window_seconds from usage_window u
               where u.metered_namespace_id = k.id
                 and u.window_start >= k.hour and u.window_start < k.hour + interval '1 hour'
               limit 1
           ) one
           where one.window_seconds <> $3"#,
        ids,
        hours,
        window_seconds,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.hour)).collect())
}

/// Window rows to write, column by column.
#[derive(Debug, Default)]
pub struct WindowColumns {
    pub ids: Vec<i32>,
    pub starts: Vec<DateTime<Utc>>,
    pub seconds: Vec<i16>,
    /// One column per scalar metric, in [`govcloud_tenant::usage::Metric::ALL`] order.
    pub values: [Vec<Option<i64>>; 9],
    pub gpu: Vec<Option<String>>,
}

/// Inserts the window rows whose key is not stored yet; answers the keys it inserted.
pub async fn insert_new_windows(
    tx: &mut PgConnection,
    w: &WindowColumns,
) -> sqlx::Result<Vec<(i32, DateTime<Utc>)>> {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8] = &w.values;
    let rows = sqlx::query!(
        r#"insert into usage_window (metered_namespace_id, window_start, window_seconds,
               cpu_reserved, memory_reserved, storage_reserved, loadbalancers_reserved,
               cpu_requested, memory_requested, cpu_used, memory_used, storage_bound,
               gpu_requested)
           select id, start, seconds, c0, c1, c2, c3, c4, c5, c6, c7, c8, gpu::jsonb
           from unnest($1::int[], $2::timestamptz[], $3::int2[], $4::int8[], $5::int8[],
                       $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
                       $12::int8[], $13::text[])
               as r(id, start, seconds, c0, c1, c2, c3, c4, c5, c6, c7, c8, gpu)
           on conflict (metered_namespace_id, window_start) do nothing
           returning metered_namespace_id, window_start"#,
        &w.ids,
        &w.starts,
        &w.seconds,
        c0 as &[Option<i64>],
        c1 as &[Option<i64>],
        c2 as &[Option<i64>],
        c3 as &[Option<i64>],
        c4 as &[Option<i64>],
        c5 as &[Option<i64>],
        c6 as &[Option<i64>],
        c7 as &[Option<i64>],
        c8 as &[Option<i64>],
        &w.gpu as &[Option<String>],
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.metered_namespace_id, r.window_start))
        .collect())
}

/// Deletes window rows, to write them again merged (under the ledger's lock).
pub async fn delete_windows(
    tx: &mut PgConnection,
    ids: &[i32],
    starts: &[DateTime<Utc>],
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"delete from usage_window u
           using unnest($1::int[], $2::timestamptz[]) k(id, start)
           where u.metered_namespace_id = k.id and u.window_start = k.start"#,
        ids,
        starts,
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// The first and last hours holding windows before `until` (none: nothing to roll up).
pub async fn hours_to_roll(
    tx: &mut PgConnection,
    until: DateTime<Utc>,
) -> sqlx::Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    let r = sqlx::query!(
        r#"select min(window_start) as first, max(window_start) as last
           from usage_window where window_start < $1"#,
        until,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(r.first.zip(r.last))
}

/// Creates the month partition of `usage_hour` for hours `[from, to)` if it is missing.
pub async fn ensure_hour_partition(
    tx: &mut PgConnection,
    month: &str,
    from: i64,
    to: i64,
) -> sqlx::Result<()> {
    // Only digits and one dash reach the statement: `month` is YYYY-MM, made by the caller.
    let suffix: String = month
        .chars()
        .map(|c| if c.is_ascii_digit() { c } else { '_' })
        .collect();
    sqlx::query(&format!(
        "create table if not exists usage_hour_{suffix} partition of usage_hour \
         for values from ({from}) to ({to})"
    ))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves every window before `until` (a whole hour) into the hourly roll-up, and closes them.
/// Returns the rows rolled up.
pub async fn roll_up(tx: &mut PgConnection, until: DateTime<Utc>) -> sqlx::Result<u64> {
    let until_hour = i32::try_from(until.timestamp().div_euclid(3600)).unwrap_or(i32::MAX);
    let rows = sqlx::query!(
        r#"insert into usage_hour (metered_namespace_id, hour, cpu_requested, memory_requested,
               cpu_used, memory_used, cpu_allocated, memory_allocated, storage_bound,
               requested_seconds, used_seconds, bound_seconds)
           select metered_namespace_id, hour, cpu_requested, memory_requested, cpu_used,
               memory_used, cpu_allocated, memory_allocated, storage_bound, requested_seconds,
               used_seconds, bound_seconds
           from usage_window_hour where hour < $1"#,
        until_hour,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!(
        r#"insert into usage_hour_gpu (metered_namespace_id, hour, resource, quantity)
           select metered_namespace_id, hour, resource, quantity
           from usage_window_hour_gpu where hour < $1"#,
        until_hour,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("delete from usage_window where window_start < $1", until)
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        r#"insert into usage_rollup (rolled_until) values ($1)
           on conflict (singleton) do update
           set rolled_until = greatest(usage_rollup.rolled_until, excluded.rolled_until)"#,
        until,
    )
    .execute(&mut *tx)
    .await?;
    Ok(rows)
}

/// One namespace-hour of the ledger: rolled up, or computed from its windows.
#[derive(Debug, Clone, Default)]
pub struct HourRow {
    pub metered_namespace_id: i32,
    pub hour: i32,
    pub cpu_requested: i64,
    pub memory_requested: i64,
    pub cpu_used: i64,
    pub memory_used: i64,
    pub cpu_allocated: i64,
    pub memory_allocated: i64,
    pub storage_bound: i64,
    pub requested_seconds: i16,
    pub used_seconds: i16,
    pub bound_seconds: i16,
}

/// The hours `[from, to)` of these namespaces, rolled up or not.
pub async fn hours(
    db: impl PgExecutor<'_>,
    ids: &[i32],
    from: i32,
    to: i32,
) -> sqlx::Result<Vec<HourRow>> {
    sqlx::query_as!(
        HourRow,
        r#"select metered_namespace_id as "metered_namespace_id!", hour as "hour!",
               cpu_requested as "cpu_requested!", memory_requested as "memory_requested!",
               cpu_used as "cpu_used!", memory_used as "memory_used!",
               cpu_allocated as "cpu_allocated!", memory_allocated as "memory_allocated!",
               storage_bound as "storage_bound!", requested_seconds as "requested_seconds!",
               used_seconds as "used_seconds!", bound_seconds as "bound_seconds!"
           from usage_ledger_hour
           where metered_namespace_id = any($1) and hour >= $2 and hour < $3
           order by hour"#,
        ids,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

/// GPU hours `[from, to)` of these namespaces.
#[derive(Debug, Clone)]
pub struct GpuHourRow {
    pub metered_namespace_id: i32,
    pub hour: i32,
    pub resource: String,
    pub quantity: i64,
}

pub async fn gpu_hours(
    db: impl PgExecutor<'_>,
    ids: &[i32],
    from: i32,
    to: i32,
) -> sqlx::Result<Vec<GpuHourRow>> {
    sqlx::query_as!(
        GpuHourRow,
        r#"select metered_namespace_id as "metered_namespace_id!", hour as "hour!",
               resource as "resource!", quantity as "quantity!"
           from usage_ledger_hour_gpu
           where metered_namespace_id = any($1) and hour >= $2 and hour < $3
           order by hour"#,
        ids,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

/// A piece of a namespace's ledger summed: its hours from the `piece`th of the piece starts
/// (counted from 1, as `width_bucket` does) to the next, rolled up or not.
#[derive(Debug, Clone)]
pub struct UsageSumRow {
    pub metered_namespace_id: i32,
    pub piece: i32,
    pub cpu_allocated: Decimal,
    pub memory_allocated: Decimal,
    pub storage_bound: Decimal,
    pub requested_seconds: i64,
    pub bound_seconds: i64,
}

/// The hours `[from, to)` of these namespaces (`None`: of every namespace), summed in the
/// database per piece: a piece starts at each of `starts` (in order, the first of them `from`),
/// as the rating cuts its month. Every namespace is one scan of the month, as a report's
/// aggregation is; a few are read by their index. A month in one piece (no price changed in
/// it: the usual month) is grouped by namespace alone.
pub async fn usage_sums(
    db: impl PgExecutor<'_>,
    ids: Option<&[i32]>,
    from: i32,
    to: i32,
    starts: &[i32],
) -> sqlx::Result<Vec<UsageSumRow>> {
    match ids {
        None if starts.len() <= 1 => {
            sqlx::query_as!(
                UsageSumRow,
                r#"select metered_namespace_id as "metered_namespace_id!", 1 as "piece!",
                       sum(cpu_allocated) as "cpu_allocated!", sum(memory_allocated) as "memory_allocated!",
                       sum(storage_bound) as "storage_bound!", sum(requested_seconds) as "requested_seconds!",
                       sum(bound_seconds) as "bound_seconds!"
                   from usage_ledger_hour
                   where hour >= $1 and hour < $2
                   group by 1"#,
                from,
                to,
            )
            .fetch_all(db)
            .await
        }
        Some(ids) => {
            sqlx::query_as!(
                UsageSumRow,
                r#"select metered_namespace_id as "metered_namespace_id!",
                       width_bucket(hour, $4::int[]) as "piece!",
                       sum(cpu_allocated) as "cpu_allocated!", sum(memory_allocated) as "memory_allocated!",
                       sum(storage_bound) as "storage_bound!", sum(requested_seconds) as "requested_seconds!",
                       sum(bound_seconds) as "bound_seconds!"
                   from usage_ledger_hour
                   where metered_namespace_id = any($1) and hour >= $2 and hour < $3
                   group by 1, 2"#,
                ids,
                from,
                to,
                starts,
            )
            .fetch_all(db)
            .await
        }
        None => {
            sqlx::query_as!(
                UsageSumRow,
                r#"select metered_namespace_id as "metered_namespace_id!",
                       width_bucket(hour, $3::int[]) as "piece!",
                       sum(cpu_allocated) as "cpu_allocated!", sum(memory_allocated) as "memory_allocated!",
                       sum(storage_bound) as "storage_bound!", sum(requested_seconds) as "requested_seconds!",
                       sum(bound_seconds) as "bound_seconds!"
                   from usage_ledger_hour
                   where hour >= $1 and hour < $2
                   group by 1, 2"#,
                from,
                to,
                starts,
            )
            .fetch_all(db)
            .await
        }
    }
}

/// Memory for the hash table of [`every_namespace_sums`]: about 550 bytes a namespace (11 MiB at
/// 20,000 namespaces, measured with `EXPLAIN ANALYZE`), so that PostgreSQL's default (4 MiB)
/// does not spill the month's aggregation to disk in batches; a PostgreSQL takes only what the
/// table needs, up to this, in each process of the (parallel) query.
pub const SUMS_WORK_MEM: &str = "64MB";

/// [`usage_sums`] and [`gpu_sums`] of every namespace, in one transaction given
/// [`SUMS_WORK_MEM`].
pub async fn every_namespace_sums(
    conn: &mut PgConnection,
    from: i32,
    to: i32,
    starts: &[i32],
) -> sqlx::Result<(Vec<UsageSumRow>, Vec<GpuSumRow>)> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("select set_config('work_mem', $1, true)")
        .bind(SUMS_WORK_MEM)
        .execute(&mut *tx)
        .await?;
    let sums = usage_sums(&mut *tx, None, from, to, starts).await?;
    let gpus = gpu_sums(&mut *tx, None, from, to, starts).await?;
    tx.commit().await?;
    Ok((sums, gpus))
}

/// GPU requests of these namespaces' hours `[from, to)` (`None`: of every namespace), summed
/// per piece (as [`usage_sums`]) and model.
#[derive(Debug, Clone)]
pub struct GpuSumRow {
    pub metered_namespace_id: i32,
    pub piece: i32,
    pub resource: String,
    pub quantity: Decimal,
}

pub async fn gpu_sums(
    db: impl PgExecutor<'_>,
    ids: Option<&[i32]>,
    from: i32,
    to: i32,
    starts: &[i32],
) -> sqlx::Result<Vec<GpuSumRow>> {
    sqlx::query_as!(
        GpuSumRow,
        r#"select metered_namespace_id as "metered_namespace_id!",
               width_bucket(hour, $4::int[]) as "piece!", resource as "resource!", sum(quantity) as "quantity!"
           from usage_ledger_hour_gpu
           where ($1::int[] is null or metered_namespace_id = any($1)) and hour >= $2 and hour < $3
           group by 1, 2, 3"#,
        ids,
        from,
        to,
        starts,
    )
    .fetch_all(db)
    .await
}

/// A tenant's namespace as usage reports it: its names, its ledger key once metered, and when it
/// came and went.
#[derive(Debug, Clone)]
pub struct LedgerNamespace {
    pub tenant_id: Uuid,
    pub tenant: String,
    pub namespace: String,
    pub kube_name: String,
    pub metered_namespace_id: Option<i32>,
    /// The first quota the namespace was given (its start in the quota timeline).
    pub since: Option<DateTime<Utc>>,
    /// When the namespace left the tenant, or the tenant the platform.
    pub until: Option<DateTime<Utc>>,
}

/// The namespaces of these tenants, with their place in the ledger.
pub async fn ledger_namespaces(
    db: impl PgExecutor<'_>,
    tenant_ids: &[Uuid],
) -> sqlx::Result<Vec<LedgerNamespace>> {
    sqlx::query_as!(
        LedgerNamespace,
        r#"select t.tenant_id, t.name as tenant, n.name as namespace, n.kube_name,
               m.metered_namespace_id as "metered_namespace_id?",
               (select min(q.effective_at) from quota_change q
                where q.tenant_id = n.tenant_id and q.namespace = n.name) as since,
               coalesce(n.released_at, t.gone_at) as until
           from tenant_namespace n
           join tenant t on t.tenant_id = n.tenant_id
           left join metered_namespace m on m.tenant_id = n.tenant_id and m.kube_name = n.kube_name
           where n.tenant_id = any($1)
           order by t.name, n.name"#,
        tenant_ids,
    )
    .fetch_all(db)
    .await
}

/// A point of the quota timeline: from `effective_at` on, the namespace's quota is this.
#[derive(Debug, Clone)]
pub struct QuotaPoint {
    pub tenant_id: Uuid,
    pub namespace: String,
    pub effective_at: DateTime<Utc>,
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub storage_bytes: i64,
    pub load_balancers: i32,
    /// Whether the tenant was suspended from then on (billing charges no reservation then).
    pub suspended: bool,
}

/// The quota timeline of these tenants up to `until`, in time order per namespace.
pub async fn quota_timeline(
    db: impl PgExecutor<'_>,
    tenant_ids: &[Uuid],
    until: DateTime<Utc>,
) -> sqlx::Result<Vec<QuotaPoint>> {
    sqlx::query_as!(
        QuotaPoint,
        r#"select tenant_id, namespace, effective_at, to_cpu_milli as cpu_milli,
               to_memory_bytes as memory_bytes, to_storage_bytes as storage_bytes,
               to_load_balancers as load_balancers, suspended
           from quota_change
           where tenant_id = any($1) and effective_at < $2
           order by tenant_id, namespace, effective_at, quota_change_id"#,
        tenant_ids,
        until,
    )
    .fetch_all(db)
    .await
}

/// Whether the ledger knows any namespace yet.
pub async fn any_metered(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"select exists(select 1 from metered_namespace) as "any!""#)
        .fetch_one(db)
        .await
}

/// `govcloud dev` only: dates the demo tenants and their first quotas from `from`, so the
/// month of usage it seeds before today falls in their lifetime.
#[cfg(feature = "dev")]
pub async fn date_demo_from(db: &sqlx::PgPool, from: DateTime<Utc>) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        r#"update quota_change q set effective_at = $1
           where q.capacity_request_id is null
             and q.quota_change_id = (select min(f.quota_change_id) from quota_change f
                                      where f.tenant_id = q.tenant_id and f.namespace = q.namespace)"#,
        from,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update tenant set created_at = $1 where created_at > $1",
        from
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
