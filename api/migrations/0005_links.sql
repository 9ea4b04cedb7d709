-- Data-sharing links between agencies, as a workflow: agency A asks to reach agency B on some
-- ports, for a purpose; B approves (and A's organization too when they are in different
-- organizations). Only an approved link is written into B's Tenant (`network.allowFrom`), and
-- closing it by either side takes it out at once. Rows are never deleted: they are the record of
-- who could reach whom, and when.
create table link (
    link_id uuid primary key default gen_random_uuid(),
    from_tenant_id uuid not null references tenant,
    from_namespace text not null,
    to_tenant_id uuid not null references tenant,
    ports integer[] not null check (cardinality(ports) between 1 and 32 and 0 < all(ports) and 65536 > all(ports)),
    purpose text not null,
    state text not null check (state in ('pending', 'approved', 'rejected', 'cancelled', 'revoked')),
    requested_by text not null,
    provider_approved_by text,
    provider_approved_at timestamptz,
    consumer_approved_by text,
    consumer_approved_at timestamptz,
    closed_by text,
    closed_at timestamptz,
    close_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    foreign key (from_tenant_id, from_namespace) references tenant_namespace (tenant_id, name),
    check (from_tenant_id <> to_tenant_id)
);
create index link_to_idx on link (to_tenant_id, state);
create index link_from_idx on link (from_tenant_id, state);
create index link_list_idx on link (created_at desc, link_id desc);
