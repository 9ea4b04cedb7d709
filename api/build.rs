// The migrations are embedded (`sqlx::migrate!`) and the queries checked against them: build
// again when they change.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
