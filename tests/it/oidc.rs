//! Sign-in through an OpenID Connect provider (issue 29), against the fake identity provider
//! (crates/fake-provider/src/oidc.rs) on 127.0.0.1, through the real HTTP flow: a browser with
//! its own cookies follows each redirect (Rill → provider → Rill). Each attack ends on the
//! sign-in page with a fixed word, nobody signed in, and an entry in the audit log.

use fake_provider::oidc::{FakeIdp, IdpUser, Tweaks};
use rill::server::config::OidcSettings;
use rill::server::db::accounts as store;
use serde_json::{json, Value};

use crate::support::{accounts_mode, Person, Setup, TestApp};

const CLIENT_ID: &str = "rill-tests";
const CLIENT_SECRET: &str = "a secret: with+odd/characters";

fn settings(idp: &FakeIdp) -> OidcSettings {
    OidcSettings {
        issuer: idp.issuer(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        scopes: vec!["email".into(), "profile".into()],
        // The test app puts its own address here.
        redirect_url: String::new(),
        name: "Example ID".into(),
        allowed_domains: vec!["example.com".into()],
        allowed_groups: vec!["contractors".into()],
        groups_claim: "groups".into(),
        admin_group: Some("rill-admins".into()),
        password_sign_in: true,
    }
}

async fn start(user: IdpUser, adjust: impl FnOnce(&mut OidcSettings)) -> (TestApp, FakeIdp) {
    let idp = FakeIdp::start(CLIENT_ID, CLIENT_SECRET, user)
        .await
        .expect("the identity provider starts");
    let mut oidc = settings(&idp);
    adjust(&mut oidc);
    let app = TestApp::with(Setup {
        access: accounts_mode(),
        oidc: Some(oidc),
        ..Setup::default()
    })
    .await;
    (app, idp)
}

/// Where each hop of a sign-in went: the addresses the browser was sent to, in order.
struct Trip {
    hops: Vec<String>,
}

impl Trip {
    /// The last address: where the person ends up.
    fn end(&self) -> &str {
        self.hops.last().map_or("", String::as_str)
    }

    /// The provider's redirect back to Rill (with its code and state).
    fn callback(&self) -> &str {
        self.hops
            .iter()
            .find(|h| h.contains("/auth/oidc/callback"))
            .map_or("", String::as_str)
    }
}

/// Follows redirects from `url`, as a browser would, at most 10 of them.
async fn follow(person: &Person, url: &str) -> Trip {
    let mut hops = vec![url.to_owned()];
    let mut url = url.to_owned();
    for _ in 0..10 {
        let response = person.http.get(&url).send().await.expect("reaches");
        if !response.status().is_redirection() {
            return Trip { hops };
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("a redirect says where")
            .to_owned();
        url = if location.starts_with('/') {
            format!("{}{location}", person.base_url)
        } else {
            location
        };
        hops.push(url.clone());
        // The app's own pages are where a trip ends (a browser would render them).
        if url.ends_with('/') && url.starts_with(&person.base_url) || url.contains("/signin") {
            return Trip { hops };
        }
    }
    panic!("more than 10 redirects: {hops:?}");
}

/// Presses "Sign in with …" and follows the trip to its end.
async fn sign_in(person: &Person) -> Trip {
    follow(person, &format!("{}/auth/oidc/start", person.base_url)).await
}

async fn who(person: &Person) -> Option<Value> {
    let response = person.post("current_user", json!({})).await;
    (response.status() == 200).then_some(())?;
    response.json().await.ok()
}

/// The audit log's newest entries, newest first.
async fn audit(app: &TestApp) -> Vec<rill::model::accounts::AuditEntry> {
    store::audit_page(&app.state.db, "", None, 50)
        .await
        .expect("the audit log reads")
}

/// Asserts the trip ended refused with `code`, nobody is signed in, and the newest refusal in
/// the audit log says `detail`.
async fn assert_refused(app: &TestApp, person: &Person, trip: &Trip, code: &str, detail: &str) {
    assert!(
        trip.end().ends_with(&format!("/signin?oidc={code}")),
        "refused as {code}: {:?}",
        trip.hops
    );
    assert!(who(person).await.is_none(), "nobody is signed in");
    let entries = audit(app).await;
    let refusal = entries
        .iter()
        .find(|e| e.action == "OIDC sign-in refused")
        .expect("the refusal is in the audit log");
    let words = refusal.detail.clone().unwrap_or_default();
    assert!(words.contains(detail), "{words:?} says {detail:?}");
}

/// Ada's sign-in with the provider's token spoiled by `tweaks`: refused as invalid, the log
/// naming `detail`.
async fn refused_with(tweaks: Tweaks, detail: &str) -> TestApp {
    let (app, idp) = start(IdpUser::with_email("ada@example.com"), |_| {}).await;
    idp.tweak(tweaks);
    let browser = app.visitor();
    let trip = sign_in(&browser).await;
    assert_refused(&app, &browser, &trip, "invalid", detail).await;
    app
}

#[tokio::test]
async fn a_person_signs_in_through_the_provider_and_gets_an_account() {
    let mut ada = IdpUser::with_email("Ada@Example.com");
    ada.groups = vec!["engineering".into(), "berlin".into()];
    let (app, idp) = start(ada, |_| {}).await;
    let options: Value = app
        .visitor()
        .post("sign_in_options", json!({}))
        .await
        .json()
        .await
        .expect("options");
    assert_eq!(options["single_sign_on"], "Example ID");
    assert_eq!(options["passwords"], true);

    let browser = app.visitor();
    let trip = sign_in(&browser).await;
    assert_eq!(trip.end(), format!("{}/", app.base_url), "{:?}", trip.hops);
    // Through the provider's authorization endpoint, with PKCE, state and nonce.
    let to_provider = &trip.hops[1];
    assert!(to_provider.starts_with(&idp.issuer()), "{to_provider}");
    for part in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "scope=openid",
    ] {
        assert!(to_provider.contains(part), "{to_provider} has {part}");
    }
    let me = who(&browser).await.expect("signed in");
    assert_eq!(me["username"], "ada@example.com");
    assert_eq!(me["is_admin"], false);
    // Her password is the provider's: the page offers no password change, and the server
    // refuses one in words.
    assert_eq!(me["can_change_password"], false);
    let change = browser
        .post(
            "change_password",
            json!({"current": "anything", "new": "a new password"}),
        )
        .await;
    assert_eq!(change.status(), 403);
    let words = change.text().await.expect("words");
    assert!(words.contains("no password here"), "{words}");
    assert_eq!(idp.tokens_served(), 1);

    let user = store::user_by_name(&app.state.db, "ada@example.com")
        .await
        .expect("reads")
        .expect("the account was made");
    assert!(user.password_hash.is_none(), "no password of its own");
    let groups = store::idp_groups(&app.state.db, &user.id)
        .await
        .expect("reads");
    assert_eq!(groups, ["berlin", "engineering"]);
    let entries = audit(&app).await;
    assert!(entries
        .iter()
        .any(|e| e.action == "created by OpenID Connect"
            && e.target.as_deref() == Some("ada@example.com")));
    assert!(entries.iter().any(|e| e.action == "signed in"
        && e.actor.as_deref() == Some("ada@example.com")
        && e.detail.as_deref() == Some("through Example ID (OpenID Connect)")));

    // A second sign-in (another browser) finds the same account by subject, not a new one.
    let again = app.visitor();
    let trip = sign_in(&again).await;
    assert_eq!(trip.end(), format!("{}/", app.base_url));
    assert_eq!(
        who(&again).await.expect("signed in")["username"],
        "ada@example.com"
    );
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = refused_with(
        Tweaks {
            audience: Some("another-client".into()),
            ..Tweaks::default()
        },
        "another client",
    )
    .await;
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    refused_with(
        Tweaks {
            expired: true,
            ..Tweaks::default()
        },
        "expired",
    )
    .await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    refused_with(
        Tweaks {
            issuer: Some("https://evil.example.net".into()),
            ..Tweaks::default()
        },
        "another issuer",
    )
    .await;
}

#[tokio::test]
async fn a_token_signed_by_a_key_the_provider_does_not_publish_is_refused() {
    refused_with(
        Tweaks {
            unpublished_key: true,
            ..Tweaks::default()
        },
        "signature",
    )
    .await;
}

#[tokio::test]
async fn a_token_with_another_nonce_is_refused() {
    refused_with(
        Tweaks {
            nonce: Some("a nonce from another sign-in".into()),
            ..Tweaks::default()
        },
        "nonce",
    )
    .await;
}

#[tokio::test]
async fn a_replayed_or_forged_state_is_refused() {
    let (app, idp) = start(IdpUser::with_email("ada@example.com"), |_| {}).await;
    let browser = app.visitor();
    let trip = sign_in(&browser).await;
    assert_eq!(trip.end(), format!("{}/", app.base_url));
    let callback = trip.callback().to_owned();
    assert!(!callback.is_empty(), "{:?}", trip.hops);

    // The same answer again, in the same browser: its state was used.
    let replay = follow(&browser, &callback).await;
    assert!(
        replay.end().ends_with("/signin?oidc=expired"),
        "{:?}",
        replay.hops
    );
    // And in another browser (an attacker's link: a login CSRF).
    let victim = app.visitor();
    let replay = follow(&victim, &callback).await;
    assert_refused(
        &app,
        &victim,
        &replay,
        "expired",
        "no sign-in was under way",
    )
    .await;

    // A sign-in under way with the state changed: refused, and the real one is used up too.
    let other = app.visitor();
    let to_provider = other
        .get("/auth/oidc/start")
        .await
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("to the provider")
        .to_owned();
    let back = other
        .http
        .get(&to_provider)
        .send()
        .await
        .expect("reaches")
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("back to Rill")
        .to_owned();
    let (before, state) = back.split_once("state=").expect("a state");
    let forged = format!("{before}state=x{state}");
    let trip = follow(&other, &forged).await;
    assert_refused(&app, &other, &trip, "expired", "state did not match").await;
    let trip = follow(&other, &back).await;
    assert!(
        trip.end().ends_with("/signin?oidc=expired"),
        "{:?}",
        trip.hops
    );
    // The provider was asked for one token: the refused answers never reached it.
    assert_eq!(idp.tokens_served(), 1);
}

#[tokio::test]
async fn new_keys_are_fetched_when_the_provider_rotates() {
    let (app, idp) = start(IdpUser::with_email("ada@example.com"), |_| {}).await;
    let first = app.visitor();
    assert_eq!(sign_in(&first).await.end(), format!("{}/", app.base_url));
    let fetched = idp.keys_served();
    // The old key is gone from the JWKS; tokens are signed with the new one.
    idp.rotate_keys().await.expect("a new key");
    let second = app.visitor();
    let trip = sign_in(&second).await;
    assert_eq!(trip.end(), format!("{}/", app.base_url), "{:?}", trip.hops);
    assert_eq!(
        who(&second).await.expect("signed in")["username"],
        "ada@example.com"
    );
    assert_eq!(
        idp.keys_served(),
        fetched + 1,
        "the keys were read again, once"
    );
    // A token under the new key that the JWKS does not hold still fails after the refetch.
    idp.tweak(Tweaks {
        unpublished_key: true,
        ..Tweaks::default()
    });
    let third = app.visitor();
    let trip = sign_in(&third).await;
    assert_refused(&app, &third, &trip, "invalid", "signature").await;
}

#[tokio::test]
async fn people_outside_the_allowed_domains_and_groups_get_no_account() {
    let (app, idp) = start(IdpUser::with_email("eve@evil.example.net"), |_| {}).await;
    let browser = app.visitor();
    let trip = sign_in(&browser).await;
    assert_refused(&app, &browser, &trip, "not-allowed", "no account").await;
    let entries = audit(&app).await;
    assert_eq!(
        entries[0].target.as_deref(),
        Some("eve@evil.example.net"),
        "the audit log names who"
    );

    // An address in the domain the provider has not verified does not count.
    let mut unverified = IdpUser::with_email("mallory@example.com");
    unverified.email_verified = false;
    idp.sign_in_as(unverified);
    let trip = sign_in(&app.visitor()).await;
    assert!(
        trip.end().ends_with("/signin?oidc=not-allowed"),
        "{:?}",
        trip.hops
    );
    assert_eq!(app.count("users").await, 0);

    // A member of an allowed group joins whatever the address.
    let mut contractor = IdpUser::with_email("bob@contractor.example.org");
    contractor.groups = vec!["contractors".into()];
    idp.sign_in_as(contractor);
    let browser = app.visitor();
    assert_eq!(sign_in(&browser).await.end(), format!("{}/", app.base_url));
    assert_eq!(
        who(&browser).await.expect("signed in")["username"],
        "bob@contractor.example.org"
    );
}

#[tokio::test]
async fn the_admin_group_makes_admins_and_leaving_it_unmakes_them() {
    let mut grace = IdpUser::with_email("grace@example.com");
    grace.groups = vec!["rill-admins".into()];
    let (app, idp) = start(grace.clone(), |_| {}).await;
    let browser = app.visitor();
    assert_eq!(sign_in(&browser).await.end(), format!("{}/", app.base_url));
    let me = who(&browser).await.expect("signed in");
    assert_eq!(me["is_admin"], true);
    // An admin's server function answers.
    let list = json!({"filter": "", "after": null});
    let users = browser.post("list_users", list.clone()).await;
    assert_eq!(users.status(), 200, "an admin lists users");

    grace.groups.clear();
    idp.sign_in_as(grace);
    let later = app.visitor();
    assert_eq!(sign_in(&later).await.end(), format!("{}/", app.base_url));
    assert_eq!(who(&later).await.expect("signed in")["is_admin"], false);
    // The earlier session is no admin's either: the role is read at each request.
    assert_eq!(
        who(&browser).await.expect("still signed in")["is_admin"],
        false
    );
    assert_eq!(browser.post("list_users", list).await.status(), 403);
    assert!(audit(&app)
        .await
        .iter()
        .any(|e| e.action.starts_with("admin role removed")));
}

#[tokio::test]
async fn password_sign_in_can_be_turned_off() {
    let (app, _idp) = start(IdpUser::with_email("ada@example.com"), |oidc| {
        oidc.password_sign_in = false;
    })
    .await;
    app.add_user("carol", false).await;
    let refused = app
        .visitor()
        .post(
            "sign_in",
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.expect("words");
    assert!(body.contains("passwords do not sign in here"), "{body}");
    let options: Value = app
        .visitor()
        .post("sign_in_options", json!({}))
        .await
        .json()
        .await
        .expect("options");
    assert_eq!(options["passwords"], false);
    assert_eq!(options["open_signup"], false);
    let browser = app.visitor();
    assert_eq!(sign_in(&browser).await.end(), format!("{}/", app.base_url));
}

#[tokio::test]
async fn what_the_provider_says_in_a_refusal_is_not_shown_or_stored() {
    let (app, idp) = start(IdpUser::with_email("ada@example.com"), |_| {}).await;
    idp.tweak(Tweaks {
        deny: Some("<script>alert('pwned')</script> call +1-555-SCAM".into()),
        ..Tweaks::default()
    });
    let browser = app.visitor();
    let trip = sign_in(&browser).await;
    assert_refused(&app, &browser, &trip, "denied", "access_denied").await;
    let page = browser
        .get("/signin?oidc=denied")
        .await
        .text()
        .await
        .expect("page");
    assert!(!page.contains("SCAM") && !page.contains("pwned"));
    for entry in audit(&app).await {
        let text = format!("{entry:?}");
        assert!(!text.contains("SCAM"), "{text}");
    }
}

#[tokio::test]
async fn sign_in_with_the_provider_is_not_offered_unless_set_up() {
    let app = TestApp::with_accounts().await;
    let response = app.visitor().get("/auth/oidc/start").await;
    // Anonymous and unknown: to the sign-in page, like any page that is not public.
    assert!(
        response.status().is_redirection() || response.status() == 404,
        "{}",
        response.status()
    );
    let options: Value = app
        .visitor()
        .post("sign_in_options", json!({}))
        .await
        .json()
        .await
        .expect("options");
    assert_eq!(options["single_sign_on"], Value::Null);
    assert_eq!(options["passwords"], true);
}

#[tokio::test]
async fn a_provider_account_never_takes_over_a_local_account_of_the_same_name() {
    let (app, _idp) = start(IdpUser::with_email("root@example.com"), |_| {}).await;
    let local = app.add_user("root@example.com", true).await;
    let browser = app.visitor();
    assert_eq!(sign_in(&browser).await.end(), format!("{}/", app.base_url));
    let me = who(&browser).await.expect("signed in");
    let name = me["username"].as_str().expect("a name").to_owned();
    assert!(name.starts_with("root@example.com-"), "{name}");
    assert_eq!(me["is_admin"], false, "not the local admin");
    let user = store::user_by_name(&app.state.db, &name)
        .await
        .expect("reads")
        .expect("its own account");
    assert_ne!(user.id, local);
}
