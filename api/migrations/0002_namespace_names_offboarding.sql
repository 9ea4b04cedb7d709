-- A namespace name belongs to at most one tenant; agencies are offboarded; a tenant the cluster
-- refuses is retried with backoff and holds no allotment.

-- The Kubernetes name of each namespace (`<tenant>-<name>`), unique while the namespace is held:
-- tenant `a` with namespace `b-c` and tenant `a-b` with namespace `c` can never both have it.
-- (Should an older database hold such a pair, this migration stops here: resolve it by hand.)
alter table tenant_namespace add column kube_name text;
update tenant_namespace n set kube_name = t.name || '-' || n.name from tenant t where t.tenant_id = n.tenant_id;
alter table tenant_namespace alter column kube_name set not null;
-- Set once the offboarded tenant is gone from the cluster: then the name is free again.
alter table tenant_namespace add column released_at timestamptz;
create unique index tenant_namespace_kube_name_key on tenant_namespace (kube_name) where released_at is null;

-- Offboarding: asked (DELETE) and then done (the cluster has removed the Tenant and its
-- namespaces). The row stays for the audit log, the quota timeline and billing; tenant names
-- are never reused, so old bills and audit entries name one agency only.
alter table tenant
    add column offboarded_at timestamptz,
    add column offboarded_by text,
    add column gone_at timestamptz,
    add check (gone_at is null or offboarded_at is not null);
create index tenant_offboarding_idx on tenant (tenant_id) where offboarded_at is not null and gone_at is null;

-- Applying to the cluster: consecutive failures, when to try next, and whether the cluster
-- refused the spec itself (4xx), as opposed to being unreachable.
alter table tenant
    add column apply_attempts integer not null default 0 check (apply_attempts >= 0),
    add column next_apply_at timestamptz,
    add column apply_refused boolean not null default false;
