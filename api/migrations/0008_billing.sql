-- Rating and invoicing (docs/finance/README.md): rate cards with versions and VAT rates, one
-- invoice per tenant and calendar month (Asia/Ho_Chi_Minh) with its lines, credit notes, the
-- gap-free numbering of both, and monthly budgets with their alerts.
--
-- Money is numeric in đồng (VND); a line's amount and every total are whole đồng. Quantities
-- are integers in base units (millicore-seconds, byte-seconds, count-seconds), numeric(39,0)
-- because a month of a large namespace passes a bigint.
--
-- What must never change is refused by triggers here, not only by the code: a rate card's
-- version or VAT rate once in force, an invoice once issued (only its state moves, along its
-- transitions), and the lines of any invoice that is not a draft.

-- An organization's invoice numbers start with its prefix (NA-2026-000042).
create function derive_invoice_prefix(name text) returns text
language sql immutable as $$
    select upper(string_agg(left(part, 1), '' order by n))
    from regexp_split_to_table(name, '-') with ordinality as p(part, n)
    where part <> ''
$$;

create function free_invoice_prefix(name text) returns text
language plpgsql as $$
declare
    base text := left(coalesce(derive_invoice_prefix(name), 'ORG'), 10);
    candidate text := base;
    n integer := 1;
begin
    while exists (select 1 from organization o where o.invoice_prefix = candidate) loop
        n := n + 1;
        candidate := base || n;
    end loop;
    return candidate;
end
$$;

alter table organization add column invoice_prefix text unique
    check (invoice_prefix ~ '^[A-Z0-9]{1,12}$');
do $$
declare
    r record;
begin
    for r in select organization_id, name from organization order by created_at, organization_id loop
        update organization set invoice_prefix = free_invoice_prefix(r.name)
        where organization_id = r.organization_id;
    end loop;
end
$$;
alter table organization alter column invoice_prefix set not null;

create function organization_invoice_prefix() returns trigger
language plpgsql as $$
begin
    if new.invoice_prefix is null then
        new.invoice_prefix := free_invoice_prefix(new.name);
    end if;
    return new;
end
$$;
create trigger organization_invoice_prefix before insert on organization
    for each row execute function organization_invoice_prefix();

-- A rate card: the platform's default (no organization) or one organization's own, in VND.
-- At most one card per scope; it changes by new versions.
create table rate_card (
    rate_card_id uuid primary key default gen_random_uuid(),
    organization_id uuid references organization,
    name text not null,
    currency text not null default 'VND' check (currency = 'VND'),
    created_at timestamptz not null default now(),
    created_by text not null
);
create unique index rate_card_scope_idx
    on rate_card ((coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid)));

create table rate_card_version (
    rate_card_version_id uuid primary key default gen_random_uuid(),
    rate_card_id uuid not null references rate_card,
    version integer not null check (version > 0),
    -- prices hold from here until the next version's effective_from (a whole hour)
    effective_from timestamptz not null
        check (extract(epoch from effective_from)::bigint % 3600 = 0),
    created_at timestamptz not null default now(),
    created_by text not null,
    unique (rate_card_id, version),
    unique (rate_card_id, effective_from)
);

-- A price per priced unit: cpu per core-hour, memory per GiB-hour, storage per GiB-month,
-- load balancers per item-month, GPUs per item-hour by model (`class`, the extended resource's
-- name). `usage_price`, where given, prices Usage-basis lines instead of `price`.
create table rate_card_price (
    rate_card_version_id uuid not null references rate_card_version,
    resource text not null check (resource in ('cpu', 'memory', 'storage', 'load-balancers', 'gpu')),
    class text not null default '',
    price numeric(20, 6) not null check (price >= 0),
    usage_price numeric(20, 6) check (usage_price >= 0),
    primary key (rate_card_version_id, resource, class),
    check ((resource = 'gpu') = (class <> ''))
);

-- VAT rates of a card, each from its own date: an invoice takes the rate in force at the end
-- of its period (when the month's service is complete).
create table rate_card_vat (
    rate_card_id uuid not null references rate_card,
    effective_from timestamptz not null,
    rate numeric(5, 4) not null check (rate >= 0 and rate < 1),
    created_at timestamptz not null default now(),
    created_by text not null,
    primary key (rate_card_id, effective_from)
);

-- In force means frozen. A new version or VAT rate comes after every existing one; only a
-- card's first may take effect in the past (a card is written before it is used).
create function rate_card_frozen() returns trigger
language plpgsql as $$
declare
    starts timestamptz;
    fresh boolean;
begin
    if tg_table_name = 'rate_card_price' then
        select v.effective_from, v.created_at = now() into starts, fresh from rate_card_version v
        where v.rate_card_version_id = coalesce(new.rate_card_version_id, old.rate_card_version_id);
        -- prices are written with their version, in the version's own transaction
        if starts <= now() and not (tg_op = 'INSERT' and fresh) then
            raise exception 'the prices of a rate card version in force since % cannot change', starts
                using errcode = 'integrity_constraint_violation';
        end if;
        return coalesce(new, old);
    end if;
    if tg_op = 'INSERT' then
        if tg_table_name = 'rate_card_version' then
            if exists (select 1 from rate_card_version v
                       where v.rate_card_id = new.rate_card_id and v.effective_from >= new.effective_from) then
                raise exception 'a new rate card version must take effect after every existing one'
                    using errcode = 'integrity_constraint_violation';
            end if;
            if new.effective_from < now() and exists (
                select 1 from rate_card_version v where v.rate_card_id = new.rate_card_id) then
                raise exception 'a new rate card version cannot take effect in the past (%)', new.effective_from
                    using errcode = 'integrity_constraint_violation';
            end if;
        else
            if exists (select 1 from rate_card_vat v
                       where v.rate_card_id = new.rate_card_id and v.effective_from >= new.effective_from) then
                raise exception 'a new VAT rate must take effect after every existing one'
                    using errcode = 'integrity_constraint_violation';
            end if;
            if new.effective_from < now() and exists (
                select 1 from rate_card_vat v where v.rate_card_id = new.rate_card_id) then
                raise exception 'a new VAT rate cannot take effect in the past (%)', new.effective_from
                    using errcode = 'integrity_constraint_violation';
            end if;
        end if;
        return new;
    end if;
    if old.effective_from <= now() then
        raise exception '% in force since % cannot change', replace(tg_table_name, '_', ' '), old.effective_from
            using errcode = 'integrity_constraint_violation';
    end if;
    return coalesce(new, old);
end
$$;
create trigger rate_card_version_frozen before insert or update or delete on rate_card_version
    for each row execute function rate_card_frozen();
create trigger rate_card_price_frozen before insert or update or delete on rate_card_price
    for each row execute function rate_card_frozen();
create trigger rate_card_vat_frozen before insert or update or delete on rate_card_vat
    for each row execute function rate_card_frozen();

-- Invoices and credit notes. An invoice is one tenant's calendar month; a credit note
-- corrects lines of an issued invoice, with negative amounts.
create table invoice (
    invoice_id uuid primary key default gen_random_uuid(),
    kind text not null check (kind in ('invoice', 'credit-note')),
    organization_id uuid not null references organization,
    tenant_id uuid not null references tenant,
    month text not null check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    period_start timestamptz not null,
    period_end timestamptz not null check (period_end > period_start),
    -- rated up to here (the period's end once the month is over)
    rated_until timestamptz not null,
    state text not null check (state in ('draft', 'issued', 'approved', 'disputed', 'paid')),
    number text,
    -- as the bill shows them
    plan text not null check (plan in ('Reserved', 'Usage')),
    cost_center text not null,
    organization_display_name text not null,
    tenant_display_name text not null,
    currency text not null default 'VND' check (currency = 'VND'),
    subtotal numeric(20, 0) not null,
    vat_rate numeric(5, 4) not null check (vat_rate >= 0 and vat_rate < 1),
    vat numeric(20, 0) not null,
    total numeric(20, 0) not null check (total = subtotal + vat),
    -- seconds of the period in which some metric the bill reads was not metered
    unmetered_seconds bigint not null default 0 check (unmetered_seconds >= 0),
    credits_invoice_id uuid references invoice,
    reason text,
    computed_at timestamptz not null default now(),
    issued_at timestamptz,
    issued_by text,
    approved_at timestamptz,
    approved_by text,
    disputed_at timestamptz,
    disputed_by text,
    dispute_reason text,
    paid_at timestamptz,
    paid_by text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (organization_id, number),
    check ((state = 'draft') = (number is null)),
    check ((state = 'draft') = (issued_at is null)),
    check ((kind = 'credit-note') = (credits_invoice_id is not null)),
    check (kind = 'invoice' or (subtotal <= 0 and vat <= 0)),
    check (kind = 'credit-note' or (subtotal >= 0 and vat >= 0))
);
create unique index invoice_month_idx on invoice (tenant_id, month) where kind = 'invoice';
create index invoice_list_idx on invoice (month desc, organization_id, tenant_id);
create index invoice_credits_idx on invoice (credits_invoice_id) where credits_invoice_id is not null;

create table invoice_line (
    invoice_id uuid not null references invoice on delete cascade,
    line integer not null check (line > 0),
    -- the namespace's name in Kubernetes
    namespace text not null,
    metric text not null,
    -- the GPU model, for GPUs
    class text not null default '',
    basis text not null check (basis in ('reserved', 'usage')),
    period_start timestamptz not null,
    period_end timestamptz not null check (period_end > period_start),
    quantity numeric(39, 0) not null,
    base_unit text not null,
    -- the quantity in the priced unit, for people to read; the amount is computed from the
    -- exact quantity
    priced_quantity numeric(30, 6) not null,
    unit text not null,
    unit_price numeric(20, 6) not null check (unit_price >= 0),
    amount numeric(20, 0) not null,
    rate_card_version_id uuid references rate_card_version,
    unmetered_seconds bigint not null default 0 check (unmetered_seconds >= 0),
    -- a credit note's line: the line of the credited invoice it corrects
    corrects_line integer,
    primary key (invoice_id, line)
);

-- Numbers gap-free per organization, year and kind: taken in the issuing transaction.
create table invoice_number (
    organization_id uuid not null references organization,
    year integer not null,
    kind text not null check (kind in ('invoice', 'credit-note')),
    last integer not null check (last > 0),
    primary key (organization_id, year, kind)
);

-- A draft changes freely and is issued once; from then on only its state moves (issued →
-- approved | disputed, disputed → approved, approved → paid) and nothing is deleted.
create function invoice_immutable() returns trigger
language plpgsql as $$
declare
    moving constant text[] := array['state', 'approved_at', 'approved_by', 'disputed_at',
        'disputed_by', 'dispute_reason', 'paid_at', 'paid_by', 'updated_at'];
begin
    if tg_op = 'DELETE' then
        if old.state <> 'draft' then
            raise exception 'invoice % is %: it cannot be deleted', old.number, old.state
                using errcode = 'integrity_constraint_violation';
        end if;
        return old;
    end if;
    if old.state = 'draft' then
        if new.state not in ('draft', 'issued') then
            raise exception 'a draft invoice cannot become % before it is issued', new.state
                using errcode = 'integrity_constraint_violation';
        end if;
        return new;
    end if;
    if (to_jsonb(new) - moving) is distinct from (to_jsonb(old) - moving) then
        raise exception 'invoice % is %: its content cannot change (corrections are credit notes)', old.number, old.state
            using errcode = 'integrity_constraint_violation';
    end if;
    if new.state <> old.state and (old.state, new.state) not in (
        ('issued', 'approved'), ('issued', 'disputed'), ('disputed', 'approved'), ('approved', 'paid')) then
        raise exception 'invoice % cannot go from % to %', old.number, old.state, new.state
            using errcode = 'integrity_constraint_violation';
    end if;
    return new;
end
$$;
create trigger invoice_immutable before update or delete on invoice
    for each row execute function invoice_immutable();

create function invoice_line_immutable() returns trigger
language plpgsql as $$
declare
    s text;
begin
    select i.state into s from invoice i
    where i.invoice_id = coalesce(new.invoice_id, old.invoice_id);
    -- (a cascade from a deleted draft finds no invoice left)
    if s is not null and s <> 'draft' then
        raise exception 'the lines of an % invoice cannot change (corrections are credit notes)', s
            using errcode = 'integrity_constraint_violation';
    end if;
    return coalesce(new, old);
end
$$;
create trigger invoice_line_immutable before insert or update or delete on invoice_line
    for each row execute function invoice_line_immutable();

-- Months whose invoices are all issued (watermark of the billing loop).
create table billing_close (
    singleton boolean primary key default true check (singleton),
    -- every month before this one is closed: its grace has ended and no draft is left
    open_from text not null check (open_from ~ '^[0-9]{4}-(0[1-9]|1[0-2])$')
);

-- A tenant's monthly budget, in đồng, including VAT.
create table budget (
    tenant_id uuid primary key references tenant,
    amount numeric(20, 0) not null check (amount > 0),
    updated_at timestamptz not null default now(),
    updated_by text not null
);

-- An alert raised once per tenant, month, measure and threshold.
create table budget_alert (
    budget_alert_id bigint generated always as identity primary key,
    tenant_id uuid not null references tenant,
    organization_id uuid not null references organization,
    month text not null,
    measure text not null check (measure in ('spend', 'forecast')),
    threshold integer not null check (threshold in (80, 100)),
    budget numeric(20, 0) not null,
    amount numeric(20, 0) not null,
    raised_at timestamptz not null default now(),
    unique (tenant_id, month, measure, threshold)
);
create index budget_alert_list_idx on budget_alert (raised_at desc, budget_alert_id desc);
