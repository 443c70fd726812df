// The warehouse migrations are embedded (refinery's embed_migrations!):
// a new file in ../migrations must rebuild this crate.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
