-- The digest of a draft's content and lines as last written (app::billing): a pass that
-- computes the same draft again leaves it as it is instead of writing it again. Null until a
-- draft is first written; a draft is only ever written with its digest (db::invoices).
alter table invoice add column content_digest bytea;
