// `sqlx::migrate!` embeds `migrations/` (both engines') when the crate compiles; without this
// Cargo does not know a migration was added or changed, and an incremental build would keep
// serving the old list (what `sqlx migrate build-script` writes).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
