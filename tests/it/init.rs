//! `dag init --example`: the pipelines shipped inside the binary are
//! written out as projects that load as they are, equal to the
//! repository's copy; an existing project is not overwritten without
//! `--force`; an unknown example says which there are.

use std::path::Path;
use std::process::{Command, Output};

fn dag(dir: &Path, args: &[&str]) -> Output {
    Command::new(testkit::dag_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("dag")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("ok").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_example_is_written_as_a_project_that_validates_where_it_is() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dag(tmp.path(), &["init", "--example", "telematics"]);
    assert!(out.status.success(), "{}", text(&out));
    let project = tmp.path().join("telematics");
    assert_eq!(
        files(&project.join("models/telematics")),
        files(&crate::fixtures::repo().join("models/telematics")),
        "the shipped copy differs from the repository's"
    );
    for csv in [
        "car_colors.csv",
        "car_models.csv",
        "drivers.csv",
        "vehicles.csv",
    ] {
        assert_eq!(
            std::fs::read(project.join("data").join(csv)).expect("csv"),
            std::fs::read(crate::fixtures::repo().join("data").join(csv)).expect("repo csv"),
            "{csv}"
        );
    }
    let out = dag(&project, &["validate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("telematics"), "{}", text(&out));

    // A second init would overwrite: refused, nothing changed.
    std::fs::write(project.join("dag.toml"), "pipeline = \"telematics\"\n").expect("ok");
    let out = dag(tmp.path(), &["init", "--example", "telematics"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing was written"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(project.join("dag.toml")).expect("ok"),
        "pipeline = \"telematics\"\n"
    );
    let out = dag(tmp.path(), &["init", "--example", "telematics", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(project.join("dag.toml"))
            .expect("ok")
            .contains("models_dir = \"models\"")
    );
}

#[test]
fn an_unknown_example_names_the_shipped_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dag(tmp.path(), &["init", "--example", "telematic"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("no example pipeline `telematic`"), "{t}");
    assert!(t.contains("`telematics`"), "{t}");
    assert!(
        std::fs::read_dir(tmp.path()).expect("ok").next().is_none(),
        "wrote files"
    );
}
