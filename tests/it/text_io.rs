//! Reading text files: splits, line endings, errors.

use crate::common::ctx;
use spate::Error;
use std::io::Write;

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

/// Lines as `str::lines` sees them (it also strips a trailing `\r`).
fn reference_lines(text: &str) -> Vec<String> {
    text.lines().map(String::from).collect()
}

#[test]
fn every_line_is_read_exactly_once_whatever_the_split_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..500 {
        let len = (i * 7919) % 97;
        text.push_str(&"x".repeat(len));
        text.push_str(&format!("{i}"));
        text.push_str(if i % 5 == 0 { "\r\n" } else { "\n" });
        if i % 50 == 0 {
            text.push('\n'); // an empty line
        }
    }
    text.push_str("last line without newline");
    let path = write(dir.path(), "data.txt", text.as_bytes());
    let ctx = ctx();
    for min_partitions in [1, 2, 3, 10, 64, 1000, 40_000] {
        let r = ctx.text_file(&path, min_partitions).unwrap();
        assert!(r.num_partitions() >= min_partitions.min(text.len()));
        assert_eq!(
            r.collect().unwrap(),
            reference_lines(&text),
            "min_partitions={min_partitions}"
        );
    }
}

/// Each successful task's input records and bytes, by partition.
fn input_by_partition(log: &spate::EventLog) -> std::collections::BTreeMap<usize, (u64, u64)> {
    let mut by = std::collections::BTreeMap::new();
    for e in log.events() {
        if let spate::Event::TaskEnd {
            task,
            failure: None,
            metrics,
            ..
        } = e
        {
            let old = by.insert(task.partition, (metrics.input_records, metrics.input_bytes));
            assert_eq!(old, None, "partition {} ran twice", task.partition);
        }
    }
    by
}

#[test]
fn each_task_counts_its_own_lines_and_their_bytes_as_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..300 {
        // Never empty, so a lone `\r` is never read as half of `\r\n`.
        text.push_str(&"ab".repeat(i % 41 + 1));
        text.push_str(["\n", "\r\n", "\r"][i % 3]);
    }
    text.push_str("no newline at the end");
    let path = write(dir.path(), "input.txt", text.as_bytes());
    for min_partitions in [1, 3, 64] {
        let (ctx, log) = crate::common::logged_ctx();
        let rdd = ctx.text_file(&path, min_partitions).unwrap();
        let parts = rdd.glom().collect().unwrap();
        let input = input_by_partition(&log);
        assert_eq!(input.len(), parts.len(), "min_partitions={min_partitions}");
        // Per task: its lines, and bytes that sum to the file's length.
        for (p, lines) in parts.iter().enumerate() {
            assert_eq!(
                input[&p].0,
                lines.len() as u64,
                "partition {p} of {min_partitions}"
            );
        }
        let bytes: u64 = input.values().map(|(_, b)| b).sum();
        assert_eq!(bytes, text.len() as u64, "min_partitions={min_partitions}");
        let records: u64 = input.values().map(|(r, _)| r).sum();
        assert_eq!(records, 301, "min_partitions={min_partitions}");
    }
}

#[test]
fn collections_ranges_and_whole_files_are_input_but_cached_reads_are_not() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", b"hello\n");
    write(dir.path(), "b.txt", b"a longer file\n");
    let (ctx, log) = crate::common::logged_ctx();
    let files = ctx.whole_text_files(dir.path(), 2).unwrap();
    assert_eq!(files.count().unwrap(), 2);
    assert_eq!(input_by_partition(&log), [(0, (1, 6)), (1, (1, 14))].into());

    let (ctx, log) = crate::common::logged_ctx();
    assert_eq!(ctx.range(0, 10, 1, 3).count().unwrap(), 10);
    let input = input_by_partition(&log);
    assert_eq!(input, [(0, (3, 0)), (1, (3, 0)), (2, (4, 0))].into());

    // A shuffle's reduce side and a cached dataset's second read are not
    // input; only the stage reading the collection counts it.
    let (ctx, log) = crate::common::logged_ctx();
    let pairs = ctx
        .parallelize((0..100).map(|i| (i % 7, 1)).collect(), 4)
        .reduce_by_key(|a, b| a + b)
        .cache()
        .unwrap();
    assert_eq!(pairs.count().unwrap(), 7);
    assert_eq!(log.total_metrics().input_records, 100);
    assert_eq!(pairs.count().unwrap(), 7);
    assert_eq!(log.total_metrics().input_records, 100);
}

#[test]
fn directories_and_globs_read_all_matching_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.txt", b"b1\nb2\n");
    write(dir.path(), "a.txt", b"a1\n");
    write(dir.path(), "c.log", b"c1\n");
    write(dir.path(), "_SUCCESS", b"");
    write(dir.path(), ".hidden", b"h\n");
    let ctx = ctx();
    assert_eq!(
        ctx.text_file(dir.path(), 2).unwrap().collect().unwrap(),
        ["a1", "b1", "b2", "c1"]
    );
    let glob = dir.path().join("*.txt");
    assert_eq!(
        ctx.text_file(&glob, 2).unwrap().collect().unwrap(),
        ["a1", "b1", "b2"]
    );
    let whole = ctx.whole_text_files(&glob, 5).unwrap().collect().unwrap();
    assert_eq!(whole.len(), 2);
    assert!(whole[0].0.ends_with("a.txt") && whole[0].1 == "a1\n");
    assert!(matches!(
        ctx.text_file(dir.path().join("*.csv"), 1),
        Err(Error::NoInput(_))
    ));
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let ctx = ctx();
    let err = ctx.text_file("/no/such/file.txt", 1).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("file.txt")),
        "{err}"
    );
    assert!(err.to_string().contains("/no/such/file.txt"));
}

#[test]
fn invalid_utf8_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.txt", b"good\nalso good\nbad \xff here\n");
    let ctx = ctx();
    let err = ctx.text_file(&path, 1).unwrap().count().unwrap_err();
    match err.root_cause() {
        Error::InvalidUtf8 { path: p, offset } => {
            assert_eq!(p, &path);
            assert_eq!(*offset, 19);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        ctx.range(0, 3, 1, 1).count().unwrap(),
        3,
        "context still usable"
    );
}

/// Lines of multi-byte characters, so 1 MiB reads end mid-character.
fn multibyte_text(lines: usize) -> String {
    let mut text = String::new();
    for i in 0..lines {
        let word = ["é", "日本語", "x", "ß€"][i % 4];
        text.push_str(&word.repeat(i % 37));
        text.push_str(&format!(" {i}\n"));
    }
    text
}

#[test]
fn multibyte_lines_across_read_buffers_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let text = multibyte_text(60_000);
    assert!(text.len() > 2 << 20, "spans several 1 MiB reads");
    let path = write(dir.path(), "mb.txt", text.as_bytes());
    let ctx = ctx();
    for parts in [1, 3, 7] {
        let got = ctx.text_file(&path, parts).unwrap().collect().unwrap();
        assert_eq!(got, reference_lines(&text), "{parts} partitions");
    }
}

#[test]
fn bad_utf8_far_into_a_file_is_reported_at_its_offset_by_its_own_split_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = multibyte_text(10_000).into_bytes();
    // A bad byte in the second half of the file, within the first split's
    // 1 MiB read-ahead: the first split checks it in bulk but must not
    // report it, the split that holds its line must, at the exact offset.
    let at = bytes.len() * 3 / 4;
    let at = at + bytes[at..].iter().position(|&b| b == b' ').unwrap();
    bytes[at] = 0xff;
    assert!(at < 1 << 20);
    let path = write(dir.path(), "bad.txt", &bytes);
    let ctx = ctx();
    let rdd = ctx.text_file(&path, 2).unwrap();
    assert_eq!(rdd.num_partitions(), 2);
    assert_eq!(rdd.take(1).unwrap(), vec![" 0".to_string()]);
    match rdd.count().unwrap_err().root_cause() {
        Error::InvalidUtf8 { offset, .. } => assert_eq!(*offset, at as u64),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_file_deleted_before_the_job_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gone.txt", b"a\nb\n");
    let ctx = ctx();
    let r = ctx.text_file(&path, 1).unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = r.collect().unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::Io { path: p, .. } if p == &path),
        "{err}"
    );
}

#[test]
fn empty_files_give_no_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.txt", b"");
    let ctx = ctx();
    assert_eq!(ctx.text_file(&path, 3).unwrap().count().unwrap(), 0);
}

#[test]
fn a_file_truncated_after_its_splits_were_planned_fails_naming_it_instead_of_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    let path = write(dir.path(), "shrinks.txt", text.as_bytes());
    let ctx = ctx();
    let r = ctx.text_file(&path, 4).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(text.len() as u64 / 3)
        .unwrap();
    let err = r.count().unwrap_err();
    match err.root_cause() {
        Error::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
            assert!(source.to_string().contains("truncated"), "{err}");
        }
        other => panic!("not an I/O error naming the file: {other}"),
    }
}

#[test]
fn a_kernel_file_that_reports_zero_bytes_is_read_whole() {
    let path = std::path::Path::new("/proc/version");
    assert_eq!(
        std::fs::metadata(path).unwrap().len(),
        0,
        "procfs says empty"
    );
    let expected = reference_lines(&std::fs::read_to_string(path).unwrap());
    assert!(!expected.is_empty());
    let got = ctx().text_file(path, 4).unwrap().collect().unwrap();
    assert_eq!(got, expected);
}

#[test]
fn devices_and_fifos_are_refused_at_once_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [fifo, std::path::PathBuf::from("/dev/zero")] {
        // Under a timeout: before the fix opening a FIFO blocked forever.
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let ctx = ctx();
            let lines = ctx.text_file(&p, 2).and_then(|r| r.count());
            let whole = ctx.whole_text_files(&p, 2).and_then(|r| r.count());
            let _ = tx.send((lines, whole));
        });
        let (lines, whole) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("reading {} hangs", path.display()));
        for err in [lines.unwrap_err(), whole.unwrap_err()] {
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains(&*path.to_string_lossy()) && m.contains("not a regular file")),
                "{err}"
            );
        }
    }
}

/// Set in the child process of the permission test.
const UNPRIVILEGED_CHILD: &str = "SPATE_TEST_UNPRIVILEGED_CHILD";

#[test]
fn a_permission_problem_says_permission_denied_not_no_such_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let file = write(&locked, "data.txt", b"a\n");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let privileged = std::fs::metadata(&file).is_ok();
    if privileged && std::env::var_os(UNPRIVILEGED_CHILD).is_none() {
        // Root reads anything: run this test again as `nobody`.
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        let child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "text_io::a_permission_problem_says_permission_denied_not_no_such_file",
            ])
            .env(UNPRIVILEGED_CHILD, "1")
            .env("TMPDIR", "/tmp")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(
            child.status.success() && out.contains("1 passed"),
            "{out}{}",
            String::from_utf8_lossy(&child.stderr)
        );
        return;
    }
    assert!(!privileged, "the child runs unprivileged");
    let err = ctx().text_file(&file, 1).unwrap_err();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    match &err {
        Error::Io { path, source } => {
            assert_eq!(path, &file);
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("Permission denied"), "{err}");
}

/// Lines as Hadoop's line reader cuts them: at `\n`, `\r\n` or a lone `\r`;
/// a final terminator ends the last line (no empty line after it).
fn hadoop_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut open = false;
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\r' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
                open = false;
            }
            c => {
                current.push(c);
                open = true;
            }
        }
    }
    if open {
        lines.push(current);
    }
    lines
}

#[test]
fn a_lone_carriage_return_ends_a_line_as_in_hadoop_at_every_split() {
    let dir = tempfile::tempdir().unwrap();
    let endings = ["\n", "\r\n", "\r", "\r\r", "\n\r", "\r\n\r\n"];
    let mut text = String::new();
    for i in 0..800 {
        text.push_str(&"é".repeat((i * 31) % 7));
        text.push_str(&format!("{i}"));
        text.push_str(endings[i % endings.len()]);
    }
    text.push_str("tail\r");
    let path = write(dir.path(), "mixed.txt", text.as_bytes());
    let expected = hadoop_lines(&text);
    assert_eq!(
        hadoop_lines("a\rb\r\nc\nd\r\re\r"),
        ["a", "b", "c", "d", "", "e"]
    );
    assert_eq!(expected.last().map(String::as_str), Some("tail"));
    let ctx = ctx();
    for min_partitions in [1, 2, 3, 7, 64, 1000, 20_000] {
        let got = ctx
            .text_file(&path, min_partitions)
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(got, expected, "min_partitions={min_partitions}");
    }
}

#[test]
fn a_comma_separated_list_of_files_directories_and_globs_is_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    write(&sub, "b.txt", b"b1\n");
    write(&sub, "a.txt", b"a1\n");
    let single = write(dir.path(), "single.txt", b"s1\ns2\n");
    write(dir.path(), "g1.log", b"g1\n");
    write(dir.path(), "g2.log", b"g2\n");
    let comma = write(dir.path(), "with,comma.txt", b"c1\n");
    let list = format!(
        "{},{}, {}",
        single.display(),
        sub.display(),
        dir.path().join("g*.log").display()
    );
    let ctx = ctx();
    assert_eq!(
        ctx.text_file(&list, 2).unwrap().collect().unwrap(),
        ["s1", "s2", "a1", "b1", "g1", "g2"]
    );
    assert_eq!(ctx.whole_text_files(&list, 2).unwrap().count().unwrap(), 5);
    // A file whose name holds a comma is still one path.
    assert_eq!(ctx.text_file(&comma, 1).unwrap().collect().unwrap(), ["c1"]);
    let missing = format!("{},{}", single.display(), dir.path().join("nope").display());
    let err = ctx.text_file(&missing, 1).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
