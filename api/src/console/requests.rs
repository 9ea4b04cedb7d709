//! Capacity requests: the queue IT decides (approve, or reject with a reason; an approval that
//! does not fit says why), and the form an agency asks with.

use axum::extract::Path;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use crate::app;
use crate::app::capacity::RequestRow;
use crate::app::capacity::{Filter, NewCapacityRequest};
use crate::console::session::{ConsoleError, Ctx, Lang, Posted};
use crate::console::ui::{self, Cell, Table};
use crate::domain::principal::Role;
use crate::domain::quota::QuotaPatchDoc;
use crate::domain::request::RequestState;

fn state_name(l: Lang, s: RequestState) -> &'static str {
    match s {
        RequestState::Pending => l.t("Chờ duyệt", "Pending"),
        RequestState::ApprovedPending => {
            l.t("Đã duyệt, chờ hiệu lực", "Approved, not yet in force")
        }
        RequestState::Approved => l.t("Đã duyệt", "Approved"),
        RequestState::Rejected => l.t("Từ chối", "Rejected"),
        RequestState::Cancelled => l.t("Đã hủy", "Cancelled"),
    }
}

fn asked(l: Lang, r: &RequestRow) -> String {
    let mut parts = Vec::new();
    if let Some(c) = r.cpu_milli.or(r.allotment_cpu_milli) {
        parts.push(format!("CPU {}", ui::cores(l, c.into())));
    }
    if let Some(m) = r.memory_bytes.or(r.allotment_memory_bytes) {
        parts.push(format!(
            "{} {}",
            l.t("bộ nhớ", "memory"),
            ui::gib(l, m.into())
        ));
    }
    if let Some(s) = r.storage_bytes.or(r.allotment_storage_bytes) {
        parts.push(format!(
            "{} {}",
            l.t("lưu trữ", "storage"),
            ui::gib(l, s.into())
        ));
    }
    if let Some(p) = r.pods {
        parts.push(format!("{p} pods"));
    }
    if let Some(b) = r.load_balancers {
        parts.push(format!("{b} load balancers"));
    }
    parts.join(", ")
}

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    tenant: Option<String>,
}

/// `/requests`: pending first; `?state=all` for every one.
pub async fn list(
    ctx: Ctx,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let l = ctx.lang;
    let state = match q.state.as_deref() {
        None | Some("") | Some("pending") => Some(RequestState::Pending),
        Some("all") => None,
        Some(other) => Some(
            other
                .parse()
                .map_err(|e: String| ctx.fail(app::AppError::invalid("state", e)))?,
        ),
    };
    let rows = app::capacity::list(
        &ctx.state,
        &ctx.caller,
        Filter {
            tenant: q.tenant.as_deref().filter(|t| !t.is_empty()),
            state,
            after: None,
            limit: 500,
        },
    )
    .await
    .map_err(|e| ctx.fail(e))?;
    let decides = ctx.is(&[Role::PlatformAdmin, Role::OrgAdmin]);
    let mut head = vec![
        l.t("Gửi lúc", "Sent"),
        l.t("Cơ quan", "Agency"),
        "Namespace",
        l.t("Yêu cầu", "Asked for"),
        l.t("Lý do", "Reason"),
        l.t("Người gửi", "By"),
        l.t("Trạng thái", "State"),
        l.t("Quyết định", "Decision"),
    ];
    if decides {
        head.push(l.t("Thao tác", "Action"));
    }
    let mut t = Table::new(
        "requests",
        l.t("Yêu cầu tài nguyên", "Capacity requests"),
        &head,
    )
    .empty(l.t(
        "Không có yêu cầu nào ở trạng thái này.",
        "No requests in this state.",
    ));
    for r in &rows {
        let who = r
            .tenant
            .clone()
            .unwrap_or_else(|| format!("{} ({})", r.organization, l.t("hạn mức", "allotment")));
        let decision = match (&r.decided_by, &r.decision_reason) {
            (Some(by), Some(why)) => format!("{by}: {why}"),
            (Some(by), None) => by.clone(),
            _ => String::new(),
        };
        let id = r.capacity_request_id;
        let mut cells = vec![
            Cell::text(ui::when(r.created_at)),
            match &r.tenant {
                Some(t) => Cell::link(who.clone(), &format!("/tenants/{t}")),
                None => Cell::text(who.clone()),
            },
            Cell::text(r.namespace.clone().unwrap_or_default()),
            Cell::text(asked(l, r)),
            Cell::text(r.reason.clone()),
            Cell::text(r.requested_by.clone()),
            Cell::text(state_name(l, r.state)),
            Cell::text(decision),
        ];
        if decides {
            let action = if r.state == RequestState::Pending {
                html! {
                    (ui::button_form(&ctx, &format!("/requests/{id}/approve"), l.t("Phê duyệt", "Approve"), ""))
                    (ui::reason_form(&ctx, &format!("/requests/{id}/reject"), &format!("reject-{id}"), l.t("Từ chối", "Reject"), true))
                }
            } else {
                html! {}
            };
            cells.push(Cell::html(action, ""));
        }
        t.row(cells);
    }
    if let Some(r) = ui::csv_of(&ctx, "capacity-requests", &[&t]) {
        return Ok(r);
    }
    let current = q.state.clone().unwrap_or_else(|| "pending".into());
    Ok(ctx.page(l.t("Yêu cầu tài nguyên", "Capacity requests"), html! {
        h1 { (l.t("Yêu cầu tài nguyên", "Capacity requests")) }
        form.filters method="get" action="/requests" {
            label for="state" { (l.t("Trạng thái", "State")) }
            select id="state" name="state" {
                @for (v, vi, en) in [("pending", "Chờ duyệt", "Pending"), ("approved", "Đã duyệt", "Approved"), ("approved-pending", "Chờ hiệu lực", "Approved, not in force"), ("rejected", "Từ chối", "Rejected"), ("cancelled", "Đã hủy", "Cancelled"), ("all", "Tất cả", "All")] {
                    option value=(v) selected[current == v] { (l.t(vi, en)) }
                }
            }
            @if let Some(tn) = &q.tenant { input type="hidden" name="tenant" value=(tn); }
            button type="submit" class="secondary" { (l.t("Lọc", "Filter")) }
        }
        (t.render(&ctx))
    }))
}

#[derive(Deserialize)]
pub struct RequestForm {
    tenant: String,
    namespace: String,
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    memory: String,
    #[serde(default)]
    storage: String,
    #[serde(default)]
    pods: String,
    #[serde(default)]
    reason: String,
}

fn filled(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// An agency asks for a namespace's quota to change.
pub async fn create(p: Posted<RequestForm>) -> Result<Response, ConsoleError> {
    let (ctx, f) = (&p.ctx, &p.form);
    let back = format!("/tenants/{}", f.tenant);
    let pods = match filled(&f.pods).map(|p| p.parse::<i32>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return ctx.refused(
                &back,
                app::AppError::invalid(
                    "pods",
                    ctx.t("phải là số nguyên", "must be a whole number"),
                ),
            );
        }
    };
    let body = NewCapacityRequest {
        tenant: Some(f.tenant.clone()),
        namespace: Some(f.namespace.clone()),
        quota: Some(QuotaPatchDoc {
            cpu: filled(&f.cpu),
            memory: filled(&f.memory),
            storage: filled(&f.storage),
            pods,
            load_balancers: None,
        }),
        organization: None,
        allotment: None,
        reason: f.reason.trim().to_string(),
        effective_from: None,
    };
    match app::capacity::create(&ctx.state, &ctx.caller, &body).await {
        Ok(_) => Ok(ctx.done(
            &back,
            true,
            ctx.t(
                "Đã gửi yêu cầu; phòng CNTT của tỉnh sẽ xem xét.",
                "The request is sent; the province's IT department will decide.",
            ),
        )),
        Err(e) => ctx.refused(&back, e),
    }
}

pub async fn approve(
    Path(id): Path<String>,
    p: Posted<super::tenants::ReasonForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    match app::capacity::approve(&ctx.state, &ctx.caller, &id).await {
        Ok(r) => {
            let text = match (&r.tenant, &r.namespace) {
                (Some(t), Some(n)) => format!(
                    "{} {t}/{n}: {}",
                    ctx.t("Đã phê duyệt", "Approved"),
                    asked(ctx.lang, &r)
                ),
                _ => ctx.t("Đã phê duyệt.", "Approved.").to_string(),
            };
            Ok(ctx.done("/requests", true, text))
        }
        Err(e) => ctx.refused("/requests", e),
    }
}

pub async fn reject(
    Path(id): Path<String>,
    p: Posted<super::tenants::ReasonForm>,
) -> Result<Response, ConsoleError> {
    let ctx = &p.ctx;
    match app::capacity::close(
        &ctx.state,
        &ctx.caller,
        &id,
        RequestState::Rejected,
        p.form.given(),
    )
    .await
    {
        Ok(_) => Ok(ctx.done(
            "/requests",
            true,
            ctx.t("Đã từ chối yêu cầu.", "The request is rejected."),
        )),
        Err(e) => ctx.refused("/requests", e),
    }
}
