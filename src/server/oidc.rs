//! Sign-in through an OpenID Connect provider (issue 29), with the `openidconnect` crate:
//! `GET /auth/oidc/start` discovers the provider (cached an hour), remembers a fresh state,
//! nonce and PKCE verifier in the browser's session and sends the browser to the provider;
//! `GET /auth/oidc/callback` takes them out again (so each is good once), checks the state,
//! exchanges the code with the verifier and checks the ID token: signature against the
//! provider's published keys (fetched again once when a token names a key they lack: rotation),
//! issuer, audience, expiry and nonce. The person is then found by issuer and subject, or
//! created if their verified address or groups allow it; the admin group decides their role;
//! their groups are stored. Every refusal is written to the audit log and sent back to the
//! sign-in page as a fixed word (`model::accounts::OidcRefusal`): nothing the provider sends
//! is shown to a person.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims,
    IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::accounts::{self, check_username};
use super::config::{OidcSettings, OIDC_CALLBACK_PATH};
use super::connections::address_key;
use super::context::client_address;
use super::db::accounts::{self as store, NewUser, User};
use super::AppState;
use crate::model::accounts::OidcRefusal;

/// Where the sign-in page's button goes.
pub const START_PATH: &str = "/auth/oidc/start";
/// What the session holds while a sign-in is under way.
const PENDING: &str = "oidc_pending";
/// A sign-in must come back from the provider within this.
const PENDING_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Discovery (endpoints and keys) is read again after this.
const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// Sign-ins started per client address (an IPv6 /64) per minute: each may cost the provider a
/// token request when it comes back.
const STARTS_PER_ADDRESS: u32 = 30;
/// The provider's requests may take this long (discovery, keys, the token).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Groups kept from the claim, and the longest name kept.
const MAX_GROUPS: usize = 256;
const MAX_GROUP_CHARS: usize = 256;

/// The ID token's claims beyond the standard ones (the groups claim's name is a setting).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

type Claims = IdTokenClaims<OtherClaims, CoreGenderClaim>;
type TokenAnswer = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in under way, as the session keeps it until the provider sends the browser back.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// Unix milliseconds.
    started_at: i64,
}

/// The provider as discovered, with when.
struct Discovered {
    metadata: CoreProviderMetadata,
    at: Instant,
}

struct Oidc {
    state: AppState,
    settings: OidcSettings,
    /// Never follows a redirect (which would let the provider's answers send Rill elsewhere).
    http: reqwest::Client,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
    starts: DefaultKeyedRateLimiter<IpAddr>,
}

type Shared = Arc<Oidc>;

/// The two routes, when a provider is set up.
pub fn routes(state: AppState) -> Router {
    let Some(settings) = state.config.oidc.clone() else {
        return Router::new();
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PROVIDER_TIMEOUT)
        .build()
        .unwrap_or_default();
    let per_minute = NonZeroU32::new(STARTS_PER_ADDRESS).unwrap_or(NonZeroU32::MIN);
    let shared = Arc::new(Oidc {
        state,
        settings,
        http,
        discovered: tokio::sync::Mutex::new(None),
        starts: RateLimiter::keyed(Quota::per_minute(per_minute)),
    });
    Router::new()
        .route(START_PATH, get(start))
        .route(OIDC_CALLBACK_PATH, get(callback))
        .with_state(shared)
}

/// Why a sign-in was refused: what the page says, and what the audit log and server log say.
struct Refusal {
    kind: OidcRefusal,
    /// For the audit log, in Rill's words.
    detail: String,
    /// Who, if the token said.
    target: Option<String>,
}

fn refuse(kind: OidcRefusal, detail: impl Into<String>) -> Refusal {
    Refusal {
        kind,
        detail: detail.into(),
        target: None,
    }
}

/// Back to the sign-in page with the refusal's word.
fn to_sign_in(kind: OidcRefusal) -> Response {
    see_other(&format!("/signin?oidc={}", kind.code()))
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

impl Oidc {
    async fn audit_refusal(&self, refusal: &Refusal, address: Option<IpAddr>) {
        accounts::audit(
            &self.state,
            None,
            "OIDC sign-in refused",
            refusal.target.as_deref(),
            address,
            Some(refusal.detail.clone()),
        )
        .await;
    }

    /// The provider's metadata and keys: cached, read again after an hour, or now if `fresh_keys`
    /// (a token named a key the cached set lacks).
    async fn metadata(&self, fresh_keys: bool) -> Result<CoreProviderMetadata, Refusal> {
        let mut discovered = self.discovered.lock().await;
        match discovered.as_mut() {
            Some(d) if d.at.elapsed() < METADATA_LIFETIME && !fresh_keys => {
                return Ok(d.metadata.clone())
            }
            Some(d) if d.at.elapsed() < METADATA_LIFETIME => {
                let keys = CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), &self.http)
                    .await
                    .map_err(|e| {
                        tracing::warn!("OIDC: the provider's keys could not be read: {e}");
                        refuse(
                            OidcRefusal::Unreachable,
                            "the provider's keys could not be read",
                        )
                    })?;
                d.metadata = d.metadata.clone().set_jwks(keys);
                d.at = Instant::now();
                return Ok(d.metadata.clone());
            }
            _ => {}
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| {
            tracing::error!("OIDC: the issuer is not a URL: {e}");
            refuse(OidcRefusal::Unreachable, "the issuer is not a URL")
        })?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                tracing::warn!("OIDC: discovery failed: {e}");
                refuse(
                    OidcRefusal::Unreachable,
                    "the provider's discovery document could not be read",
                )
            })?;
        *discovered = Some(Discovered {
            metadata: metadata.clone(),
            at: Instant::now(),
        });
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<Client, Refusal> {
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone()).map_err(|e| {
            tracing::error!("OIDC: the redirect URL is not a URL: {e}");
            refuse(OidcRefusal::Unreachable, "the redirect URL is not a URL")
        })?;
        Ok(Client::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }
}

/// `GET /auth/oidc/start`: to the provider, with a new state, nonce and PKCE challenge.
async fn start(State(oidc): State<Shared>, session: Session, request: Request) -> Response {
    let address = client_address(
        &oidc.state.config.access,
        request.extensions(),
        request.headers(),
    );
    if let Some(address) = address {
        if oidc.starts.check_key(&address_key(address)).is_err() {
            return to_sign_in(OidcRefusal::Busy);
        }
        oidc.starts.retain_recent();
    }
    let client = match oidc.metadata(false).await.and_then(|m| oidc.client(m)) {
        Ok(client) => client,
        Err(refusal) => {
            oidc.audit_refusal(&refusal, address).await;
            return to_sign_in(refusal.kind);
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in &oidc.settings.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let pending = Pending {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        started_at: super::db::now_ms(),
    };
    // A sign-in started again replaces the one before: only the latest can come back.
    if let Err(e) = session.insert(PENDING, pending).await {
        tracing::error!("OIDC: the session could not be stored: {e}");
        return to_sign_in(OidcRefusal::Unreachable);
    }
    see_other(url.as_str())
}

/// What the provider sends the browser back with.
#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/callback`: checks everything, signs the person in, back to `/`.
async fn callback(
    State(oidc): State<Shared>,
    session: Session,
    Query(answer): Query<Callback>,
    request: Request,
) -> Response {
    let address = client_address(
        &oidc.state.config.access,
        request.extensions(),
        request.headers(),
    );
    // Taken out whatever happens next: a state is good once.
    let pending = session.remove::<Pending>(PENDING).await.ok().flatten();
    let Some(pending) = pending else {
        // Nothing under way: counted like a start, so a flood of these is not a flood of
        // audit entries.
        let limited = address.is_some_and(|a| oidc.starts.check_key(&address_key(a)).is_err());
        if !limited {
            let refusal = refuse(
                OidcRefusal::Expired,
                "no sign-in was under way in this browser (an answer used twice, or not \
                 started here)",
            );
            oidc.audit_refusal(&refusal, address).await;
        }
        return to_sign_in(OidcRefusal::Expired);
    };
    match finish(&oidc, &session, pending, answer).await {
        Ok(user) => {
            accounts::audit(
                &oidc.state,
                Some(&user.username),
                "signed in",
                None,
                address,
                Some(format!("through {} (OpenID Connect)", oidc.settings.name)),
            )
            .await;
            see_other("/")
        }
        Err(refusal) => {
            tracing::info!(reason = %refusal.detail, "OIDC sign-in refused");
            oidc.audit_refusal(&refusal, address).await;
            to_sign_in(refusal.kind)
        }
    }
}

/// The provider's error code, if it is one of the standard words; never its description.
fn error_words(code: &str) -> String {
    const KNOWN: [&str; 9] = [
        "access_denied",
        "login_required",
        "consent_required",
        "interaction_required",
        "account_selection_required",
        "invalid_request",
        "unauthorized_client",
        "server_error",
        "temporarily_unavailable",
    ];
    match KNOWN.iter().find(|k| **k == code) {
        Some(known) => format!("the provider answered {known}"),
        None => "the provider answered with an error".into(),
    }
}

async fn finish(
    oidc: &Oidc,
    session: &Session,
    pending: Pending,
    answer: Callback,
) -> Result<User, Refusal> {
    let state_matches = answer
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    if !state_matches {
        return Err(refuse(
            OidcRefusal::Expired,
            "the state did not match the sign-in under way (forged or from another browser)",
        ));
    }
    if let Some(error) = answer.error {
        return Err(refuse(OidcRefusal::Denied, error_words(&error)));
    }
    let age = super::db::now_ms().saturating_sub(pending.started_at);
    if u128::try_from(age).unwrap_or(u128::MAX) > PENDING_LIFETIME.as_millis() {
        return Err(refuse(
            OidcRefusal::Expired,
            "the sign-in took over 10 minutes",
        ));
    }
    let Some(code) = answer.code else {
        return Err(refuse(OidcRefusal::Denied, "the provider sent no code"));
    };
    let client = oidc.client(oidc.metadata(false).await?)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| {
            tracing::error!("OIDC: no token endpoint: {e}");
            refuse(
                OidcRefusal::Unreachable,
                "the provider names no token endpoint",
            )
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&oidc.http)
        .await
        .map_err(|e| {
            tracing::warn!("OIDC: the code exchange failed: {e}");
            refuse(
                OidcRefusal::Unreachable,
                "the provider did not exchange the code",
            )
        })?;
    let id_token = token
        .id_token()
        .ok_or_else(|| refuse(OidcRefusal::Invalid, "the provider sent no ID token"))?;
    let nonce = Nonce::new(pending.nonce);
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(claims) => claims.clone(),
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            // Signed with a key Rill has not seen: the provider may have rotated its keys.
            let client = oidc.client(oidc.metadata(true).await?)?;
            let verifier = client.id_token_verifier();
            let claims = id_token
                .claims(&verifier, &nonce)
                .map_err(verification_refusal)?
                .clone();
            claims
        }
        Err(e) => return Err(verification_refusal(e)),
    };
    sign_in(oidc, session, &claims).await
}

fn verification_refusal(error: ClaimsVerificationError) -> Refusal {
    tracing::warn!("OIDC: the ID token was refused: {error}");
    let detail = match error {
        ClaimsVerificationError::Expired(_) => "the ID token has expired",
        ClaimsVerificationError::InvalidAudience(_) => "the ID token is for another client",
        ClaimsVerificationError::InvalidIssuer(_) => "the ID token is from another issuer",
        ClaimsVerificationError::InvalidNonce(_) => {
            "the ID token's nonce is not this sign-in's (a replayed token)"
        }
        ClaimsVerificationError::SignatureVerification(_) => {
            "the ID token's signature does not verify with the provider's keys"
        }
        _ => "the ID token did not pass the checks",
    };
    refuse(OidcRefusal::Invalid, detail)
}

/// The groups the configured claim lists (a list of names, or one name).
fn groups_of(claims: &Claims, claim: &str) -> Vec<String> {
    let names: Vec<&str> = match claims.additional_claims().claims.get(claim) {
        Some(serde_json::Value::Array(items)) => {
            items.iter().filter_map(serde_json::Value::as_str).collect()
        }
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = names
        .into_iter()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= MAX_GROUP_CHARS)
        .take(MAX_GROUPS)
        .map(str::to_owned)
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The address, if the provider vouches for it (`email_verified` true).
fn verified_email(claims: &Claims) -> Option<String> {
    let email = claims.email()?.as_str().trim().to_ascii_lowercase();
    (claims.email_verified() == Some(true)).then_some(email)
}

/// Whether someone without an account gets one: a verified address in an allowed domain, or
/// membership of an allowed group.
fn may_join(settings: &OidcSettings, email: Option<&str>, groups: &[String]) -> bool {
    let domain = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d);
    let by_domain = domain.is_some_and(|d| {
        settings
            .allowed_domains
            .iter()
            .any(|allowed| allowed == "*" || allowed == d)
    });
    by_domain || groups.iter().any(|g| settings.allowed_groups.contains(g))
}

/// A short tag of the subject, to tell apart people the provider gives one name.
fn tag(issuer: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

/// The usernames to try for a new person: their address, their preferred username, then each
/// with a tag of their subject (a name already taken is never theirs: accounts are matched by
/// subject, not name).
fn names_for(claims: &Claims, issuer: &str) -> Vec<String> {
    let subject = claims.subject().as_str();
    let mut bases: Vec<String> = [
        verified_email(claims),
        claims.preferred_username().map(|u| u.as_str().to_owned()),
    ]
    .into_iter()
    .flatten()
    .filter_map(|n| check_username(&n).ok().map(str::to_ascii_lowercase))
    .collect();
    if bases.is_empty() {
        bases.push("user".into());
    }
    let tag = tag(issuer, subject);
    let tagged: Vec<String> = bases
        .iter()
        .map(|b| {
            let room = 64usize.saturating_sub(tag.len() + 1);
            format!("{}-{tag}", b.chars().take(room).collect::<String>())
        })
        .collect();
    bases.into_iter().chain(tagged).collect()
}

fn db_refusal(e: super::db::DbError) -> Refusal {
    tracing::error!("OIDC: the database failed: {e}");
    refuse(OidcRefusal::Unreachable, "the database failed")
}

async fn sign_in(oidc: &Oidc, session: &Session, claims: &Claims) -> Result<User, Refusal> {
    let (state, settings) = (&oidc.state, &oidc.settings);
    let issuer = claims.issuer().as_str();
    let subject = claims.subject().as_str();
    let email = verified_email(claims);
    let groups = groups_of(claims, &settings.groups_claim);
    let who = email
        .clone()
        .unwrap_or_else(|| format!("subject {subject}"));
    let with_target = |mut refusal: Refusal| {
        refusal.target = Some(who.chars().take(200).collect());
        refusal
    };
    let admin = settings
        .admin_group
        .as_ref()
        .map(|group| groups.contains(group));
    let existing = store::user_by_oidc(&state.db, issuer, subject)
        .await
        .map_err(db_refusal)?;
    let mut user = match existing {
        Some(user) => user,
        None => {
            if !may_join(settings, email.as_deref(), &groups) {
                return Err(with_target(refuse(
                    OidcRefusal::NotAllowed,
                    "no account, and neither a verified address in an allowed domain nor an \
                     allowed group",
                )));
            }
            create(oidc, claims, admin.unwrap_or(false))
                .await
                .map_err(with_target)?
        }
    };
    if user.is_disabled() {
        return Err(with_target(refuse(
            OidcRefusal::Disabled,
            "the account is disabled",
        )));
    }
    if let Some(admin) = admin.filter(|a| *a != user.is_admin) {
        store::set_admin(&state.db, &user.id, admin)
            .await
            .map_err(db_refusal)?;
        user.is_admin = admin;
        let action = if admin {
            "made admin by the identity provider's group"
        } else {
            "admin role removed: not in the identity provider's admin group"
        };
        accounts::audit(state, None, action, Some(&user.username), None, None).await;
    }
    store::set_idp_groups(&state.db, &user.id, &groups)
        .await
        .map_err(db_refusal)?;
    accounts::start_session(session, &user).await.map_err(|e| {
        tracing::error!("OIDC: the session could not be started: {e}");
        refuse(OidcRefusal::Unreachable, "the session could not be stored")
    })?;
    Ok(user)
}

/// A new account for the person, under the first free name of [`names_for`].
async fn create(oidc: &Oidc, claims: &Claims, is_admin: bool) -> Result<User, Refusal> {
    let state = &oidc.state;
    let (issuer, subject) = (claims.issuer().as_str(), claims.subject().as_str());
    let budget = store::site_settings(&state.db)
        .await
        .map_err(db_refusal)?
        .default_budget_usd;
    for name in names_for(claims, issuer) {
        let new = NewUser {
            username: &name,
            password_hash: None,
            is_admin,
            monthly_budget_usd: if is_admin { None } else { budget },
            service: false,
        };
        if let Some(user) = store::create_oidc_user(&state.db, new, issuer, subject)
            .await
            .map_err(db_refusal)?
        {
            accounts::audit(
                state,
                None,
                "created by OpenID Connect",
                Some(&user.username),
                None,
                Some(format!(
                    "through {}, role {}",
                    oidc.settings.name,
                    if is_admin { "admin" } else { "user" }
                )),
            )
            .await;
            return Ok(user);
        }
        // Taken: by someone else, or by this person a moment ago in another tab.
        if let Some(user) = store::user_by_oidc(&state.db, issuer, subject)
            .await
            .map_err(db_refusal)?
        {
            return Ok(user);
        }
    }
    Err(refuse(
        OidcRefusal::NoName,
        "every username tried was taken",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(domains: &[&str], groups: &[&str]) -> OidcSettings {
        OidcSettings {
            issuer: "https://id.example.com".into(),
            client_id: "rill".into(),
            client_secret: "secret".into(),
            scopes: Vec::new(),
            redirect_url: "https://chat.example.com/auth/oidc/callback".into(),
            name: "Example".into(),
            allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
            allowed_groups: groups.iter().map(|g| g.to_string()).collect(),
            groups_claim: "groups".into(),
            admin_group: None,
            password_sign_in: true,
        }
    }

    #[test]
    fn only_allowed_domains_or_groups_join() {
        let staff = settings(&["example.com"], &["rill-users"]);
        assert!(may_join(&staff, Some("ada@example.com"), &[]));
        assert!(!may_join(&staff, Some("ada@example.com.evil.net"), &[]));
        assert!(!may_join(&staff, Some("ada@sub.example.com"), &[]));
        assert!(!may_join(&staff, None, &[]));
        assert!(may_join(&staff, None, &["rill-users".into()]));
        assert!(!may_join(&staff, Some("eve@evil.net"), &["other".into()]));
        assert!(may_join(&settings(&["*"], &[]), Some("eve@evil.net"), &[]));
        assert!(!may_join(&settings(&[], &[]), Some("ada@example.com"), &[]));
    }

    #[test]
    fn only_standard_error_codes_reach_the_audit_log() {
        assert_eq!(
            error_words("access_denied"),
            "the provider answered access_denied"
        );
        assert_eq!(
            error_words("<script>alert(1)</script>"),
            "the provider answered with an error"
        );
    }
}
