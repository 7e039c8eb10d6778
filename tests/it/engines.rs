//! Storage on both engines (issue 28): each test here runs the same calls on a SQLite file and
//! on a fresh Postgres database (`postgres.rs`) and expects the same answers. Also: replicas
//! migrating one empty Postgres database at once, a database owner who is no superuser
//! migrating it, what the binary says of backups on Postgres (it has its own tool), and the
//! copy of a single-node database into Postgres. (The binary serving from Postgres is in
//! lifecycle.rs, with the other tests of the real binary.)

use std::collections::HashMap;
use std::process::Command;

use rill::model::accounts::{SiteSettings, Theme};
use rill::server::config::Database;
use rill::server::db::accounts::{self, NewAuditEntry, NewUser};
use rill::server::db::{self, Db, Engine, Pools};
use rill::server::sessions;
use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};

use crate::postgres;
use crate::support::private_dir;

/// Runs `check` on a fresh SQLite file, then on a fresh Postgres database.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = private_dir();
    let sqlite = db::connect(&Database::Sqlite(dir.path().join("rill.db")))
        .await
        .expect("SQLite opens");
    assert_eq!(sqlite.engine(), Engine::Sqlite);
    check(sqlite.clone()).await;
    sqlite.close().await;
    let postgres = db::connect(&postgres::fresh_database().await)
        .await
        .expect("Postgres opens");
    assert_eq!(postgres.engine(), Engine::Postgres);
    check(postgres.clone()).await;
    postgres.close().await;
}

fn new_user(username: &str) -> NewUser<'_> {
    NewUser {
        username,
        password_hash: Some("$argon2id$stand-in"),
        is_admin: false,
        monthly_budget_usd: Some(5.0),
        service: false,
    }
}

#[tokio::test]
async fn users_are_stored_and_found_alike_on_both_engines() {
    on_both(|db| async move {
        let ada = accounts::create_user(&db, new_user("Ada"))
            .await
            .expect("stored")
            .expect("a new name");
        // Names compare without case on both engines.
        assert!(accounts::create_user(&db, new_user("ADA"))
            .await
            .expect("asked")
            .is_none());
        let found = accounts::user_by_name(&db, "aDa")
            .await
            .expect("read")
            .expect("found whatever the case");
        assert_eq!(found, ada);
        assert_eq!(
            accounts::user_by_id(&db, &ada.id).await.expect("read"),
            Some(ada.clone())
        );
        for name in ["bob", "Carla", "dora_x", "dora%y"] {
            accounts::create_user(&db, new_user(name))
                .await
                .expect("stored")
                .expect("new");
        }
        assert_eq!(accounts::count_users(&db).await.expect("counted"), 5);

        // A page at a time, by name without case, LIKE's wildcards as themselves, any case.
        let names = |users: Vec<rill::model::accounts::UserView>| {
            users.into_iter().map(|u| u.username).collect::<Vec<_>>()
        };
        let first = accounts::list_users(&db, "2026-12", "", None, 2)
            .await
            .expect("listed");
        assert!(first.iter().all(|u| u.month_cost_usd == 0.0));
        assert_eq!(names(first), ["Ada", "bob"]);
        let next = accounts::list_users(&db, "2026-12", "", Some("bob"), 2)
            .await
            .expect("listed");
        assert_eq!(names(next), ["Carla", "dora%y"]);
        let filtered = accounts::list_users(&db, "2026-12", "DORA_", None, 10)
            .await
            .expect("listed");
        assert_eq!(names(filtered), ["dora_x"]);

        // Password, theme, budget, disabling.
        let devices = "digest-of-a-browser";
        accounts::remember_device(&db, &ada.id, devices)
            .await
            .expect("remembered");
        assert_eq!(
            accounts::device_user(&db, devices).await.expect("read"),
            Some(ada.id.clone())
        );
        assert!(accounts::set_password(&db, &ada.id, "$argon2id$new")
            .await
            .expect("set"));
        let changed = accounts::user_by_id(&db, &ada.id)
            .await
            .expect("read")
            .expect("there");
        assert_eq!(changed.session_epoch, 1);
        assert_eq!(changed.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(
            accounts::device_user(&db, devices).await.expect("read"),
            None,
            "a new password forgets the known browsers"
        );
        accounts::set_theme(&db, &ada.id, Theme::Dark)
            .await
            .expect("set");
        assert!(accounts::set_budget(&db, &ada.id, None).await.expect("set"));
        assert!(!accounts::set_budget(&db, "nobody", Some(1.0))
            .await
            .expect("asked"));
        assert!(accounts::set_disabled(&db, &ada.id, true)
            .await
            .expect("set"));
        let now = accounts::user_by_id(&db, &ada.id)
            .await
            .expect("read")
            .expect("there");
        assert_eq!(
            (
                now.theme.as_str(),
                now.monthly_budget_usd,
                now.is_disabled()
            ),
            ("dark", None, true)
        );
    })
    .await;
}

#[tokio::test]
async fn known_browsers_keep_the_newest_twenty_on_both_engines() {
    on_both(|db| async move {
        let ada = accounts::create_user(&db, new_user("ada"))
            .await
            .expect("stored")
            .expect("new");
        let bob = accounts::create_user(&db, new_user("bob"))
            .await
            .expect("stored")
            .expect("new");
        for n in 0..22 {
            accounts::remember_device(&db, &ada.id, &format!("d{n:02}"))
                .await
                .expect("remembered");
            // Each a millisecond apart, so that which is newest is certain.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(accounts::device_user(&db, "d00").await.expect("read"), None);
        assert_eq!(accounts::device_user(&db, "d01").await.expect("read"), None);
        assert_eq!(
            accounts::device_user(&db, "d02").await.expect("read"),
            Some(ada.id.clone())
        );
        // Another account cannot take over a browser's token.
        accounts::remember_device(&db, &bob.id, "d21")
            .await
            .expect("asked");
        assert_eq!(
            accounts::device_user(&db, "d21").await.expect("read"),
            Some(ada.id.clone())
        );
    })
    .await;
}

#[tokio::test]
async fn settings_and_the_audit_log_on_both_engines() {
    on_both(|db| async move {
        assert_eq!(
            accounts::site_settings(&db).await.expect("read"),
            SiteSettings {
                open_signup: false,
                default_budget_usd: None,
                monthly_cap_usd: None,
                sharing: true,
            }
        );
        let wanted = SiteSettings {
            open_signup: true,
            default_budget_usd: Some(2.5),
            monthly_cap_usd: Some(100.0),
            sharing: false,
        };
        accounts::set_site_settings(&db, &wanted)
            .await
            .expect("stored");
        assert_eq!(accounts::site_settings(&db).await.expect("read"), wanted);
        let back = SiteSettings {
            monthly_cap_usd: None,
            sharing: true,
            ..wanted.clone()
        };
        accounts::set_site_settings(&db, &back)
            .await
            .expect("stored");
        assert_eq!(accounts::site_settings(&db).await.expect("read"), back);

        accounts::audit(
            &db,
            &NewAuditEntry {
                actor: Some("Root"),
                action: "user created",
                target: Some("ada"),
                address: Some("127.0.0.1".into()),
                detail: None,
            },
        )
        .await
        .expect("audited");
        // Failures within the hour count on one entry per account and address (a missing
        // address is one address too).
        for address in [
            Some("10.0.0.1"),
            Some("10.0.0.1"),
            None,
            None,
            Some("10.0.0.2"),
        ] {
            accounts::audit_failure(&db, "ada", address)
                .await
                .expect("audited");
        }
        let all = accounts::audit_page(&db, "", None, 10).await.expect("read");
        let counts: Vec<(Option<&str>, u32)> = all
            .iter()
            .map(|e| (e.address.as_deref(), e.count))
            .collect();
        assert_eq!(
            counts,
            [
                (Some("10.0.0.2"), 1),
                (None, 2),
                (Some("10.0.0.1"), 2),
                (Some("127.0.0.1"), 1)
            ]
        );
        let at = &all[3].at;
        assert_eq!(at.len(), "2026-11-27 14:55:02".len(), "{at}");
        assert!(at.starts_with("20"), "{at}");
        // Filtered in any case; paged by id.
        let by_actor = accounts::audit_page(&db, "rOOT", None, 10)
            .await
            .expect("read");
        assert_eq!(by_actor.len(), 1);
        assert_eq!(by_actor[0].action, "user created");
        let older = accounts::audit_page(&db, "", Some(all[1].id), 10)
            .await
            .expect("read");
        assert_eq!(older.len(), 2);
        assert!(older.iter().all(|e| e.id < all[1].id));
    })
    .await;
}

#[tokio::test]
async fn sessions_are_stored_under_their_hash_on_both_engines() {
    on_both(|db| async move {
        let store = sessions::store(&db);
        let mut record = Record {
            id: Id::default(),
            data: HashMap::from([("user".to_owned(), serde_json::json!("ada"))]),
            expiry_date: OffsetDateTime::now_utc() + TimeDuration::days(1),
        };
        store.create(&mut record).await.expect("created");
        let loaded = store
            .load(&record.id)
            .await
            .expect("read")
            .expect("found by the cookie's id");
        assert_eq!(loaded.id, record.id);
        assert_eq!(loaded.data, record.data);
        record
            .data
            .insert("theme".to_owned(), serde_json::json!("dark"));
        store.save(&record).await.expect("saved");
        let loaded = store.load(&record.id).await.expect("read").expect("found");
        assert_eq!(loaded.data.len(), 2);

        // An expired session is gone, and the sweep removes its row.
        let mut old = Record {
            id: Id::default(),
            data: HashMap::new(),
            expiry_date: OffsetDateTime::now_utc() - TimeDuration::minutes(1),
        };
        store.create(&mut old).await.expect("created");
        assert!(store.load(&old.id).await.expect("read").is_none());
        store.delete_expired().await.expect("swept");

        store.delete(&record.id).await.expect("deleted");
        assert!(store.load(&record.id).await.expect("read").is_none());
    })
    .await;
}

fn rill(database: &Database, args: &[&str]) -> std::process::Output {
    let url = match database {
        Database::Postgres(url) => url.clone(),
        Database::Sqlite(path) => path.display().to_string(),
    };
    Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .env("RILL_DATABASE", url)
        .env("RILL_LOCAL_MODEL", "off")
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn three_replicas_migrating_one_empty_database_at_once_apply_each_migration_once() {
    let database = postgres::empty_database().await;
    let url = match &database {
        Database::Postgres(url) => url.clone(),
        Database::Sqlite(_) => unreachable!("a Postgres database"),
    };
    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_rill"))
                .arg("migrate")
                .env("RILL_DATABASE", &url)
                .env("RILL_LOCAL_MODEL", "off")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("the binary runs")
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().expect("ends");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("is up to date"));
    }
    let db = db::connect(&database).await.expect("opens");
    let db::Pools::Postgres(pool) = db.pools() else {
        unreachable!("a Postgres database")
    };
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .expect("read");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("the migrations")
        .count();
    assert_eq!(applied.len(), files, "each migration applied once");
    assert!(applied.iter().all(|(_, success)| *success));
    // And the schema works: an account made through the command line on Postgres.
    let output = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["user", "add", "--admin", "root"])
        .env("RILL_DATABASE", &url)
        .env("RILL_LOCAL_MODEL", "off")
        .env("RILL_NEW_PASSWORD", "root-password")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(accounts::count_users(&db).await.expect("counted"), 1);
    db.close().await;
}

#[tokio::test]
async fn a_database_owner_who_is_no_superuser_migrates_it_search_extension_and_all() {
    let database = postgres::database_of_a_plain_role().await;
    db::migrate(&database)
        .await
        .expect("the owner migrates its database");
    let db = db::connect(&database).await.expect("opens");
    let Pools::Postgres(pool) = db.pools() else {
        unreachable!("Postgres")
    };
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(pool)
            .await
            .expect("the role");
    assert!(!superuser);
    // `unaccent` is in (a trusted extension: the owner may create it) and search uses it.
    let words: String = sqlx::query_scalar("SELECT to_tsvector('rill_search', 'Un résumé')::text")
        .fetch_one(pool)
        .await
        .expect("the search configuration");
    assert_eq!(words, "'resume':2 'un':1");
    db.close().await;
}

#[tokio::test]
async fn a_backup_of_postgres_points_to_pg_dump_and_never_shows_the_password() {
    let Database::Postgres(url) = postgres::fresh_database().await else {
        unreachable!("a Postgres database")
    };
    let with_password = Database::Postgres(url.replace("rill@", "rill:s3cret@"));
    let dir = private_dir();
    let copy = dir.path().join("copy.db");
    let output = rill(&with_password, &["backup", &copy.display().to_string()]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("pg_dump"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
    assert!(!copy.exists());
}

#[tokio::test]
async fn a_single_node_database_moves_to_postgres_with_every_row_counted() {
    // A SQLite file to copy from, whichever engine the other tests store on.
    let app = crate::support::TestApp::with(crate::support::Setup {
        access: crate::support::accounts_mode(),
        sqlite: true,
        ..Default::default()
    })
    .await;
    let ada_id = app.add_user("ada", true).await;
    let bob_id = app.add_user("bob", false).await;
    let ada = app.signed_in("ada").await;
    let first = crate::support::conversation_of(&ada.turn(None, "hello there").await);
    ada.turn(Some(first), "and again").await;
    app.signed_in("bob").await.turn(None, "bob's own").await;
    let wrong = app
        .visitor()
        .post(
            "sign_in",
            serde_json::json!({"username": "bob", "password": "not it"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);

    let Database::Sqlite(path) = &app.state.config.database else {
        unreachable!("the harness's SQLite file")
    };
    let target = postgres::fresh_database().await;
    let Database::Postgres(url) = &target else {
        unreachable!("a Postgres database")
    };
    let copied = db::to_postgres::copy(path, url).await.expect("copied");
    for (table, rows) in &copied.0 {
        let here = app.count(table).await;
        assert_eq!(i64::try_from(*rows).expect("a count"), here, "{table}");
    }
    let rows = |table: &str| copied.0.iter().find(|(t, _)| *t == table).map(|(_, n)| *n);
    assert_eq!(rows("users"), Some(2));
    assert_eq!(rows("conversations"), Some(2));
    assert_eq!(rows("messages"), Some(6));
    assert!(rows("spending") >= Some(3), "a run per reply at least");

    // Read back through the same calls on each engine, the answers are the same.
    let sqlite = &app.state.db;
    let postgres = db::connect(&target).await.expect("opens");
    let month: String = sqlx::query_scalar("SELECT month FROM spending LIMIT 1")
        .fetch_one(sqlite.reader().expect("SQLite"))
        .await
        .expect("a month");
    assert_eq!(
        accounts::list_users(&postgres, &month, "", None, 10)
            .await
            .expect("listed"),
        accounts::list_users(sqlite, &month, "", None, 10)
            .await
            .expect("listed")
    );
    assert_eq!(
        accounts::audit_page(&postgres, "", None, 50)
            .await
            .expect("read"),
        accounts::audit_page(sqlite, "", None, 50)
            .await
            .expect("read")
    );
    assert_eq!(
        accounts::user_by_name(&postgres, "ADA")
            .await
            .expect("read")
            .map(|u| u.username),
        Some("ada".to_owned())
    );
    // The ported reads of conversations and spending agree too.
    for owner in [&ada_id, &bob_id] {
        let owner = db::Owner(owner.clone());
        assert_eq!(
            db::list_conversations(&postgres, &owner, None)
                .await
                .expect("listed"),
            db::list_conversations(sqlite, &owner, None)
                .await
                .expect("listed")
        );
        close(
            db::usage::month_spent(&postgres, &owner, &month)
                .await
                .expect("read"),
            db::usage::month_spent(sqlite, &owner, &month)
                .await
                .expect("read"),
        );
        let usage = db::usage::month_usage(&postgres, &owner, &month)
            .await
            .expect("read");
        assert!(!usage.is_empty());
        let here = db::usage::month_usage(sqlite, &owner, &month)
            .await
            .expect("read");
        assert_eq!(usage.len(), here.len());
        for (there, here) in usage.into_iter().zip(here) {
            close(there.cost_usd, here.cost_usd);
            assert_eq!(
                rill::model::accounts::UsageRow {
                    cost_usd: here.cost_usd,
                    ..there
                },
                here
            );
        }
        let runs = db::usage::month_runs(&postgres, &owner, &month, None, 100)
            .await
            .expect("read");
        assert!(!runs.is_empty());
        assert_eq!(
            runs,
            db::usage::month_runs(sqlite, &owner, &month, None, 100)
                .await
                .expect("read")
        );
        // Paged after the first run, the same again.
        let after = Some((runs[0].at, runs[0].id));
        assert_eq!(
            db::usage::month_runs(&postgres, &owner, &month, after, 100)
                .await
                .expect("read"),
            db::usage::month_runs(sqlite, &owner, &month, after, 100)
                .await
                .expect("read")
        );
    }
    close(
        db::usage::site_month_spent(&postgres, &month)
            .await
            .expect("read"),
        db::usage::site_month_spent(sqlite, &month)
            .await
            .expect("read"),
    );
    // Pinning on each engine moves the conversation out of the list into the pinned ones.
    let ada_owner = db::Owner(ada_id.clone());
    for engine in [sqlite, &postgres] {
        assert!(db::set_pinned(engine, &ada_owner, first, true)
            .await
            .expect("pinned"));
        let pinned = db::pinned_conversations(engine, &ada_owner)
            .await
            .expect("read");
        assert_eq!(pinned.iter().map(|c| c.id).collect::<Vec<_>>(), [first]);
        let listed = db::list_conversations(engine, &ada_owner, None)
            .await
            .expect("read");
        assert!(listed.iter().all(|c| c.id != first));
        assert!(
            !db::set_pinned(engine, &db::Owner(bob_id.clone()), first, false)
                .await
                .expect("asked")
        );
    }
    assert_eq!(
        db::pinned_conversations(&postgres, &ada_owner)
            .await
            .expect("read"),
        db::pinned_conversations(sqlite, &ada_owner)
            .await
            .expect("read")
    );

    // New audit entries number on after the copied ones.
    accounts::audit_failure(&postgres, "carla", None)
        .await
        .expect("audited");
    let newest = accounts::audit_page(&postgres, "", None, 1)
        .await
        .expect("read");
    assert_eq!(newest[0].target.as_deref(), Some("carla"));
    assert_eq!(
        newest[0].id,
        i64::try_from(rows("audit_log").expect("copied")).expect("a count") + 1
    );
    postgres.close().await;

    // A second copy into the same database is refused (here through the command line), and
    // changes nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("migrate-to-postgres")
        .arg(path)
        .arg(url)
        .env("RILL_LOCAL_MODEL", "off")
        .output()
        .expect("the binary runs");
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already holds"), "{said}");
    let postgres = db::connect(&target).await.expect("opens");
    assert_eq!(accounts::count_users(&postgres).await.expect("counted"), 2);
    postgres.close().await;
}

/// Sums of the same dollars, to within rounding: SQLite adds floats with compensated
/// summation, Postgres in plain order.
fn close(there: f64, here: f64) {
    assert!((there - here).abs() < 1e-12, "{there} vs {here}");
}

#[tokio::test]
async fn a_table_the_copy_does_not_know_stops_it_before_anything_is_copied() {
    let dir = private_dir();
    let path = dir.path().join("rill.db");
    let sqlite = db::connect(&Database::Sqlite(path.clone()))
        .await
        .expect("SQLite opens");
    accounts::create_user(&sqlite, new_user("ada"))
        .await
        .expect("ada");
    sqlite.close().await;
    // A table a later migration might add without listing it for the copy.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut connection = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("opened by hand");
    sqlx::query("CREATE TABLE reminders (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        .execute(&mut connection)
        .await
        .expect("a new table");
    sqlx::Connection::close(connection).await.expect("closed");

    let target = postgres::fresh_database().await;
    let Database::Postgres(url) = &target else {
        unreachable!("a Postgres database")
    };
    let refused = db::to_postgres::copy(&path, url)
        .await
        .expect_err("an unknown table is refused");
    let said = refused.to_string();
    assert!(said.contains("reminders"), "{said}");
    assert!(said.contains("nothing was copied"), "{said}");
    let postgres = db::connect(&target).await.expect("Postgres opens");
    assert_eq!(accounts::count_users(&postgres).await.expect("counted"), 0);
    postgres.close().await;
}

#[tokio::test]
async fn what_a_run_is_held_against_is_read_in_one_go_alike_on_both_engines() {
    use rill::server::db::groups::{self, Changed};
    use rill::server::db::usage::{run_limits, RunLimits};
    use rill::server::db::Owner;
    use uuid::Uuid;

    on_both(|db| async move {
        let limits_of = |id: &str| {
            let (db, owner) = (db.clone(), Owner(id.to_owned()));
            async move { run_limits(&db, &owner).await.expect("read") }
        };
        // Single-user mode's owner has no user row, no group and no cap: nothing holds it.
        assert_eq!(limits_of("local").await, RunLimits::default());
        assert!(limits_of("local").await.allows("any/model"));

        let ada = accounts::create_user(&db, new_user("Ada"))
            .await
            .expect("stored")
            .expect("new");
        let settings = SiteSettings {
            open_signup: false,
            default_budget_usd: None,
            monthly_cap_usd: Some(40.0),
            sharing: true,
        };
        accounts::set_site_settings(&db, &settings)
            .await
            .expect("saved");
        let alone = limits_of(&ada.id).await;
        assert_eq!(
            alone,
            RunLimits {
                budget: Some(5.0),
                site_cap: Some(40.0),
                groups: false,
                allowed_models: None,
            }
        );

        // Two groups, each allowing models of its own: either group's models are allowed.
        let (writers, readers, open) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (id, name, budget) in [(writers, "writers", None), (readers, "readers", Some(3.0))] {
            let created = groups::create_group(&db, id, name, budget, 0)
                .await
                .expect("stored");
            assert_eq!(created, Changed::Done);
            assert_eq!(
                groups::add_member(&db, id, &ada.id).await.expect("added"),
                Changed::Done
            );
        }
        let models = |names: &[&str]| names.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>();
        groups::set_group_models(&db, writers, &models(&["b/model", "a/model"]))
            .await
            .expect("set");
        groups::set_group_models(&db, readers, &models(&["b/model", "c/model"]))
            .await
            .expect("set");
        let grouped = limits_of(&ada.id).await;
        assert!(grouped.groups, "the readers have a budget");
        assert_eq!(
            grouped.allowed_models,
            Some(models(&["a/model", "b/model", "c/model"]))
        );
        assert!(grouped.allows("c/model") && !grouped.allows("d/model"));

        // A group that sets no models lets its members use any.
        groups::create_group(&db, open, "open", None, 0)
            .await
            .expect("stored");
        groups::add_member(&db, open, &ada.id).await.expect("added");
        assert_eq!(limits_of(&ada.id).await.allowed_models, None);
        // No one else is touched by Ada's groups.
        let bob = accounts::create_user(&db, new_user("Bob"))
            .await
            .expect("stored")
            .expect("new");
        assert_eq!(limits_of(&bob.id).await, alone);
    })
    .await;
}

#[tokio::test]
async fn a_group_deleted_while_a_member_is_added_to_it_is_no_such_group_on_postgres() {
    use rill::server::db::groups::{self, Changed};
    use uuid::Uuid;

    let db = db::connect(&postgres::fresh_database().await)
        .await
        .expect("Postgres opens");
    let Pools::Postgres(pool) = db.pools() else {
        panic!("a Postgres database");
    };
    let ada = accounts::create_user(&db, new_user("Ada"))
        .await
        .expect("stored")
        .expect("new");
    let group = Uuid::new_v4();
    let created = groups::create_group(&db, group, "writers", None, 0)
        .await
        .expect("stored");
    assert_eq!(created, Changed::Done);
    // One admin deletes the group; before that commits, another adds Ada to it.
    let mut deleting = pool.begin().await.expect("begun");
    sqlx::query("DELETE FROM user_groups WHERE id = $1")
        .bind(group.to_string())
        .execute(&mut *deleting)
        .await
        .expect("deleted");
    let adding = tokio::spawn({
        let (db, ada) = (db.clone(), ada.id.clone());
        async move { groups::add_member(&db, group, &ada).await }
    });
    // The addition waits on the group's row (the old code waited too, at its insert's check).
    let mut waiting = 0_i64;
    for _ in 0..400 {
        waiting = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .expect("read");
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(waiting, 1, "the addition waits for the deletion");
    deleting.commit().await.expect("committed");
    let added = adding.await.expect("ran");
    assert!(
        matches!(added, Ok(Changed::NoSuchGroup)),
        "the addition says the group is gone, not {added:?}"
    );
    db.close().await;
}
