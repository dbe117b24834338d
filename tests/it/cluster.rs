//! Cluster mode with real processes: the examples, started as a user
//! starts them through `spate-launch`, give exactly the local-mode result
//! on 1, 2 and 4 processes; a killed executor's work is redone elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built example `name` (`cargo test` builds the examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    target.join("examples").join(name)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `name ARGS` in local mode (one process, two threads).
fn local(name: &str, args: &[&str]) -> Output {
    run(Command::new(example(name))
        .args(args)
        .env_remove("SPATE_RANK")
        .env_remove("SLURM_PROCID"))
}

/// `spate-launch -n N -- name ARGS`, one thread per process.
fn launched(n: usize, name: &str, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", &n.to_string(), "--"])
        .arg(example(name))
        .args(args)
        .env("SPATE_STARTUP_TIMEOUT_MS", "60000"))
}

/// The lines of every part file of `dir`, sorted (part boundaries may
/// differ with the partition count; the records may not).
fn output_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"_SUCCESS".to_string()),
        "committed: {names:?}"
    );
    assert!(
        !names.contains(&"_temporary".to_string()),
        "no leftovers: {names:?}"
    );
    for name in names.iter().filter(|n| n.starts_with("part-")) {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        lines.extend(text.lines().map(String::from));
    }
    lines.sort();
    lines
}

fn write_inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    use std::fmt::Write;
    let mut text = String::new();
    let mut pairs = String::new();
    let mut orders = String::new();
    let mut customers = String::new();
    let mut x: u64 = 12345;
    for i in 0..20_000u64 {
        // A small LCG: skewed keys, repeatable.
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = (x >> 33) % if i % 3 == 0 { 7 } else { 5000 };
        writeln!(text, "w{key} w{} the", key % 13).unwrap();
        writeln!(pairs, "k{key}\t{}", (x >> 40) % 1000).unwrap();
        writeln!(orders, "{i}\t{}\t{}", key % 3000, (x >> 20) % 100).unwrap();
    }
    for c in 0..2500 {
        writeln!(customers, "{c}\tcustomer-{c}").unwrap();
    }
    // Malformed lines count in an accumulator, merged from every process.
    pairs.push_str("no tab here\nneither\n");
    let paths = (
        dir.join("text.txt"),
        dir.join("pairs.tsv"),
        dir.join("orders.tsv"),
        dir.join("customers.tsv"),
    );
    std::fs::write(&paths.0, text).unwrap();
    std::fs::write(&paths.1, pairs).unwrap();
    std::fs::write(&paths.2, orders).unwrap();
    std::fs::write(&paths.3, customers).unwrap();
    paths
}

#[test]
fn the_examples_give_the_local_result_on_one_two_and_four_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let (text, pairs, orders, customers) = write_inputs(tmp.path());
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = |name: &str| s(&tmp.path().join(name));

    // Local references.
    let wc_local = local("word_count", &[&s(&text), "--output", &out("wc-local")]);
    local("group_sum", &[&s(&pairs), "--output", &out("gs-local")]);
    local("sort", &[&s(&pairs), "--output", &out("sort-local")]);
    local(
        "join",
        &[&s(&orders), &s(&customers), "--output", &out("join-local")],
    );
    let pr_local = local("page_rank", &["--checkpoint-every", "2"]);

    for n in [1, 2, 4] {
        let wc = launched(
            n,
            "word_count",
            &[
                &s(&text),
                "--threads",
                "1",
                "--output",
                &out(&format!("wc-{n}")),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&wc.stdout),
            String::from_utf8_lossy(&wc_local.stdout),
            "word_count's report on {n} processes"
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("wc-{n}"))),
            output_lines(&tmp.path().join("wc-local")),
            "word_count's output on {n} processes"
        );
        let gs = launched(
            n,
            "group_sum",
            &[&s(&pairs), "--output", &out(&format!("gs-{n}"))],
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("gs-{n}"))),
            output_lines(&tmp.path().join("gs-local")),
            "group_sum on {n} processes"
        );
        let stderr = String::from_utf8_lossy(&gs.stderr);
        assert!(
            stderr.contains("skipped 2 malformed lines"),
            "the accumulator merged every process's updates once: {stderr}"
        );
        launched(
            n,
            "sort",
            &[&s(&pairs), "--output", &out(&format!("sort-{n}"))],
        );
        // Sorted output: compare the concatenation in part order as well.
        let concat = |dir: &str| {
            let mut names: Vec<_> = std::fs::read_dir(tmp.path().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("part-")
                })
                .collect();
            names.sort();
            names
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap())
                .collect::<String>()
        };
        // Keys in the same order; values of equal keys in any order (the
        // partition count differs from the local run's).
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.split('\t').next().unwrap().to_string())
                .collect()
        };
        let (got, want) = (concat(&format!("sort-{n}")), concat("sort-local"));
        assert!(
            keys(&got) == keys(&want),
            "sort's key order on {n} processes"
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("sort-{n}"))),
            output_lines(&tmp.path().join("sort-local")),
            "sort's records on {n} processes"
        );
        launched(
            n,
            "join",
            &[
                &s(&orders),
                &s(&customers),
                "--output",
                &out(&format!("join-{n}")),
            ],
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("join-{n}"))),
            output_lines(&tmp.path().join("join-local")),
            "join on {n} processes"
        );
        let pr = launched(n, "page_rank", &["--checkpoint-every", "2"]);
        assert_eq!(
            String::from_utf8_lossy(&pr.stdout),
            String::from_utf8_lossy(&pr_local.stdout),
            "page_rank (cached, checkpointed) on {n} processes"
        );
    }
}

#[test]
fn a_failing_process_stops_the_launch_with_its_status() {
    let out = Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", "2", "--"])
        .arg(example("word_count"))
        .arg("/nonexistent/input.txt")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/input.txt"), "{stderr}");
}
