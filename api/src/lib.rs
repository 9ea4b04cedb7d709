//! govcloud's people-facing side: the HTTP API, authentication and roles, the capacity workflow,
//! rating and invoicing, on PostgreSQL (see `../shared/DESIGN.md` §4–§5). The routes arrive with the
//! API issue; this crate exists now so that the workspace has its final shape.
