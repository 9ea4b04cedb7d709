-- People and tokens are managed through the API: who registered a principal, and principals
-- removed and tokens revoked without losing the record (the audit log names them). A removed
-- principal's name is never reused, so old audit entries name one person only.
alter table principal
    add column created_by text,
    add column deleted_at timestamptz,
    add column deleted_by text;
create index principal_organization_idx on principal (organization_id, name);
create index principal_tenant_idx on principal (tenant_id) where tenant_id is not null;

alter table api_token
    add column revoked_at timestamptz,
    add column revoked_by text;
create index api_token_principal_idx on api_token (principal_id) where revoked_at is null;

-- What holds capacity, said once: every namespace of a tenant until the tenant is gone from the
-- cluster, unless the cluster refused the tenant before ever running it.
create view held_namespace as
select t.organization_id, t.name as tenant, n.tenant_id, n.name,
       n.cpu_milli, n.memory_bytes, n.storage_bytes, n.pods, n.load_balancers
from tenant_namespace n join tenant t using (tenant_id)
where t.gone_at is null and not (t.apply_refused and t.applied_version = 0);
