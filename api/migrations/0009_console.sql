-- The web console's sessions and the sign-ins in flight. A session is the hash of an opaque
-- cookie; the cookie itself is never stored. A registered principal's session follows the
-- principal (its role today, and it ends when the principal is removed); a person known only by
-- an OIDC group rule keeps the role the rule gave at sign-in until the session ends.
create table console_session (
    session_hash bytea primary key,
    principal_id uuid references principal on delete cascade,
    caller_name text not null,
    role text not null check (role in ('platform-admin', 'org-admin', 'tenant-admin', 'finance', 'auditor')),
    organization_id uuid references organization on delete cascade,
    tenant_id uuid references tenant on delete cascade,
    -- every state-changing form carries it
    csrf_token text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index console_session_expiry on console_session (expires_at);

-- An OIDC authorization-code sign-in between the redirect to the issuer and the callback:
-- single use, and short-lived.
create table console_sign_in (
    state_hash bytea primary key,
    code_verifier text not null,
    nonce text not null,
    return_to text not null,
    expires_at timestamptz not null
);
