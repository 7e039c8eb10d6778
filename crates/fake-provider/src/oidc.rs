//! A small OpenID Connect provider on 127.0.0.1 for Rill's sign-in tests: discovery, a JWKS
//! whose keys it generates and can rotate, an authorization endpoint that signs in whoever the
//! test names (no login form), and a token endpoint that checks the client, the redirect URL
//! and PKCE and answers with an RS256-signed ID token. Each next token can be spoiled on purpose
//! (another audience or issuer, already expired, another nonce, a key it does not publish) so
//! the tests see the client refuse it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AdditionalClaims, Audience, EndUserEmail, EndUserName, IdToken, IdTokenClaims, IssuerUrl,
    JsonWebKeyId, Nonce, PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey, StandardClaims,
    SubjectIdentifier,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The claim the fake puts group names in (Keycloak's, Okta's and Authentik's default name).
pub const GROUPS_CLAIM: &str = "groups";

/// Who signs in at the next authorization.
#[derive(Clone, Debug, PartialEq)]
pub struct IdpUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
}

impl IdpUser {
    /// A person with a verified address at `email`, subject `sub-<email>`, in no group.
    pub fn with_email(email: &str) -> Self {
        Self {
            subject: format!("sub-{email}"),
            email: Some(email.to_owned()),
            email_verified: true,
            name: None,
            preferred_username: None,
            groups: Vec::new(),
        }
    }
}

/// How the next ID tokens are spoiled (all off by default).
#[derive(Clone, Debug, Default)]
pub struct Tweaks {
    /// Issued to this audience instead of the client.
    pub audience: Option<String>,
    /// Naming this issuer instead of the fake's own.
    pub issuer: Option<String>,
    /// Expired a minute before it was issued… an hour ago.
    pub expired: bool,
    /// Carrying this nonce instead of the one the client sent.
    pub nonce: Option<String>,
    /// Signed by a key the JWKS does not hold, under the published key's id.
    pub unpublished_key: bool,
    /// The authorization endpoint refuses with `error=access_denied` and this description.
    pub deny: Option<String>,
}

/// The ID token's claims beyond the standard ones: the groups.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct GroupClaims {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    groups: Vec<String>,
}
impl AdditionalClaims for GroupClaims {}

type FakeIdToken = IdToken<
    GroupClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// An RSA key: what signs and what the JWKS publishes.
struct Key {
    pem: String,
    kid: String,
}

impl Key {
    fn generate(kid: String) -> Result<Self, String> {
        use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
        let private =
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| e.to_string())?;
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(Self { pem, kid })
    }

    fn signer(&self, kid: &str) -> Result<CoreRsaPrivateSigningKey, String> {
        CoreRsaPrivateSigningKey::from_pem(&self.pem, Some(JsonWebKeyId::new(kid.to_owned())))
    }

    fn public(&self) -> Result<CoreJsonWebKey, String> {
        Ok(self.signer(&self.kid)?.as_verification_key())
    }
}

/// What an authorization code stands for until it is exchanged (once).
struct Grant {
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    user: IdpUser,
}

struct Inner {
    client_id: String,
    client_secret: String,
    /// The key that signs; the JWKS publishes `published`.
    signing: Key,
    published: Vec<CoreJsonWebKey>,
    /// Signs the tokens of [`Tweaks::unpublished_key`].
    stranger: Option<Key>,
    user: IdpUser,
    tweaks: Tweaks,
    codes: HashMap<String, Grant>,
    keys_served: usize,
    tokens_served: usize,
    rotations: usize,
}

#[derive(Clone)]
struct Shared {
    issuer: String,
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake identity provider; stops when dropped.
pub struct FakeIdp {
    pub addr: SocketAddr,
    shared: Shared,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeIdp {
    /// Starts on a free port of 127.0.0.1 for the client `client_id`/`client_secret`, with one
    /// freshly generated key; `user` signs in until told otherwise.
    pub async fn start(
        client_id: &str,
        client_secret: &str,
        user: IdpUser,
    ) -> std::io::Result<Self> {
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id,
            client_secret,
            user,
        )
        .await
    }

    pub async fn start_on(
        addr: SocketAddr,
        client_id: &str,
        client_secret: &str,
        user: IdpUser,
    ) -> std::io::Result<Self> {
        let signing = generate("key-1".into()).await?;
        let published = vec![signing.public().map_err(std::io::Error::other)?];
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            issuer: format!("http://{addr}"),
            inner: Arc::new(Mutex::new(Inner {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
                signing,
                published,
                stranger: None,
                user,
                tweaks: Tweaks::default(),
                codes: HashMap::new(),
                keys_served: 0,
                tokens_served: 0,
                rotations: 0,
            })),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async { drop(rx.await) })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            _shutdown: tx,
        })
    }

    /// The issuer URL (`http://127.0.0.1:PORT`), which is also the discovery root.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// Who signs in at the next authorization.
    pub fn sign_in_as(&self, user: IdpUser) {
        lock(&self.shared.inner).user = user;
    }

    /// How the next tokens are spoiled (until set again).
    pub fn tweak(&self, tweaks: Tweaks) {
        lock(&self.shared.inner).tweaks = tweaks;
    }

    /// A new signing key replaces the old one, in the JWKS too (the old one is gone at once, as
    /// after a provider's emergency rotation).
    pub async fn rotate_keys(&self) -> std::io::Result<()> {
        let n = lock(&self.shared.inner).rotations + 2;
        let key = generate(format!("key-{n}")).await?;
        let public = key.public().map_err(std::io::Error::other)?;
        let mut inner = lock(&self.shared.inner);
        inner.signing = key;
        inner.published = vec![public];
        inner.rotations += 1;
        Ok(())
    }

    /// How many times the JWKS was fetched.
    pub fn keys_served(&self) -> usize {
        lock(&self.shared.inner).keys_served
    }

    /// How many ID tokens the token endpoint issued.
    pub fn tokens_served(&self) -> usize {
        lock(&self.shared.inner).tokens_served
    }
}

/// RSA key generation takes a while: off the runtime's threads.
async fn generate(kid: String) -> std::io::Result<Key> {
    tokio::task::spawn_blocking(move || Key::generate(kid))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}

async fn discovery(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "email", "email_verified", "name", "preferred_username", GROUPS_CLAIM],
    }))
}

async fn jwks(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let mut inner = lock(&shared.inner);
    inner.keys_served += 1;
    Json(json!({ "keys": inner.published }))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(State(shared): State<Shared>, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut inner = lock(&shared.inner);
    let (Some(redirect_uri), Some(state)) = (q.redirect_uri, q.state) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        )
            .into_response();
    };
    if q.client_id.as_deref() != Some(inner.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let Ok(mut back) = openidconnect::url::Url::parse(&redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    if let Some(description) = inner.tweaks.deny.clone() {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", &description)
            .append_pair("state", &state);
        return Redirect::to(back.as_str()).into_response();
    }
    let (Some("code"), Some(challenge), Some("S256")) = (
        q.response_type.as_deref(),
        q.code_challenge,
        q.code_challenge_method.as_deref(),
    ) else {
        return (StatusCode::BAD_REQUEST, "code flow with S256 PKCE only").into_response();
    };
    let code = openidconnect::CsrfToken::new_random().secret().clone();
    let user = inner.user.clone();
    inner.codes.insert(
        code.clone(),
        Grant {
            redirect_uri,
            code_challenge: challenge,
            nonce: q.nonce,
            user,
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    Redirect::to(back.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

/// The client's id and secret: HTTP Basic (percent-encoded, RFC 6749 §2.3.1) or the form's.
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    use base64::Engine;
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if let Some(pair) = basic {
        let (id, secret) = pair.split_once(':')?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        };
        return Some((decode(id)?, decode(secret)?));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let mut inner = lock(&shared.inner);
    if form.grant_type.as_deref() != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    match client_credentials(&headers, &form) {
        Some((id, secret)) if id == inner.client_id && secret == inner.client_secret => {}
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "invalid_client" })),
            )
                .into_response()
        }
    }
    // A code is good once, whatever happens next.
    let Some(grant) = form.code.as_ref().and_then(|c| inner.codes.remove(c)) else {
        return token_error("invalid_grant");
    };
    let verifier = PkceCodeVerifier::new(form.code_verifier.clone().unwrap_or_default());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
        || challenge.as_str() != grant.code_challenge
    {
        return token_error("invalid_grant");
    }
    match id_token(&shared.issuer, &mut inner, grant) {
        Ok(id_token) => {
            inner.tokens_served += 1;
            Json(json!({
                "access_token": openidconnect::CsrfToken::new_random().secret(),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }))
            .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

fn id_token(issuer: &str, inner: &mut Inner, grant: Grant) -> Result<String, String> {
    let tweaks = inner.tweaks.clone();
    let now = chrono::Utc::now();
    let (issued, expires) = if tweaks.expired {
        (
            now - chrono::Duration::hours(1),
            now - chrono::Duration::minutes(59),
        )
    } else {
        (now, now + chrono::Duration::minutes(5))
    };
    let user = grant.user;
    let mut standard = StandardClaims::new(SubjectIdentifier::new(user.subject));
    if let Some(email) = user.email {
        standard = standard
            .set_email(Some(EndUserEmail::new(email)))
            .set_email_verified(Some(user.email_verified));
    }
    if let Some(name) = user.name {
        standard = standard.set_name(Some(EndUserName::new(name).into()));
    }
    if let Some(preferred) = user.preferred_username {
        standard =
            standard.set_preferred_username(Some(openidconnect::EndUserUsername::new(preferred)));
    }
    let issuer = IssuerUrl::new(tweaks.issuer.unwrap_or_else(|| issuer.to_owned()))
        .map_err(|e| e.to_string())?;
    let audience = tweaks.audience.unwrap_or_else(|| inner.client_id.clone());
    let claims = IdTokenClaims::new(
        issuer,
        vec![Audience::new(audience)],
        expires,
        issued,
        standard,
        GroupClaims {
            groups: user.groups,
        },
    )
    .set_nonce(tweaks.nonce.or(grant.nonce).map(Nonce::new));
    let signer = if tweaks.unpublished_key {
        if inner.stranger.is_none() {
            inner.stranger = Some(Key::generate("stranger".into())?);
        }
        let stranger = inner.stranger.as_ref().ok_or("no key")?;
        // The published key's id on a signature the published key did not make.
        stranger.signer(&inner.signing.kid)?
    } else {
        inner.signing.signer(&inner.signing.kid)?
    };
    let token = FakeIdToken::new(
        claims,
        &signer,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(token.to_string())
}
