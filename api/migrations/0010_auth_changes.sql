-- Every change to who may call the API (a token revoked, rotated or deleted; a principal removed
-- or changed) is announced on the channel govcloud_auth when it commits, so each API replica
-- drops the verified tokens it caches. Statement-level: one notification per statement.
create function govcloud_auth_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('govcloud_auth', tg_table_name);
    return null;
end
$$;

create trigger api_token_changed after update or delete on api_token
    for each statement execute function govcloud_auth_changed();
create trigger principal_changed after update or delete on principal
    for each statement execute function govcloud_auth_changed();
