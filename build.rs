//! Records the source revision for `crawls.software_version`: sets
//! `XMPP_SURVEY_REVISION` to `git describe --always --dirty --tags`, or to
//! the crate version when not built in a git checkout (a crates tarball,
//! no git installed).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let revision = git(&["describe", "--always", "--dirty", "--tags"])
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    println!("cargo:rustc-env=XMPP_SURVEY_REVISION={revision}");
    println!("cargo:rerun-if-changed=build.rs");
    // Rerun when HEAD moves: HEAD itself (a checkout), the branch it points
    // to (a commit), packed refs, and the index (what --dirty compares).
    // In a worktree HEAD and the index live in the worktree's git dir, the
    // branch refs in the common one.
    // Only paths that exist: cargo reruns the script (and rebuilds the
    // crate) on every build while a watched path is missing.
    let watch = |p: PathBuf| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    let path = |p: Option<String>| p.map(PathBuf::from);
    if let Some(dir) = path(git(&["rev-parse", "--absolute-git-dir"])) {
        watch(dir.join("HEAD"));
        watch(dir.join("index"));
        let common = path(git(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-common-dir",
        ]))
        .unwrap_or(dir);
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(common.join(head_ref));
        }
        watch(common.join("packed-refs"));
    }
}
