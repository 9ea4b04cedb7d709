-- govcloud's first schema: organizations, tenants and their namespaces' quotas, capacity
-- requests, the quota timeline, principals with their API tokens, and the audit log.
-- Quantities are integers in base units: cpu in millicores, memory and storage in bytes.

create table organization (
    organization_id uuid primary key default gen_random_uuid(),
    name text not null unique,
    display_name text not null,
    allotment_cpu_milli bigint not null check (allotment_cpu_milli >= 0),
    allotment_memory_bytes bigint not null check (allotment_memory_bytes >= 0),
    allotment_storage_bytes bigint not null check (allotment_storage_bytes >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table tenant (
    tenant_id uuid primary key default gen_random_uuid(),
    name text not null unique,
    organization_id uuid not null references organization,
    display_name text not null,
    -- the rest of the Tenant spec, as the Tenant custom resource spells it
    owners jsonb not null default '[]',
    limits jsonb not null,
    pod_security text not null,
    network jsonb not null,
    billing jsonb not null,
    suspended boolean not null default false,
    -- desired state in the database vs what the cluster has been given
    spec_version bigint not null default 1,
    applied_version bigint not null default 0,
    applied_at timestamptz,
    apply_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index tenant_organization_idx on tenant (organization_id, name);
create index tenant_unapplied_idx on tenant (tenant_id) where applied_version < spec_version;

create table tenant_namespace (
    tenant_id uuid not null references tenant on delete cascade,
    name text not null,
    cpu_milli bigint not null check (cpu_milli >= 0),
    memory_bytes bigint not null check (memory_bytes >= 0),
    storage_bytes bigint not null check (storage_bytes >= 0),
    pods integer not null check (pods >= 0),
    load_balancers integer not null check (load_balancers >= 0),
    primary key (tenant_id, name)
);

create table capacity_request (
    capacity_request_id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant,
    namespace text not null,
    -- the quota asked for; null leaves that resource as it is
    cpu_milli bigint check (cpu_milli >= 0),
    memory_bytes bigint check (memory_bytes >= 0),
    storage_bytes bigint check (storage_bytes >= 0),
    pods integer check (pods >= 0),
    load_balancers integer check (load_balancers >= 0),
    reason text not null,
    effective_from timestamptz not null,
    state text not null check (state in ('pending', 'approved-pending', 'approved', 'rejected', 'cancelled')),
    requested_by text not null,
    decided_by text,
    decided_at timestamptz,
    decision_reason text,
    -- set when the quota change is written to tenant_namespace and the timeline (once)
    quota_written_at timestamptz,
    -- the tenant spec_version that carries the change; approved once the cluster has it
    tenant_version bigint,
    applied_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    foreign key (tenant_id, namespace) references tenant_namespace (tenant_id, name)
);
create index capacity_request_list_idx on capacity_request (created_at desc, capacity_request_id desc);
create index capacity_request_due_idx on capacity_request (effective_from) where state = 'approved-pending';

-- The quota timeline: every change of a namespace's quota, which reserved billing reads.
create table quota_change (
    quota_change_id bigserial primary key,
    tenant_id uuid not null references tenant,
    namespace text not null,
    effective_at timestamptz not null,
    changed_by text not null,
    capacity_request_id uuid references capacity_request,
    from_cpu_milli bigint,
    from_memory_bytes bigint,
    from_storage_bytes bigint,
    from_pods integer,
    from_load_balancers integer,
    to_cpu_milli bigint not null,
    to_memory_bytes bigint not null,
    to_storage_bytes bigint not null,
    to_pods integer not null,
    to_load_balancers integer not null,
    created_at timestamptz not null default now(),
    unique (capacity_request_id)
);
create index quota_change_tenant_idx on quota_change (tenant_id, namespace, effective_at);

create table principal (
    principal_id uuid primary key default gen_random_uuid(),
    name text not null unique,
    role text not null check (role in ('platform-admin', 'org-admin', 'tenant-admin', 'finance', 'auditor')),
    organization_id uuid references organization,
    tenant_id uuid references tenant,
    -- the `sub` claim of the OIDC identity this principal is, if any
    oidc_subject text unique,
    created_at timestamptz not null default now(),
    check (
        (role in ('platform-admin', 'auditor') and organization_id is null and tenant_id is null)
        or (role in ('org-admin', 'finance') and organization_id is not null and tenant_id is null)
        or (role = 'tenant-admin' and tenant_id is not null)
    )
);

create table api_token (
    api_token_id uuid primary key default gen_random_uuid(),
    principal_id uuid not null references principal on delete cascade,
    -- SHA-256 of the token; the token itself is shown once and never stored
    token_hash bytea not null unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz
);

create table audit_event (
    audit_event_id bigserial primary key,
    occurred_at timestamptz not null default now(),
    actor text not null,
    actor_role text not null,
    action text not null,
    object_kind text not null,
    object_id text not null,
    organization_id uuid references organization,
    tenant_id uuid references tenant,
    detail jsonb not null default '{}'
);
create index audit_event_organization_idx on audit_event (organization_id, audit_event_id desc);
