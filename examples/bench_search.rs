//! Search at scale: one person with 10,000 conversations and 200,000 messages (and another
//! person with 1,000 more, whose messages the queries must pass over). Run in release:
//!
//! ```sh
//! cargo run --release --features ssr --example bench_search
//! ```
//!
//! The rows are written straight into a temporary SQLite file through the app's migrations, so
//! the FTS5 indexes are filled by the same triggers that fill them when serving. Text is drawn
//! from a vocabulary of 20,000 made-up words, common ones far more often than rare ones (Zipf),
//! 20 to 120 words a message. Then 400 searches, as the sidebar sends them, through
//! `server::search::search`: a common word, a rare one, two words, a prefix being typed, and a
//! quoted phrase taken from a stored message. Prints p50, p95 and the slowest, in all and per
//! kind. `DB=path` keeps the database there, and a second run reuses its rows (filling takes a
//! minute or two), e.g. to look at a query's plan with `sqlite3`.

use std::time::{Duration, Instant};

use rill::server::db::{self, Owner};
use rill::server::search;

const CONVERSATIONS: usize = 10_000;
const MESSAGES_EACH: usize = 20;
const OTHER_CONVERSATIONS: usize = 1_000;
const VOCABULARY: usize = 20_000;
const QUERIES_PER_KIND: usize = 80;

/// xorshift64*: the same rows on every run, with no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A word index, small ones far more often (about Zipf's law: rank 1/x).
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

fn vocabulary(random: &mut Random) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "pa", "qu", "di", "fo", "ga", "hu",
        "je", "bo", "ci", "xe", "ly", "wa", "té", "ré", "nu",
    ];
    (0..VOCABULARY)
        .map(|i| {
            let mut word: String = (0..2 + random.below(3))
                .map(|_| SYLLABLES[random.below(SYLLABLES.len())])
                .collect();
            // Unique: the index suffix keeps every word apart.
            word.push_str(&format!("{i}"));
            word
        })
        .collect()
}

fn text(random: &mut Random, words: &[String]) -> String {
    let n = 20 + random.below(100);
    (0..n)
        .map(|_| words[random.zipf(words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn fill(
    db: &db::Db,
    owner: &str,
    conversations: usize,
    random: &mut Random,
    words: &[String],
) {
    let mut tx = db
        .writer()
        .expect("SQLite")
        .begin()
        .await
        .expect("transaction");
    let now = db::now_ms();
    for c in 0..conversations {
        let id = uuid::Uuid::new_v4().to_string();
        let title = text(random, words)
            .split(' ')
            .take(5)
            .collect::<Vec<_>>()
            .join(" ");
        let at = now - (conversations - c) as i64 * 60_000;
        sqlx::query(
            "INSERT INTO conversations (id, owner, title, model, created_at, updated_at)
             VALUES (?, ?, ?, 'fake/fake-model', ?, ?)",
        )
        .bind(&id)
        .bind(owner)
        .bind(title)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await
        .expect("conversation");
        let mut parent: Option<String> = None;
        for m in 0..MESSAGES_EACH {
            let (role, turn) = if m % 2 == 0 {
                ("user", uuid::Uuid::new_v4().to_string())
            } else {
                ("assistant", parent.clone().unwrap_or_default())
            };
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, turn_id, role, content, status,
                     position, parent_turn_id, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&id)
            .bind(&turn)
            .bind(role)
            .bind(text(random, words))
            .bind(m as i64 + 1)
            .bind(if role == "user" { parent.clone() } else { None })
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .expect("message");
            if role == "user" {
                parent = Some(turn);
            }
        }
        sqlx::query("UPDATE conversations SET current_turn_id = ? WHERE id = ?")
            .bind(&parent)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .expect("branch");
    }
    tx.commit().await.expect("commit");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "{name:<10} n={:>4}  p50 {:>7.2} ms  p95 {:>7.2} ms  max {:>7.2} ms",
        times.len(),
        percentile(times, 0.5).as_secs_f64() * 1e3,
        percentile(times, 0.95).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = std::env::var_os("DB").map_or_else(|| dir.path().join("bench.db"), Into::into);
    let db = db::connect(&rill::server::config::Database::Sqlite(path.clone()))
        .await
        .expect("database");
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let words = vocabulary(&mut random);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations")
        .fetch_one(db.reader().expect("SQLite"))
        .await
        .expect("count");
    if stored == 0 {
        let filling = Instant::now();
        fill(&db, "bench", CONVERSATIONS, &mut random, &words).await;
        fill(&db, "other", OTHER_CONVERSATIONS, &mut random, &words).await;
        println!(
            "filled {CONVERSATIONS} conversations, {} messages (+{OTHER_CONVERSATIONS} of another person) in {:.1} s",
            CONVERSATIONS * MESSAGES_EACH,
            filling.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing the {stored} conversations in {}", path.display());
    }
    let owner = Owner("bench".into());
    // Queries drawn apart from the rows, so a reused database is searched for the same words.
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    // Phrases as stored: two neighbouring words of some message.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT content FROM messages ORDER BY random() LIMIT ?")
            .bind(QUERIES_PER_KIND as i64)
            .fetch_all(db.reader().expect("SQLite"))
            .await
            .expect("messages");
    let mut kinds: Vec<(&str, Vec<String>)> = vec![
        (
            "common",
            (0..QUERIES_PER_KIND)
                .map(|i| words[i % 20].clone())
                .collect(),
        ),
        (
            "rare",
            (0..QUERIES_PER_KIND)
                .map(|_| words[VOCABULARY / 2 + random.below(VOCABULARY / 2)].clone())
                .collect(),
        ),
        (
            "two words",
            (0..QUERIES_PER_KIND)
                .map(|_| {
                    format!(
                        "{} {}",
                        words[random.zipf(VOCABULARY)],
                        words[random.zipf(VOCABULARY)]
                    )
                })
                .collect(),
        ),
        (
            "prefix",
            (0..QUERIES_PER_KIND)
                .map(|_| words[random.zipf(VOCABULARY)].chars().take(3).collect())
                .collect(),
        ),
        (
            "phrase",
            stored
                .iter()
                .map(|t| {
                    format!(
                        "\"{}\"",
                        t.split(' ').skip(3).take(2).collect::<Vec<_>>().join(" ")
                    )
                })
                .collect(),
        ),
    ];
    // Once through to warm the page cache, as a running server's would be.
    for (_, queries) in &kinds {
        for q in queries.iter().take(5) {
            search::search(&db, &owner, q).await.expect("search");
        }
    }
    let mut all = Vec::new();
    let mut found = 0usize;
    for (name, queries) in &mut kinds {
        let mut times = Vec::new();
        for q in queries.iter() {
            let start = Instant::now();
            let hits = search::search(&db, &owner, q).await.expect("search");
            times.push(start.elapsed());
            found += usize::from(!hits.is_empty());
        }
        report(name, &mut times);
        all.extend(times);
    }
    report("all", &mut all);
    println!("{found} of {} searches found something", all.len());
}
