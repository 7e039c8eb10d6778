//! Share links: a snapshot anyone may read signed out, revoked by its owner, turned off by an
//! admin, gone with its conversation, and nothing of anyone else's reachable through one.

use fake_provider::FakeConfig;
use rill::model::shares::SharedLink;
use rill::server::db;
use serde_json::json;
use uuid::Uuid;

use crate::sql::sql;
use crate::support::{accounts_mode, conversation_of, Person, Setup, TestApp};

async fn team(fake: FakeConfig) -> TestApp {
    let app = TestApp::with(Setup {
        fake,
        access: accounts_mode(),
        ..Setup::default()
    })
    .await;
    app.add_user("alice", true).await;
    app.add_user("bob", false).await;
    app
}

async fn share(person: &Person, conversation: Uuid) -> SharedLink {
    let response = person
        .post(
            "share_conversation",
            json!({"conversation_id": conversation}),
        )
        .await;
    assert_eq!(response.status(), 200, "shared");
    response.json().await.expect("a link")
}

/// The page at `path` as someone signed out reads it: its status and text.
async fn open(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let response = app.visitor().get(path).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.expect("body"), headers)
}

#[tokio::test]
async fn a_shared_snapshot_is_readable_signed_out_shows_nothing_else_and_is_gone_after_revoke() {
    let app = team(FakeConfig {
        tokens: 6,
        ..Default::default()
    })
    .await;
    let alice = app.signed_in("alice").await;
    let conversation = conversation_of(&alice.turn(None, "What is a river?").await);
    let link = share(&alice, conversation).await;
    assert!(
        link.path.starts_with("/s/") && link.path.len() == 3 + 64,
        "{}",
        link.path
    );

    let (status, page, headers) = open(&app, &link.path).await;
    assert_eq!(status, 200);
    assert!(page.contains("What is a river?"), "the question");
    assert!(
        page.contains("<p>Hello wörld"),
        "the reply, rendered: {page}"
    );
    assert!(page.contains("Shared conversation"), "marked as shared");
    assert!(page.contains("<meta name=\"robots\" content=\"noindex, nofollow\">"));
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow");
    assert_eq!(headers["cache-control"], "no-store");
    let policy = headers["content-security-policy"].to_str().expect("text");
    assert!(
        policy.contains("default-src 'none'") && !policy.contains("script-src"),
        "{policy}"
    );
    // Nothing of its owner beyond the snapshot: no list, no account, no other conversation.
    assert!(!page.contains("alice"), "no account");
    assert!(!page.contains("href=\"/c/"), "no sidebar");
    assert!(!page.contains("<script"), "no script");

    // Later messages are not part of the link, nor a rename.
    alice.turn(Some(conversation), "And a lake?").await;
    alice
        .post(
            "rename_conversation",
            json!({"id": conversation, "title": "Secret plans"}),
        )
        .await;
    let (_, page, _) = open(&app, &link.path).await;
    assert!(
        !page.contains("And a lake?"),
        "a later message is not shown"
    );
    assert!(!page.contains("Secret plans"), "nor a later title");
    // Shared again, the new link shows it.
    let again = share(&alice, conversation).await;
    assert!(open(&app, &again.path).await.1.contains("And a lake?"));

    let listed: Vec<SharedLink> = alice
        .post("list_shares", json!({}))
        .await
        .json()
        .await
        .expect("links");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, again.id, "newest first");
    let revoked = alice.post("revoke_share", json!({"id": link.id})).await;
    assert_eq!(revoked.status(), 200);
    let (status, page, _) = open(&app, &link.path).await;
    assert_eq!(status, 404);
    assert!(!page.contains("river"));
    assert_eq!(open(&app, &again.path).await.0, 200, "the other link stays");
}

#[tokio::test]
async fn nobody_else_can_share_list_or_revoke_and_guessed_tokens_find_nothing() {
    let app = team(FakeConfig::default()).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let conversation = conversation_of(&alice.turn(None, "Alice's question").await);
    let link = share(&alice, conversation).await;

    // Bob names Alice's conversation and link: as if neither existed.
    let response = bob
        .post(
            "share_conversation",
            json!({"conversation_id": conversation}),
        )
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        bob.post("revoke_share", json!({"id": link.id}))
            .await
            .status(),
        404
    );
    let bobs: Vec<SharedLink> = bob
        .post("list_shares", json!({"conversation_id": conversation}))
        .await
        .json()
        .await
        .expect("links");
    assert!(bobs.is_empty());
    assert_eq!(open(&app, &link.path).await.0, 200, "still shared");

    // Altered, truncated, upper-cased and made-up tokens: 404 alike, signed in or not.
    let token = link.path.trim_start_matches("/s/");
    let flipped = format!(
        "{}{}",
        &token[..63],
        if token.ends_with('0') { '1' } else { '0' }
    );
    for path in [
        format!("/s/{flipped}"),
        format!("/s/{}", &token[..63]),
        format!("/s/{}", token.to_uppercase()),
        format!("/s/{token}0"),
        format!("/s/{}", "0".repeat(64)),
        format!("/s/{conversation}"),
    ] {
        let (status, page, _) = open(&app, &path).await;
        assert!(status == 404 || status == 303, "{path}: {status}");
        assert!(!page.contains("Alice"), "{path}");
        assert!(bob.get(&path).await.status() == 404, "{path}");
    }
    // Signed out, the API behind the links is closed.
    assert_eq!(
        app.visitor().post("list_shares", json!({})).await.status(),
        401
    );
}

#[tokio::test]
async fn an_admin_turns_sharing_off_for_everyone_and_on_again() {
    let app = team(FakeConfig::default()).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let conversation = conversation_of(&bob.turn(None, "Bob's question").await);
    let link = share(&bob, conversation).await;
    let settings = |sharing: bool| json!({"settings": {"open_signup": false, "default_budget_usd": null, "sharing": sharing}});
    assert_eq!(
        bob.post("set_site_settings", settings(false))
            .await
            .status(),
        403,
        "only admins"
    );
    assert_eq!(
        alice
            .post("set_site_settings", settings(false))
            .await
            .status(),
        200
    );
    assert_eq!(open(&app, &link.path).await.0, 404, "existing links");
    let refused = bob
        .post(
            "share_conversation",
            json!({"conversation_id": conversation}),
        )
        .await;
    assert_eq!(refused.status(), 403, "new links");
    assert!(refused.text().await.expect("body").contains("turned off"));
    alice.post("set_site_settings", settings(true)).await;
    assert_eq!(open(&app, &link.path).await.0, 200, "back when on again");
}

#[tokio::test]
async fn deleting_a_conversation_hides_its_links_and_purging_it_removes_them() {
    let app = team(FakeConfig::default()).await;
    let alice = app.signed_in("alice").await;
    let conversation = conversation_of(&alice.turn(None, "To be deleted").await);
    let link = share(&alice, conversation).await;
    alice
        .post("delete_conversation", json!({"id": conversation}))
        .await;
    assert_eq!(open(&app, &link.path).await.0, 404);
    alice
        .post("restore_conversation", json!({"id": conversation}))
        .await;
    assert_eq!(open(&app, &link.path).await.0, 200, "Undo brings it back");
    alice
        .post("delete_conversation", json!({"id": conversation}))
        .await;
    db::purge_deleted(&app.state.db, db::now_ms() + 1)
        .await
        .expect("purge");
    assert_eq!(app.count("shares").await, 0, "purged for good");
    assert_eq!(open(&app, &link.path).await.0, 404);
}

#[tokio::test]
async fn hostile_markup_in_a_shared_conversation_stays_text() {
    let app = team(FakeConfig {
        script: Some(
            [
                "<scr",
                "ipt>alert(1)</script> <img src=x onerror=alert(2)>\n\n",
                "[link](javascript:alert(3)) **bold**",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ..Default::default()
    })
    .await;
    let alice = app.signed_in("alice").await;
    let conversation = conversation_of(
        &alice
            .turn(
                None,
                "<script>alert('q')</script></div></li><iframe src=//x>",
            )
            .await,
    );
    let link = share(&alice, conversation).await;
    let (status, page, _) = open(&app, &link.path).await;
    assert_eq!(status, 200);
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<iframe"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("href=\"javascript"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(&#39;q&#39;)"),
        "the question as text: {page}"
    );
    assert!(
        page.contains("<strong>bold</strong>"),
        "markdown still renders: {page}"
    );
}

#[tokio::test]
async fn a_long_conversation_shares_its_newest_turns_within_the_bound() {
    let app = TestApp::start(FakeConfig {
        tokens: 2,
        ..Default::default()
    })
    .await;
    let turns = db::shares::SHARED_TURNS + 5;
    let conversation = conversation_of(&app.turn(None, "question number 0 here").await);
    for n in 1..turns {
        app.turn(Some(conversation), &format!("question number {n} here"))
            .await;
    }
    let response = app
        .post_json(
            "share_conversation",
            json!({"conversation_id": conversation}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let link: SharedLink = response.json().await.expect("link");
    let (status, page, _) = open(&app, &link.path).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("question number {} here", turns - 1)));
    assert!(
        page.contains("question number 5 here"),
        "the newest {}",
        db::shares::SHARED_TURNS
    );
    assert!(
        !page.contains("question number 4 here"),
        "older ones left out"
    );
    assert!(page.contains("Earlier messages of this conversation are not shown."));
    assert_eq!(
        page.matches("class=\"message user\"").count(),
        usize::try_from(db::shares::SHARED_TURNS).expect("small")
    );
}

#[tokio::test]
async fn a_continue_after_sharing_does_not_reach_the_link() {
    let app = TestApp::start(FakeConfig {
        tokens: 4,
        ..Default::default()
    })
    .await;
    let conversation = conversation_of(&app.turn(None, "Tell me more").await);
    // Cut short, as a Stop leaves it.
    sql("UPDATE messages SET status = 'stopped', content = 'the first part', html = NULL WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    let response = app
        .post_json(
            "share_conversation",
            json!({"conversation_id": conversation}),
        )
        .await;
    let link: SharedLink = response.json().await.expect("link");
    sql("UPDATE messages SET content = 'the first part and what Continue added' WHERE role = 'assistant'")
        .execute(&app.state.db)
        .await;
    let (_, page, _) = open(&app, &link.path).await;
    assert!(page.contains("the first part"), "{page}");
    assert!(!page.contains("what Continue added"), "{page}");
}
