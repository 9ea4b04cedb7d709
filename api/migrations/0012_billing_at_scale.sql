-- Billing at a province's scale: a month's pass sums the ledger in one scan and writes
-- thousands of drafts' lines in a few statements.

-- The ledger's hours as bills and reports read them: rolled up (usage_hour), and computed from
-- the windows not rolled up yet (usage_window_hour). Filters on a namespace and on hours reach
-- both sides.
create view usage_ledger_hour as
select * from usage_hour
union all
select * from usage_window_hour;

create view usage_ledger_hour_gpu as
select * from usage_hour_gpu
union all
select * from usage_window_hour_gpu;

-- The lines of an invoice that is not a draft still never change, now checked once per
-- statement over the rows it touched instead of once per row (the same refusal, the statement
-- and its transaction undone). A cascade from a deleted draft finds no invoice left.
drop trigger invoice_line_immutable on invoice_line;
drop function invoice_line_immutable();

create function invoice_lines_immutable() returns trigger
language plpgsql as $$
declare
    s text;
begin
    if tg_op in ('INSERT', 'UPDATE') then
        select i.state into s from invoice i
        where i.invoice_id in (select invoice_id from new_lines) and i.state <> 'draft' limit 1;
    end if;
    if s is null and tg_op in ('UPDATE', 'DELETE') then
        select i.state into s from invoice i
        where i.invoice_id in (select invoice_id from old_lines) and i.state <> 'draft' limit 1;
    end if;
    if s is not null then
        raise exception 'the lines of an % invoice cannot change (corrections are credit notes)', s
            using errcode = 'integrity_constraint_violation';
    end if;
    return null;
end
$$;
create trigger invoice_lines_inserted after insert on invoice_line
    referencing new table as new_lines
    for each statement execute function invoice_lines_immutable();
create trigger invoice_lines_updated after update on invoice_line
    referencing old table as old_lines new table as new_lines
    for each statement execute function invoice_lines_immutable();
create trigger invoice_lines_deleted after delete on invoice_line
    referencing old table as old_lines
    for each statement execute function invoice_lines_immutable();
