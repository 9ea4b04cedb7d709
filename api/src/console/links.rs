//! Data-sharing links between agencies: pending and open, the incoming ones to approve or
//! reject, and the form an agency asks for one with.

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use crate::app;
use crate::app::links::{Filter, LinkFrom, LinkRow, LinkTo, NewLinkDoc};
use crate::console::session::{ConsoleError, Ctx, Lang, Posted};
use crate::console::ui::{self, Cell, Table};
use crate::domain::link::{Approval, LinkState};
use crate::domain::principal::Role;

fn state_name(l: Lang, s: LinkState) -> &'static str {
    match s {
        LinkState::Pending => l.t("Chờ duyệt", "Pending"),
        LinkState::Approved => l.t("Đang mở", "Open"),
        LinkState::Rejected => l.t("Từ chối", "Rejected"),
        LinkState::Cancelled => l.t("Đã hủy", "Cancelled"),
        LinkState::Revoked => l.t("Đã đóng", "Closed"),
    }
}

fn awaiting(l: Lang, r: &LinkRow) -> String {
    app::links::awaiting(r)
        .into_iter()
        .map(|a| match a {
            Approval::Provider => l.t("cơ quan cung cấp", "the providing agency"),
            Approval::Consumer => l.t("tổ chức của bên dùng", "the consumer's organization"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
pub struct ListQuery {
    tenant: Option<String>,
}

/// `/links`.
pub async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let rows = app::links::list(
        &ctx.state,
        &ctx.caller,
        Filter {
            tenant: q.tenant.as_deref().filter(|t| !t.is_empty()),
            state: None,
            after: None,
            limit: 500,
        },
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    let acts = ctx.is(&[Role::PlatformAdmin, Role::OrgAdmin, Role::TenantAdmin]);
    let mut head = vec![
        l.t("Bên dùng (namespace)", "Consumer (namespace)"),
        l.t("Bên cung cấp", "Provider"),
        l.t("Cổng", "Ports"),
        l.t("Mục đích", "Purpose"),
        l.t("Trạng thái", "State"),
        l.t("Chờ", "Waiting for"),
        l.t("Người yêu cầu", "Asked by"),
        l.t("Lúc", "At"),
    ];
    if acts {
        head.push(l.t("Thao tác", "Action"));
    }
    let mut t = Table::new("links", l.t("Liên kết dữ liệu", "Data links"), &head)
        .empty(l.t("Chưa có liên kết nào.", "No links yet."));
    for r in &rows {
        let id = r.link_id;
        let ports: Vec<String> = r.ports.iter().map(i32::to_string).collect();
        let mut cells = vec![
            Cell::link(
                format!("{}/{}", r.from_tenant, r.from_namespace),
                &format!("/tenants/{}", r.from_tenant),
            ),
            Cell::link(r.to_tenant.clone(), &format!("/tenants/{}", r.to_tenant)),
            Cell::text(ports.join(", ")),
            Cell::text(r.purpose.clone()),
            Cell::text(state_name(l, r.state)),
            Cell::text(awaiting(l, r)),
            Cell::text(r.requested_by.clone()),
            Cell::text(ui::when(r.created_at)),
        ];
        if acts {
            let action = if r.state == LinkState::Pending && !app::links::awaiting(r).is_empty() {
                html! {
                    (ui::button_form(&ctx, &format!("/links/{id}/approve"), l.t("Chấp thuận", "Approve"), ""))
                    (ui::reason_form(&ctx, &format!("/links/{id}/reject"), &format!("reject-{id}"), l.t("Từ chối", "Reject"), true))
                }
            } else {
                html! {}
            };
            cells.push(Cell::html(action, ""));
        }
        t.row(cells);
    }
    if let Some(r) = ui::csv_of(&ctx, "links", &[&t]) {
        return Ok(r);
    }
    let mine = if ctx.caller.role == Role::TenantAdmin {
        app::tenants::list(&ctx.state, &ctx.caller, None, None, 1)
            .await
            .map_err(|e| ctx.fail(e))?
            .into_iter()
            .next()
    } else {
        None
    };
    Ok(ctx.page(l.t("Liên kết dữ liệu", "Data links"), html! {
        h1 { (l.t("Liên kết dữ liệu giữa các cơ quan", "Data links between agencies")) }
        p.sub { (l.t("Dữ liệu chỉ được chia sẻ qua liên kết đã được cơ quan cung cấp (và tổ chức của bên dùng, nếu khác tổ chức) chấp thuận; chỉ các cổng đã cấp được mở.", "Data is shared only over links that the providing agency (and the consumer's organization, across organizations) approved; only the granted ports open.")) }
        (t.render(&ctx))
        @if let Some(me) = &mine {
            section {
                h2 { (l.t("Yêu cầu liên kết tới cơ quan khác", "Ask another agency for a link")) }
                form.stack method="post" action="/links" {
                    (ui::csrf(&ctx))
                    input type="hidden" name="from_tenant" value=(me.row.name);
                    label for="ln-namespace" { (l.t("Namespace của cơ quan bạn (bên dùng)", "Your agency's namespace (consumer)")) }
                    select id="ln-namespace" name="from_namespace" required {
                        @for n in &me.namespaces { option value=(n.name) { (n.name) } }
                    }
                    label for="ln-to" { (l.t("Mã cơ quan cung cấp dữ liệu", "The providing agency's name")) }
                    input id="ln-to" name="to_tenant" type="text" required pattern="[a-z0-9-]+";
                    label for="ln-ports" { (l.t("Cổng TCP (cách nhau bởi dấu phẩy)", "TCP ports (comma-separated)")) }
                    input id="ln-ports" name="ports" type="text" required pattern="[0-9, ]+" placeholder="443";
                    label for="ln-purpose" { (l.t("Mục đích chia sẻ", "What it is for")) }
                    textarea id="ln-purpose" name="purpose" required maxlength="1000" rows="2" {}
                    button type="submit" { (l.t("Gửi yêu cầu liên kết", "Ask for the link")) }
                }
            }
        }
    }))
}

#[derive(Deserialize)]
pub struct LinkForm {
    from_tenant: String,
    from_namespace: String,
    to_tenant: String,
    ports: String,
    purpose: String,
}

pub async fn create(p: Posted<LinkForm>) -> Result<Response, ConsoleError> {
    let (ctx, f) = (&p.ctx, &p.form);
    let mut ports = Vec::new();
    for s in f.ports.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match s.parse::<i32>() {
            Ok(n) => ports.push(n),
            Err(_) => {
                return ctx.refused(
                    "/links",
                    app::AppError::invalid(
                        "ports",
                        format!(
                            "{s:?}: {}",
                            ctx.t("không phải số cổng", "is not a port number")
                        ),
                    ),
                );
            }
        }
    }
    let body = NewLinkDoc {
        from: LinkFrom {
            tenant: f.from_tenant.clone(),
            namespace: f.from_namespace.clone(),
        },
        to: LinkTo {
            tenant: f.to_tenant.trim().to_string(),
        },
        ports,
        purpose: f.purpose.trim().to_string(),
    };
    match app::links::request(&ctx.state, &ctx.caller, &body).await {
        Ok(_) => Ok(ctx.done(
            "/links",
            true,
            ctx.t("Đã gửi yêu cầu liên kết.", "The link is asked for."),
        )),
        Err(e) => ctx.refused("/links", e),
    }
}

pub async fn approve(
    Path(id): Path<String>,
    p: Posted<super::tenants::ReasonForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    match app::links::approve(&ctx.state, &ctx.caller, &id).await {
        Ok(r) => Ok(ctx.done(
            "/links",
            true,
            format!(
                "{} ({})",
                ctx.t("Đã chấp thuận liên kết", "The link is approved"),
                state_name(ctx.lang, r.state)
            ),
        )),
        Err(e) => ctx.refused("/links", e),
    }
}

pub async fn reject(
    Path(id): Path<String>,
    p: Posted<super::tenants::ReasonForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    match app::links::reject(&ctx.state, &ctx.caller, &id, p.form.given()).await {
        Ok(_) => Ok(ctx.done(
            "/links",
            true,
            ctx.t("Đã từ chối liên kết.", "The link is rejected."),
        )),
        Err(e) => ctx.refused("/links", e),
    }
}
