-- Agencies are edited, suspended and resumed through the API. A suspended agency keeps its data
-- and quotas but runs nothing new; its reserved charges stop for the suspended time, so every
-- entry of the quota timeline says whether the tenant was suspended from then on.
alter table tenant
    add column suspended_at timestamptz,
    add column suspended_by text,
    add column suspend_reason text;

alter table quota_change add column suspended boolean not null default false;
