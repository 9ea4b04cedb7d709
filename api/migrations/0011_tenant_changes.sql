-- Every change to what `GET /v1/tenants/{name}` answers (a tenant, its namespaces, its
-- organization's name) is announced on the channel govcloud_tenants when it commits, so each API
-- replica drops the tenants it caches. Statement-level: one notification per statement.
create function govcloud_tenants_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('govcloud_tenants', tg_table_name);
    return null;
end
$$;

create trigger tenant_changed after insert or update or delete on tenant
    for each statement execute function govcloud_tenants_changed();
create trigger tenant_namespace_changed after insert or update or delete on tenant_namespace
    for each statement execute function govcloud_tenants_changed();
create trigger organization_changed after update or delete on organization
    for each statement execute function govcloud_tenants_changed();
