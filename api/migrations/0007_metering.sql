-- Metering: the operator's `metering` identity, and the usage ledger.
--
-- The ledger is sized for 20,000 namespaces at 60 s windows (docs/platform/metering.md):
--
-- * `usage_window` holds each window as the operator reported it, one row per namespace and
--   window with one nullable column per metric (null: not metered in that window). Its primary
--   key is the samples' deterministic key, so a sample is stored once; a contradicting one is
--   refused. Rows live only until their clock hour is rolled up (the grace period).
-- * `usage_hour` (partitioned by month) keeps per namespace and hour what a bill and the
--   utilisation report need: integrals of the sampled metrics, max(requested, used) per window
--   for usage-priced plans, and the seconds metered. Reserved quantities are not kept here:
--   they are derived exactly from the quota timeline (`quota_change`).
-- * `usage_rollup` is the watermark: windows before it are closed and refused as late.

alter table principal drop constraint principal_role_check;
alter table principal add constraint principal_role_check
    check (role in ('platform-admin', 'org-admin', 'tenant-admin', 'finance', 'auditor', 'metering'));
alter table principal drop constraint principal_check;
alter table principal add constraint principal_check check (
    (role in ('platform-admin', 'auditor', 'metering') and organization_id is null and tenant_id is null)
    or (role in ('org-admin', 'finance') and organization_id is not null and tenant_id is null)
    or (role = 'tenant-admin' and tenant_id is not null)
);

-- A tenant's namespace as the ledger knows it: a small key for the ledger's many rows.
create table metered_namespace (
    metered_namespace_id integer generated always as identity primary key,
    tenant_id uuid not null references tenant,
    -- the namespace's name in the Tenant (tenant_namespace.name) and in Kubernetes
    namespace text not null,
    kube_name text not null,
    unique (tenant_id, kube_name)
);

-- No foreign key to metered_namespace: ingest takes every id from that table in the same
-- transaction, under the ledger's lock, and metered namespaces are never deleted; the check
-- would cost a fifth of ingest's time (api/benches/metering.rs).
create table usage_window (
    metered_namespace_id integer not null,
    window_start timestamptz not null,
    window_seconds smallint not null check (window_seconds > 0 and 3600 % window_seconds = 0),
    -- integrals over the window in base units: millicore-seconds, byte-seconds, count-seconds
    cpu_reserved bigint check (cpu_reserved >= 0),
    memory_reserved bigint check (memory_reserved >= 0),
    storage_reserved bigint check (storage_reserved >= 0),
    loadbalancers_reserved bigint check (loadbalancers_reserved >= 0),
    cpu_requested bigint check (cpu_requested >= 0),
    memory_requested bigint check (memory_requested >= 0),
    cpu_used bigint check (cpu_used >= 0),
    memory_used bigint check (memory_used >= 0),
    storage_bound bigint check (storage_bound >= 0),
    -- gpu.requested by GPU resource name: {"nvidia.com/gpu": count-seconds}; null: not metered
    gpu_requested jsonb,
    primary key (metered_namespace_id, window_start)
);

-- Hours are counted from 1970-01-01T00:00Z (an hour is the same in UTC and Asia/Ho_Chi_Minh):
-- an integer key keeps the table and its index small. Columns are ordered to pack without padding.
create table usage_hour (
    metered_namespace_id integer not null,
    hour integer not null,
    cpu_requested bigint not null check (cpu_requested >= 0),
    memory_requested bigint not null check (memory_requested >= 0),
    cpu_used bigint not null check (cpu_used >= 0),
    memory_used bigint not null check (memory_used >= 0),
    -- the sum over windows of max(requested, used) where requests were metered (requested
    -- alone where use was not: a floor, never a guess above what was measured)
    cpu_allocated bigint not null check (cpu_allocated >= 0),
    memory_allocated bigint not null check (memory_allocated >= 0),
    storage_bound bigint not null check (storage_bound >= 0),
    -- seconds of the hour metered: cpu and memory requests (as a pair), their use (as a pair),
    -- bound claims; the rest of the hour is unmetered
    requested_seconds smallint not null check (requested_seconds between 0 and 3600),
    used_seconds smallint not null check (used_seconds between 0 and 3600),
    bound_seconds smallint not null check (bound_seconds between 0 and 3600),
    primary key (metered_namespace_id, hour)
) partition by range (hour);

create table usage_hour_gpu (
    metered_namespace_id integer not null,
    hour integer not null,
    resource text not null,
    -- metered in the hour's requested_seconds, like the other requests
    quantity bigint not null check (quantity >= 0),
    primary key (metered_namespace_id, hour, resource)
);

create table usage_rollup (
    singleton boolean primary key default true check (singleton),
    -- every window that starts before this is rolled up into usage_hour, and closed
    rolled_until timestamptz not null
);

-- The one definition of an hour's roll-up: the roll-up writes it into usage_hour, and reads of
-- hours not yet rolled up compute it from the windows. A metric pair (cpu and memory requested;
-- cpu and memory used) counts only in windows where both were metered.
create view usage_window_hour as
select w.metered_namespace_id,
    (extract(epoch from w.window_start)::bigint / 3600)::integer as hour,
    coalesce(sum(w.cpu_requested) filter (where m.requested), 0)::bigint as cpu_requested,
    coalesce(sum(w.memory_requested) filter (where m.requested), 0)::bigint as memory_requested,
    coalesce(sum(w.cpu_used) filter (where m.used), 0)::bigint as cpu_used,
    coalesce(sum(w.memory_used) filter (where m.used), 0)::bigint as memory_used,
    coalesce(sum(greatest(w.cpu_requested, case when m.used then w.cpu_used end))
        filter (where m.requested), 0)::bigint as cpu_allocated,
    coalesce(sum(greatest(w.memory_requested, case when m.used then w.memory_used end))
        filter (where m.requested), 0)::bigint as memory_allocated,
    coalesce(sum(w.storage_bound), 0)::bigint as storage_bound,
    coalesce(sum(w.window_seconds) filter (where m.requested), 0)::smallint as requested_seconds,
    coalesce(sum(w.window_seconds) filter (where m.used), 0)::smallint as used_seconds,
    coalesce(sum(w.window_seconds) filter (where w.storage_bound is not null), 0)::smallint
        as bound_seconds
from usage_window w
cross join lateral (
    select w.cpu_requested is not null and w.memory_requested is not null as requested,
        w.cpu_used is not null and w.memory_used is not null as used
) m
group by 1, 2;

create view usage_window_hour_gpu as
select w.metered_namespace_id,
    (extract(epoch from w.window_start)::bigint / 3600)::integer as hour,
    g.key as resource,
    sum(g.value::bigint)::bigint as quantity
from usage_window w
cross join lateral jsonb_each_text(w.gpu_requested) g
where w.cpu_requested is not null and w.memory_requested is not null
group by 1, 2, 3;
