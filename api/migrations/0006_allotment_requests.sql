-- A province's IT department asks the platform's operator for more (or less) allotment through
-- the same capacity-request workflow as an agency: a request is either for one namespace of a
-- tenant (as before) or for an organization's allotment. Allotment changes have their own
-- timeline, which billing reads like the quota timeline.
alter table capacity_request
    alter column tenant_id drop not null,
    alter column namespace drop not null,
    add column organization_id uuid references organization,
    add column allotment_cpu_milli bigint check (allotment_cpu_milli >= 0),
    add column allotment_memory_bytes bigint check (allotment_memory_bytes >= 0),
    add column allotment_storage_bytes bigint check (allotment_storage_bytes >= 0),
    add constraint capacity_request_subject check (
        (tenant_id is not null and namespace is not null and organization_id is null
            and allotment_cpu_milli is null and allotment_memory_bytes is null and allotment_storage_bytes is null)
        or (tenant_id is null and namespace is null and organization_id is not null
            and allotment_cpu_milli is not null and allotment_memory_bytes is not null and allotment_storage_bytes is not null
            and cpu_milli is null and memory_bytes is null and storage_bytes is null and pods is null and load_balancers is null)
    );
create index capacity_request_organization_idx on capacity_request (organization_id) where organization_id is not null;

create table allotment_change (
    allotment_change_id bigserial primary key,
    organization_id uuid not null references organization,
    effective_at timestamptz not null,
    changed_by text not null,
    capacity_request_id uuid unique references capacity_request,
    from_cpu_milli bigint,
    from_memory_bytes bigint,
    from_storage_bytes bigint,
    to_cpu_milli bigint not null,
    to_memory_bytes bigint not null,
    to_storage_bytes bigint not null,
    created_at timestamptz not null default now()
);
create index allotment_change_organization_idx on allotment_change (organization_id, allotment_change_id);

-- Every organization's timeline starts with the allotment it has.
insert into allotment_change (organization_id, effective_at, changed_by, to_cpu_milli, to_memory_bytes, to_storage_bytes)
select organization_id, created_at, 'system:migration', allotment_cpu_milli, allotment_memory_bytes, allotment_storage_bytes
from organization;
