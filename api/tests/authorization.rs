//! The authorization matrix: every route × every role × own and someone else's organization
//! and tenant, each with the status it must answer (the operator's metering identity: only
//! ingest succeeds; every read is not found, forbidden or empty). Someone else's objects answer 404, as if
//! they did not exist; a role that may not act answers 403; no or bad credentials 401.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApi, new_request};

const ROLES: [&str; 5] = [
    "platform-admin",
    "org-admin",
    "tenant-admin",
    "finance",
    "auditor",
];

/// Whose object a case is about, seen from the seeded users (the org admin and finance of
/// demo-province, the tenant admin of demo-stttt).
#[derive(Debug, Clone, Copy)]
enum Whose {
    /// demo-stttt, in demo-province.
    Own,
    /// demo-sotc: the same province, another agency.
    Sibling,
    /// demo-ministry-data, in demo-ministry.
    Foreign,
}

impl Whose {
    fn tenant(self) -> &'static str {
        match self {
            Self::Own => "demo-stttt",
            Self::Sibling => "demo-sotc",
            Self::Foreign => "demo-ministry-data",
        }
    }
    fn organization(self) -> &'static str {
        match self {
            Self::Own | Self::Sibling => "demo-province",
            Self::Foreign => "demo-ministry",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Route {
    ListOrganizations,
    ShowOrganization,
    CreateOrganization,
    ListTenants,
    ShowTenant,
    CreateTenant,
    QuotaChanges,
    CreateRequest,
    ListRequests,
    ShowRequest,
    Approve,
    Reject,
    Cancel,
    Kubeconfig,
    AuditEvents,
    /// Offboarding a tenant made for the case (in the case's organization).
    DeleteTenant,
    ListPrincipals,
    /// A finance officer made for the case, in the case's organization.
    ShowPrincipal,
    CreatePrincipal,
    DeletePrincipal,
    RotateToken,
    EditTenant,
    /// Suspending a tenant made for the case.
    Suspend,
    /// Resuming a tenant made for the case, suspended first.
    Resume,
    /// A link from the case's tenant to a tenant made for the case.
    CreateLink,
    ListLinks,
    /// A pending link into the case's tenant, asked for by a tenant made for the case.
    ShowLink,
    ApproveLink,
    RejectLink,
    CloseLink,
    /// Asking for the case's organization's allotment (as it is now).
    RequestAllotment,
    /// Approving such a request, made by the platform.
    ApproveAllotment,
    AllotmentChanges,
    /// Posting usage samples of the case's tenant (the metering identity's only right).
    IngestUsage,
    Usage,
    Utilisation,
    ListInvoices,
    /// Last month's invoice of the case's tenant (issued by the seed).
    ShowInvoice,
    InvoiceCsv,
    InvoicePdf,
    ApproveInvoice,
    /// Disputing last month's invoice (before it is approved).
    DisputeInvoice,
    /// Marking it paid (once approved; the foreign one is not).
    PayInvoice,
    /// A credit note of one đồng on its first line.
    CreditNote,
    /// Issuing this month's draft (refused: the month is not over).
    IssueInvoice,
    /// An organization's own rate card, from next year.
    CreateRateCard,
    /// A version of the platform's card, years ahead.
    AddRateCardVersion,
    /// A VAT rate of the platform's card, years ahead.
    AddVatRate,
    /// The month's summary of the case's organization.
    InvoiceSummary,
    ShowBudget,
    SetBudget,
    ListAlerts,
    ListRateCards,
    /// The platform's rate card.
    ShowRateCard,
}

const OK: u16 = 200;
const CREATED: u16 = 201;
const CONFLICT: u16 = 409;
const ACCEPTED: u16 = 202;
const NO_CONTENT: u16 = 204;
const FORBIDDEN: u16 = 403;
const NOT_FOUND: u16 = 404;

/// The expected status, by role in ROLES order.
fn expected(route: Route, whose: Whose) -> [u16; 5] {
    use Route::*;
    use Whose::*;
    match (route, whose) {
        (ListOrganizations | ListTenants | ListRequests, _) => [OK; 5],
        (AuditEvents, _) => [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK],
        (CreateOrganization, _) => [CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (ShowOrganization, Own | Sibling) => [OK; 5],
        (ShowOrganization, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK],
        (ShowTenant | QuotaChanges | ShowRequest, Own) => [OK; 5],
        (ShowTenant | QuotaChanges | ShowRequest, Sibling) => [OK, OK, NOT_FOUND, OK, OK],
        (ShowTenant | QuotaChanges | ShowRequest, Foreign) => {
            [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK]
        }
        (CreateTenant, Own | Sibling) => [CREATED, CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (CreateTenant, Foreign) => [CREATED, NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (CreateRequest, Own) => [CREATED, CREATED, CREATED, FORBIDDEN, FORBIDDEN],
        (CreateRequest, Sibling) => [CREATED, CREATED, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (CreateRequest, Foreign) => [CREATED, NOT_FOUND, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (Approve | Reject, Own) => [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (Approve | Reject, Sibling) => [OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (Approve | Reject, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (Cancel, Own) => [OK, OK, OK, FORBIDDEN, FORBIDDEN],
        (Cancel, Sibling) => [OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (Cancel, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (Kubeconfig, Own) => [OK, FORBIDDEN, OK, FORBIDDEN, FORBIDDEN],
        (Kubeconfig, Sibling) => [OK, FORBIDDEN, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (Kubeconfig, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (DeleteTenant, Own | Sibling) => [ACCEPTED, ACCEPTED, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (DeleteTenant, Foreign) => [ACCEPTED, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (ListPrincipals, _) => [OK, OK, FORBIDDEN, FORBIDDEN, OK],
        (ShowPrincipal, Own | Sibling) => [OK, OK, FORBIDDEN, FORBIDDEN, OK],
        (ShowPrincipal, Foreign) => [OK, NOT_FOUND, FORBIDDEN, FORBIDDEN, OK],
        (CreatePrincipal, Own | Sibling) => [CREATED, CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (CreatePrincipal, Foreign) => [CREATED, NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (DeletePrincipal, Own | Sibling) => {
            [NO_CONTENT, NO_CONTENT, FORBIDDEN, FORBIDDEN, FORBIDDEN]
        }
        (DeletePrincipal, Foreign) => [NO_CONTENT, NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (RotateToken, Own | Sibling) => [OK, OK, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (RotateToken, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (EditTenant, Own) => [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (EditTenant, Sibling) => [OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (EditTenant, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (Suspend | Resume, Own | Sibling) => [OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (Suspend | Resume, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (CreateLink, Own) => [CREATED, CREATED, CREATED, FORBIDDEN, FORBIDDEN],
        (CreateLink, Sibling) => [CREATED, CREATED, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (CreateLink, Foreign) => [CREATED, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (ListLinks, _) => [OK; 5],
        (ShowLink, Own) => [OK; 5],
        (ShowLink, Sibling) => [OK, OK, NOT_FOUND, OK, OK],
        (ShowLink, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK],
        (ApproveLink | RejectLink | CloseLink, Own) => [OK, OK, OK, FORBIDDEN, FORBIDDEN],
        (ApproveLink | RejectLink | CloseLink, Sibling) => {
            [OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN]
        }
        (ApproveLink | RejectLink | CloseLink, Foreign) => {
            [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN]
        }
        (RequestAllotment, Own | Sibling) => [CREATED, CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (RequestAllotment, Foreign) => [CREATED, NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (ApproveAllotment, Own | Sibling) => [OK, FORBIDDEN, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (ApproveAllotment, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (AllotmentChanges, Own | Sibling) => [OK; 5],
        (AllotmentChanges, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK],
        (IngestUsage, _) => [FORBIDDEN; 5],
        (Usage, Own) => [OK; 5],
        (Usage, Sibling) => [OK, OK, NOT_FOUND, OK, OK],
        (Usage, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK],
        (Utilisation, Own | Sibling) => [OK; 5],
        (Utilisation, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK],
        (ListInvoices | ListAlerts | ListRateCards | ShowRateCard, _) => [OK; 5],
        (ShowInvoice | InvoiceCsv | InvoicePdf | ShowBudget, Own) => [OK; 5],
        (ShowInvoice | InvoiceCsv | InvoicePdf | ShowBudget, Sibling) => {
            [OK, OK, NOT_FOUND, OK, OK]
        }
        (ShowInvoice | InvoiceCsv | InvoicePdf | ShowBudget, Foreign) => {
            [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK]
        }
        (ApproveInvoice | DisputeInvoice, Own) => [FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN],
        (ApproveInvoice | DisputeInvoice, Sibling) => {
            [FORBIDDEN, FORBIDDEN, NOT_FOUND, OK, FORBIDDEN]
        }
        (ApproveInvoice | DisputeInvoice, Foreign) => {
            [FORBIDDEN, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN]
        }
        (PayInvoice, Own) => [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (PayInvoice, Sibling) => [OK, FORBIDDEN, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (PayInvoice, Foreign) => [CONFLICT, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (CreditNote, Own) => [CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (CreditNote, Sibling) => [CREATED, FORBIDDEN, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (CreditNote, Foreign) => [CREATED, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (IssueInvoice, Own) => [CONFLICT, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (IssueInvoice, Sibling) => [CONFLICT, FORBIDDEN, NOT_FOUND, FORBIDDEN, FORBIDDEN],
        (IssueInvoice, Foreign) => [CONFLICT, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        // one card per organization: the sibling's case finds the province's card made
        (CreateRateCard, Own) => [CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (CreateRateCard, Sibling) => [CONFLICT, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN],
        (CreateRateCard, Foreign) => [CREATED, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
        (AddRateCardVersion | AddVatRate, _) => {
            [CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN]
        }
        (InvoiceSummary, Own | Sibling) => [OK, OK, FORBIDDEN, OK, OK],
        (InvoiceSummary, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK],
        (SetBudget, Own) => [OK, OK, FORBIDDEN, OK, FORBIDDEN],
        (SetBudget, Sibling) => [OK, OK, NOT_FOUND, OK, FORBIDDEN],
        (SetBudget, Foreign) => [OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN],
    }
}

/// The request for a case; creates what the case acts on (a fresh pending request).
async fn request(
    api: &TestApi,
    route: Route,
    whose: Whose,
    n: usize,
) -> (Method, String, Option<Value>) {
    use Route::*;
    let tenant = whose.tenant();
    let org = whose.organization();
    match route {
        ListOrganizations => (Method::GET, "/v1/organizations".into(), None),
        ShowOrganization => (Method::GET, format!("/v1/organizations/{org}"), None),
        CreateOrganization => (
            Method::POST,
            "/v1/organizations".into(),
            Some(
                json!({"name": format!("org-{n}"), "displayName": "Org", "allotment": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"}}),
            ),
        ),
        ListTenants => (Method::GET, "/v1/tenants".into(), None),
        ShowTenant => (Method::GET, format!("/v1/tenants/{tenant}"), None),
        QuotaChanges => (
            Method::GET,
            format!("/v1/tenants/{tenant}/quota-changes"),
            None,
        ),
        CreateTenant => (
            Method::POST,
            "/v1/tenants".into(),
            Some(
                json!({"name": format!("agency-{n}"), "organization": org, "displayName": "Agency",
                        "namespaces": [{"name": "prod", "quota": {"cpu": "100m", "memory": "128Mi", "storage": "1Gi", "pods": 5}}],
                        "billing": {"plan": "Usage"}}),
            ),
        ),
        CreateRequest => (
            Method::POST,
            "/v1/capacity-requests".into(),
            Some(
                json!({"tenant": tenant, "namespace": "prod", "quota": {"pods": 31}, "reason": "matrix"}),
            ),
        ),
        ListRequests => (Method::GET, "/v1/capacity-requests".into(), None),
        ShowRequest => (
            Method::GET,
            format!(
                "/v1/capacity-requests/{}",
                new_request(api, tenant, "1").await
            ),
            None,
        ),
        Approve => (
            Method::POST,
            format!(
                "/v1/capacity-requests/{}/approve",
                new_request(api, tenant, "1").await
            ),
            None,
        ),
        Reject => (
            Method::POST,
            format!(
                "/v1/capacity-requests/{}/reject",
                new_request(api, tenant, "1").await
            ),
            Some(json!({"reason": "matrix"})),
        ),
        Cancel => (
            Method::POST,
            format!(
                "/v1/capacity-requests/{}/cancel",
                new_request(api, tenant, "1").await
            ),
            None,
        ),
        Kubeconfig => (
            Method::POST,
            format!("/v1/tenants/{tenant}/kubeconfig"),
            Some(json!({"namespace": "prod"})),
        ),
        AuditEvents => (Method::GET, "/v1/audit-events".into(), None),
        DeleteTenant => {
            let name = new_tenant(api, "leaving", org, n).await;
            (Method::DELETE, format!("/v1/tenants/{name}"), None)
        }
        CreateLink => {
            let target = new_tenant(api, "target", org, n).await;
            (
                Method::POST,
                "/v1/links".into(),
                Some(
                    json!({"from": {"tenant": tenant, "namespace": "prod"}, "to": {"tenant": target},
                            "ports": [443], "purpose": "matrix"}),
                ),
            )
        }
        ListLinks => (Method::GET, "/v1/links".into(), None),
        ShowLink => (
            Method::GET,
            format!("/v1/links/{}", new_link(api, tenant, org, n).await),
            None,
        ),
        ApproveLink => (
            Method::POST,
            format!("/v1/links/{}/approve", new_link(api, tenant, org, n).await),
            None,
        ),
        RejectLink => (
            Method::POST,
            format!("/v1/links/{}/reject", new_link(api, tenant, org, n).await),
            Some(json!({"reason": "matrix"})),
        ),
        CloseLink => (
            Method::DELETE,
            format!("/v1/links/{}", new_link(api, tenant, org, n).await),
            None,
        ),
        RequestAllotment => (
            Method::POST,
            "/v1/capacity-requests".into(),
            Some(allotment_request(org)),
        ),
        ApproveAllotment => {
            let (status, body) = api
                .post(
                    "/v1/capacity-requests",
                    "platform-admin",
                    allotment_request(org),
                )
                .await;
            assert_eq!(status.as_u16(), CREATED, "{body}");
            (
                Method::POST,
                format!(
                    "/v1/capacity-requests/{}/approve",
                    body["id"].as_str().unwrap_or_default()
                ),
                None,
            )
        }
        AllotmentChanges => (
            Method::GET,
            format!("/v1/organizations/{org}/allotment-changes"),
            None,
        ),
        EditTenant => (
            Method::PATCH,
            format!("/v1/tenants/{tenant}"),
            Some(json!({"displayName": format!("Renamed {n}")})),
        ),
        Suspend => {
            let name = new_tenant(api, "pausing", org, n).await;
            (
                Method::POST,
                format!("/v1/tenants/{name}/suspend"),
                Some(json!({"reason": "matrix"})),
            )
        }
        Resume => {
            let name = new_tenant(api, "paused", org, n).await;
            let (status, body) = api
                .post(
                    &format!("/v1/tenants/{name}/suspend"),
                    "platform-admin",
                    json!({"reason": "matrix"}),
                )
                .await;
            assert_eq!(status.as_u16(), OK, "{body}");
            (
                Method::POST,
                format!("/v1/tenants/{name}/resume"),
                Some(json!({"reason": "matrix"})),
            )
        }
        ListPrincipals => (Method::GET, "/v1/principals".into(), None),
        ShowPrincipal => (
            Method::GET,
            format!("/v1/principals/{}", new_principal(api, org, n).await),
            None,
        ),
        CreatePrincipal => (
            Method::POST,
            "/v1/principals".into(),
            Some(json!({"name": format!("person-{n}"), "role": "finance", "organization": org})),
        ),
        DeletePrincipal => (
            Method::DELETE,
            format!("/v1/principals/{}", new_principal(api, org, n).await),
            None,
        ),
        RotateToken => (
            Method::POST,
            format!("/v1/principals/{}/token", new_principal(api, org, n).await),
            Some(json!({})),
        ),
        IngestUsage => (
            Method::POST,
            "/v1/usage/batches".into(),
            Some(json!({"windowSeconds": 60, "samples": [{"tenant": tenant,
                "namespace": format!("{tenant}-prod"), "metric": "cpu.requested",
                "windowStart": "2026-01-01T00:00:00Z", "quantity": n}]})),
        ),
        Usage => (Method::GET, format!("/v1/usage?tenant={tenant}"), None),
        Utilisation => (
            Method::GET,
            format!("/v1/utilisation?organization={org}&month=2026-10"),
            None,
        ),
        ListInvoices => (Method::GET, "/v1/invoices".into(), None),
        ShowInvoice | InvoiceCsv | InvoicePdf | ApproveInvoice | DisputeInvoice | PayInvoice
        | CreditNote => {
            let id =
                support::invoice_of(api, tenant, &support::last_month(), "platform-admin").await;
            match route {
                ShowInvoice => (Method::GET, format!("/v1/invoices/{id}"), None),
                InvoiceCsv => (Method::GET, format!("/v1/invoices/{id}/csv"), None),
                InvoicePdf => (Method::GET, format!("/v1/invoices/{id}/pdf"), None),
                DisputeInvoice => (
                    Method::POST,
                    format!("/v1/invoices/{id}/dispute"),
                    Some(json!({"reason": "matrix"})),
                ),
                PayInvoice => (Method::POST, format!("/v1/invoices/{id}/pay"), None),
                CreditNote => (
                    Method::POST,
                    format!("/v1/invoices/{id}/credit-notes"),
                    Some(json!({"reason": "matrix", "lines": [{"line": 1, "amount": "1"}]})),
                ),
                _ => (Method::POST, format!("/v1/invoices/{id}/approve"), None),
            }
        }
        IssueInvoice => {
            let month = govcloud_api::domain::period::month_of(chrono::Utc::now());
            let id = support::invoice_of(api, tenant, &month, "platform-admin").await;
            (Method::POST, format!("/v1/invoices/{id}/issue"), None)
        }
        CreateRateCard | AddRateCardVersion | AddVatRate => {
            use chrono::Datelike;
            let year = chrono::Utc::now().year();
            let far =
                chrono::DateTime::parse_from_rfc3339(&format!("{}-06-01T00:00:00Z", year + 1))
                    .map(|t| t.to_utc())
                    .unwrap_or_default()
                    + chrono::Duration::hours(i64::try_from(n).unwrap_or(0));
            let prices = json!([{"resource": "cpu", "price": "300"}, {"resource": "memory", "price": "60"},
                                {"resource": "storage", "price": "3000"}, {"resource": "load-balancers", "price": "350000"}]);
            let (_, cards) = api.get("/v1/rate-cards", "platform-admin").await;
            let platform = cards["items"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match route {
                CreateRateCard => (
                    Method::POST,
                    "/v1/rate-cards".into(),
                    Some(
                        json!({"organization": org, "name": "matrix", "effectiveFrom": format!("{}-01-01", year + 1),
                                "prices": prices, "vat": {"rate": "0.08", "effectiveFrom": format!("{}-01-01", year + 1)}}),
                    ),
                ),
                AddRateCardVersion => (
                    Method::POST,
                    format!("/v1/rate-cards/{platform}/versions"),
                    Some(json!({"effectiveFrom": far, "prices": prices})),
                ),
                _ => (
                    Method::POST,
                    format!("/v1/rate-cards/{platform}/vat-rates"),
                    Some(json!({"rate": "0.08", "effectiveFrom": far})),
                ),
            }
        }
        InvoiceSummary => (
            Method::GET,
            format!(
                "/v1/invoice-summary?organization={org}&month={}",
                support::last_month()
            ),
            None,
        ),
        ShowBudget => (Method::GET, format!("/v1/tenants/{tenant}/budget"), None),
        SetBudget => (
            Method::PUT,
            format!("/v1/tenants/{tenant}/budget"),
            Some(json!({"amount": format!("{}", 1_000_000 + n)})),
        ),
        ListAlerts => (Method::GET, "/v1/alerts".into(), None),
        ListRateCards => (Method::GET, "/v1/rate-cards".into(), None),
        ShowRateCard => {
            let (status, body) = api.get("/v1/rate-cards", "platform-admin").await;
            assert_eq!(status.as_u16(), OK, "{body}");
            let id = body["items"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (Method::GET, format!("/v1/rate-cards/{id}"), None)
        }
    }
}

/// A request for `org`'s allotment as it is now (the seeded one).
fn allotment_request(org: &str) -> Value {
    let allotment = if org == "demo-province" {
        json!({"cpu": "32", "memory": "128Gi", "storage": "2Ti"})
    } else {
        json!({"cpu": "8", "memory": "32Gi", "storage": "500Gi"})
    };
    json!({"organization": org, "allotment": allotment, "reason": "matrix"})
}

/// A small tenant of `org`, onboarded by the platform; answers its name.
async fn new_tenant(api: &TestApi, prefix: &str, org: &str, n: usize) -> String {
    let name = format!("{prefix}-{n}");
    let (status, body) = api
        .post(
            "/v1/tenants",
            "platform-admin",
            json!({"name": name, "organization": org, "displayName": "Made for a case",
                   "namespaces": [{"name": "prod", "quota": {"cpu": "100m", "memory": "128Mi", "storage": "1Gi", "pods": 5}}],
                   "billing": {"plan": "Usage"}}),
        )
        .await;
    assert_eq!(status.as_u16(), CREATED, "{body}");
    name
}

/// A pending link into `provider`, asked for by the platform for a tenant made for the case in
/// the same organization; answers its id.
async fn new_link(api: &TestApi, provider: &str, org: &str, n: usize) -> String {
    let asker = new_tenant(api, "asker", org, n).await;
    let (status, body) = api
        .post(
            "/v1/links",
            "platform-admin",
            json!({"from": {"tenant": asker, "namespace": "prod"}, "to": {"tenant": provider},
                   "ports": [443], "purpose": "matrix"}),
        )
        .await;
    assert_eq!(status.as_u16(), CREATED, "{body}");
    body["id"].as_str().unwrap_or_default().to_string()
}

/// A finance officer of `org`, registered by the platform; answers its id.
async fn new_principal(api: &TestApi, org: &str, n: usize) -> String {
    let (status, body) = api
        .post(
            "/v1/principals",
            "platform-admin",
            json!({"name": format!("finance-{n}"), "role": "finance", "organization": org}),
        )
        .await;
    assert_eq!(status.as_u16(), CREATED, "{body}");
    body["principal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const ROUTES: [Route; 54] = [
    Route::ListOrganizations,
    Route::ShowOrganization,
    Route::CreateOrganization,
    Route::ListTenants,
    Route::ShowTenant,
    Route::CreateTenant,
    Route::QuotaChanges,
    Route::CreateRequest,
    Route::ListRequests,
    Route::ShowRequest,
    Route::Approve,
    Route::Reject,
    Route::Cancel,
    Route::Kubeconfig,
    Route::AuditEvents,
    Route::DeleteTenant,
    Route::ListPrincipals,
    Route::ShowPrincipal,
    Route::CreatePrincipal,
    Route::DeletePrincipal,
    Route::RotateToken,
    Route::EditTenant,
    Route::Suspend,
    Route::Resume,
    Route::CreateLink,
    Route::ListLinks,
    Route::ShowLink,
    Route::ApproveLink,
    Route::RejectLink,
    Route::CloseLink,
    Route::RequestAllotment,
    Route::ApproveAllotment,
    Route::AllotmentChanges,
    Route::IngestUsage,
    Route::Usage,
    Route::Utilisation,
    Route::ListInvoices,
    Route::ShowInvoice,
    Route::InvoiceCsv,
    Route::InvoicePdf,
    Route::DisputeInvoice,
    Route::ApproveInvoice,
    Route::PayInvoice,
    Route::CreditNote,
    Route::IssueInvoice,
    Route::InvoiceSummary,
    Route::ShowBudget,
    Route::SetBudget,
    Route::ListAlerts,
    Route::ListRateCards,
    Route::ShowRateCard,
    Route::CreateRateCard,
    Route::AddRateCardVersion,
    Route::AddVatRate,
];

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn every_route_every_role_own_and_foreign(db: PgPool) {
    let api = TestApi::new(db).await;
    // Invoices to read and approve: last month's, issued.
    support::seed_billing(&api).await;
    // Kubeconfigs need the deployer ServiceAccounts that the operator makes.
    support::start_operator(&api).await;
    govcloud_testing::eventually("deployer ServiceAccounts in every tenant", || async {
        let (s, _) = api
            .post(
                "/v1/tenants/demo-ministry-data/kubeconfig",
                "platform-admin",
                json!({"namespace": "prod"}),
            )
            .await;
        let (t, _) = api
            .post(
                "/v1/tenants/demo-sotc/kubeconfig",
                "platform-admin",
                json!({"namespace": "prod"}),
            )
            .await;
        let (u, _) = api
            .post(
                "/v1/tenants/demo-stttt/kubeconfig",
                "platform-admin",
                json!({"namespace": "prod"}),
            )
            .await;
        (s == StatusCode::OK && t == StatusCode::OK && u == StatusCode::OK)
            .then_some(())
            .ok_or(format!("ministry {s}, sotc {t}, stttt {u}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let mut failures = Vec::new();
    let mut cases = 0;
    let mut n = 0;
    for route in ROUTES {
        for whose in [Whose::Own, Whose::Sibling, Whose::Foreign] {
            for (role, want) in ROLES.iter().zip(expected(route, whose)) {
                n += 1;
                let (method, path, body) = request(&api, route, whose, n).await;
                let (status, answer) = api
                    .call(method.clone(), &path, Some(role), body.clone())
                    .await;
                cases += 1;
                if status.as_u16() != want {
                    failures.push(format!("{route:?} {whose:?} as {role}: {method} {path} answered {status}, expected {want}: {answer}"));
                }
                // The operator's metering identity sees nothing and does nothing but ingest.
                if *role == "platform-admin" {
                    let (method, path, body) = request(&api, route, whose, n + 100_000).await;
                    let (status, answer) = api
                        .call(method.clone(), &path, Some("metering"), body)
                        .await;
                    cases += 1;
                    let empty_list = answer["items"].as_array().is_some_and(Vec::is_empty);
                    let fine = match route {
                        Route::IngestUsage => status == StatusCode::OK,
                        _ => {
                            matches!(status.as_u16(), FORBIDDEN | NOT_FOUND)
                                || (status == StatusCode::OK && empty_list)
                        }
                    };
                    if !fine {
                        failures.push(format!("{route:?} {whose:?} as metering: {method} {path} answered {status}: {answer}"));
                    }
                }
                // Without credentials, or with a bad token, every route answers 401.
                if *role == "platform-admin" {
                    let (status, _) =
                        support::call_with(api.router(), method.clone(), &path, None, body.clone())
                            .await;
                    let (bad, _) = support::call_with(
                        api.router(),
                        method.clone(),
                        &path,
                        Some("gct_not-a-token"),
                        body.clone(),
                    )
                    .await;
                    let (jwt, _) = support::call_with(
                        api.router(),
                        method.clone(),
                        &path,
                        Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
                        body,
                    )
                    .await;
                    for s in [status, bad, jwt] {
                        if s != StatusCode::UNAUTHORIZED {
                            failures.push(format!(
                                "{route:?} {method} {path} without valid credentials answered {s}"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cases, ROUTES.len() * 3 * 6);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn lists_hold_only_what_the_caller_may_see(db: PgPool) {
    let api = TestApi::new(db).await;
    for tenant in ["demo-stttt", "demo-sotc", "demo-ministry-data"] {
        new_request(&api, tenant, "1").await;
    }
    let names = |v: &Value, key: &str| -> Vec<String> {
        let mut n: Vec<String> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i[key].as_str().map(String::from))
            .collect();
        n.sort();
        n
    };
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "platform-admin",
            &["demo-ministry", "demo-province"],
            &["demo-ministry-data", "demo-sotc", "demo-stttt"],
        ),
        (
            "auditor",
            &["demo-ministry", "demo-province"],
            &["demo-ministry-data", "demo-sotc", "demo-stttt"],
        ),
        (
            "org-admin",
            &["demo-province"],
            &["demo-sotc", "demo-stttt"],
        ),
        ("finance", &["demo-province"], &["demo-sotc", "demo-stttt"]),
        ("tenant-admin", &["demo-province"], &["demo-stttt"]),
    ];
    for (role, orgs, tenants) in cases {
        let (_, o) = api.get("/v1/organizations", role).await;
        assert_eq!(names(&o, "name"), orgs, "{role}: organizations");
        let (_, t) = api.get("/v1/tenants", role).await;
        assert_eq!(names(&t, "name"), tenants, "{role}: tenants");
        let (_, r) = api.get("/v1/capacity-requests", role).await;
        assert_eq!(names(&r, "tenant"), tenants, "{role}: capacity requests");
        // Filtering by someone else's tenant finds nothing rather than failing.
        let (status, r) = api
            .get("/v1/capacity-requests?tenant=demo-ministry-data", role)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            names(&r, "tenant").is_empty(),
            !tenants.contains(&"demo-ministry-data"),
            "{role}"
        );
    }
}
