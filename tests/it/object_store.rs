//! Object stores (the `object-store` feature) against the S3-compatible
//! server `scripts/services.sh start s3` runs, reached through the
//! environment `scripts/services.sh env s3` prints: every format written
//! to and read back from S3, split text read by ranged GETs, multipart
//! uploads, a task that fails mid-write and an executor killed mid-write,
//! HTTP URLs, and each bad request. What the server holds is checked
//! through its own HTTP API (ListObjectsV2 and GET), not through Spate.

use crate::common::{ctx, example, sorted};
use crate::http::request_with;
use serde::{Deserialize, Serialize};
use spate::{Compression, CsvOptions, CsvWriteOptions, Error, ParquetWriteOptions};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const NEEDS_S3: &str = "start the S3 server (scripts/services.sh start s3) and load its \
                        environment (eval \"$(scripts/services.sh env s3)\")";

/// The bucket URL, `s3://spate-test`.
fn bucket() -> String {
    std::env::var("SPATE_TEST_S3").unwrap_or_else(|_| panic!("{NEEDS_S3}"))
}

/// The server's address, `http://127.0.0.1:9000`.
fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| panic!("{NEEDS_S3}"))
}

fn bucket_name() -> String {
    bucket().trim_start_matches("s3://").to_string()
}

/// A prefix no other test or run has written: `s3://bucket/name-PID-NANOS`.
fn fresh(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}/{name}-{}-{nanos}", bucket(), std::process::id())
}

/// The key of an `s3://bucket/key` URL.
fn key(url: &str) -> &str {
    url.trim_start_matches("s3://")
        .split_once('/')
        .map(|(_, k)| k)
        .unwrap()
}

/// One request to the server: the status and the body. It carries an
/// `Authorization` header in the form S3 wants, which the test server does
/// not check.
fn s3_request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 \
        Credential=spate/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    let headers: Vec<&str> = std::iter::once(AUTH)
        .chain(headers.iter().copied())
        .collect();
    let reply = request_with(&endpoint(), method, path, &headers, body);
    (reply.status, reply.body)
}

/// Puts `bytes` as the object `url` names, readable by anyone (for the
/// HTTP test) and bypassing Spate.
fn server_put(url: &str, bytes: &[u8]) {
    let (status, body) = s3_request(
        "PUT",
        &format!("/{}/{}", bucket_name(), key(url)),
        &[
            "x-amz-acl: public-read",
            "Content-Type: application/octet-stream",
        ],
        bytes,
    );
    assert_eq!(status, 200, "PUT {url}: {body}");
}

/// The keys below `url/`, relative to it, as the server lists them.
fn server_keys(url: &str) -> Vec<String> {
    let prefix = format!("{}/", key(url));
    let (status, body) = s3_request(
        "GET",
        &format!("/{}?list-type=2&prefix={prefix}", bucket_name()),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let mut keys = Vec::new();
    let mut rest = body.as_str();
    while let Some(at) = rest.find("<Key>") {
        let end = rest[at..].find("</Key>").unwrap() + at;
        let key = &rest[at + 5..end];
        keys.push(key.strip_prefix(&prefix).unwrap().to_string());
        rest = &rest[end..];
    }
    keys.sort();
    keys
}

/// An object's bytes as the server sends them (as text).
fn server_get(url: &str) -> String {
    let (status, body) = s3_request("GET", &format!("/{}/{}", bucket_name(), key(url)), &[], b"");
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// `_SUCCESS` and `n` part files named `part-NNNNN{suffix}`.
fn committed(n: usize, suffix: &str) -> Vec<String> {
    let mut keys: Vec<String> = (0..n).map(|p| format!("part-{p:05}{suffix}")).collect();
    keys.push("_SUCCESS".into());
    keys.sort();
    keys
}

/// A dataset of exactly these partitions.
fn partitioned<T: spate::Value>(ctx: &spate::Context, parts: Vec<Vec<T>>) -> spate::Rdd<T> {
    let rdds: Vec<_> = parts.into_iter().map(|p| ctx.parallelize(p, 1)).collect();
    ctx.union(&rdds)
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Row {
    name: String,
    count: i64,
    note: Option<String>,
}

/// Rows with commas, quotes, line-free unicode and missing values; 1500
/// of them, deterministic.
fn rows() -> Vec<Row> {
    let names = ["tea", "cake, lemon", "say \"hi\"", "漢字", "😀", "", "a;b"];
    (0..1500)
        .map(|i| Row {
            name: format!("{}{}", names[i % names.len()], i % 13),
            count: (i as i64 - 700) * 7919,
            note: (i % 3 == 0).then(|| format!("n{i}")),
        })
        .collect()
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_every_format_round_trips_and_commits_with_a_success_marker() {
    let ctx = ctx();
    let rows = rows();
    // Five partitions, one of them empty.
    let mut parts: Vec<Vec<Row>> = rows.chunks(400).map(<[Row]>::to_vec).collect();
    parts.insert(2, Vec::new());
    let n = parts.len();
    let data = partitioned(&ctx, parts.clone());
    let base = fresh("formats");

    let csv = format!("{base}/csv");
    data.save_as_csv(&csv, &CsvWriteOptions::default()).unwrap();
    assert_eq!(server_keys(&csv), committed(n, ".csv"));
    let back = ctx.csv_file::<Row>(&csv, &CsvOptions::default()).unwrap();
    assert_eq!(sorted(back.collect().unwrap()), sorted(rows.clone()));

    let jsonl = format!("{base}/jsonl");
    data.save_as_json_lines(&jsonl).unwrap();
    assert_eq!(server_keys(&jsonl), committed(n, ".jsonl"));
    // The server holds exactly what serde_json writes, a part per partition.
    for (p, part) in parts.iter().enumerate() {
        let want: String = part
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        assert_eq!(server_get(&format!("{jsonl}/part-{p:05}.jsonl")), want);
    }
    let back = ctx
        .json_lines_file::<Row>(&jsonl, &Default::default())
        .unwrap();
    assert_eq!(sorted(back.collect().unwrap()), sorted(rows.clone()));

    let objects = format!("{base}/objects");
    data.save_as_object_file(&objects).unwrap();
    assert_eq!(server_keys(&objects), committed(n, ""));
    let back = ctx.object_file::<Row>(&objects).unwrap();
    assert_eq!(back.collect().unwrap(), rows);

    let parquet = format!("{base}/parquet");
    data.save_as_parquet(&parquet, &ParquetWriteOptions::default())
        .unwrap();
    assert_eq!(server_keys(&parquet), committed(n, ".parquet"));
    let back = ctx.parquet_file::<Row>(&parquet).unwrap();
    assert_eq!(sorted(back.collect().unwrap()), sorted(rows.clone()));
    let batches = ctx.parquet_batches(&parquet).unwrap();
    let counted: usize = batches
        .map(|b| b.num_rows())
        .collect()
        .unwrap()
        .iter()
        .sum();
    assert_eq!(counted, rows.len());

    let text = format!("{base}/text");
    let lines = data.map(|r| format!("{}|{}", r.name, r.count));
    lines.save_as_text_file(&text).unwrap();
    assert_eq!(server_keys(&text), committed(n, ""));
    let want: Vec<String> = rows
        .iter()
        .map(|r| format!("{}|{}", r.name, r.count))
        .collect();
    assert_eq!(ctx.text_file(&text, 1).unwrap().collect().unwrap(), want);
    let whole = ctx.whole_text_files(&text, 2).unwrap().collect().unwrap();
    assert_eq!(whole.len(), n);
    for (url, content) in whole {
        assert_eq!(content, server_get(&url), "{url}");
    }
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_text_is_read_in_ranged_splits_and_a_big_part_is_a_multipart_upload() {
    let ctx = ctx();
    // About 20 MiB in one partition: more than one 8 MiB upload part.
    let lines: Vec<String> = (0..400_000)
        .map(|i| format!("line {i:07} {}", "x".repeat(i % 80)))
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    assert!(bytes > 16 << 20, "{bytes}");
    let dir = fresh("big");
    ctx.parallelize(lines.clone(), 1)
        .save_as_text_file(&dir)
        .unwrap();
    assert_eq!(server_keys(&dir), committed(1, ""));
    // The object is whole.
    assert_eq!(server_get(&format!("{dir}/part-00000")).len(), bytes);
    let back = ctx.text_file(format!("{dir}/part-00000"), 8).unwrap();
    assert!(back.num_partitions() >= 8, "{}", back.num_partitions());
    let got = back.collect().unwrap();
    assert_eq!(got.len(), lines.len());
    assert_eq!(got, lines);
    let per_split = back.glom().collect().unwrap();
    assert!(per_split.iter().filter(|p| !p.is_empty()).count() >= 8);
    let read: usize = per_split
        .iter()
        .flatten()
        .map(|l: &String| l.len() + 1)
        .sum();
    assert_eq!(read, bytes);
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_compressed_objects_are_read_through_their_codec_as_one_partition() {
    let ctx = ctx();
    let lines: Vec<String> = (0..5000).map(|i| format!("word{} {i}", i % 17)).collect();
    let data = ctx.parallelize(lines.clone(), 3);
    for (codec, suffix) in [(Compression::Gzip, ".gz"), (Compression::Zstd, ".zst")] {
        let dir = fresh("compressed");
        data.save_as_compressed_text_file(&dir, codec).unwrap();
        assert_eq!(server_keys(&dir), committed(3, suffix));
        let part = ctx
            .text_file(format!("{dir}/part-00001{suffix}"), 4)
            .unwrap();
        assert_eq!(part.num_partitions(), 1);
        let back = ctx.text_file(&dir, 4).unwrap();
        assert_eq!(back.collect().unwrap(), lines, "{suffix}");
    }
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_directories_globs_and_lists_name_objects_as_local_paths_name_files() {
    let ctx = ctx();
    let dir = fresh("paths");
    let parts = vec![
        vec!["a0".to_string(), "a1".into()],
        vec!["b0".into()],
        vec!["c0".into()],
    ];
    partitioned(&ctx, parts).save_as_text_file(&dir).unwrap();
    // The directory: every part, not `_SUCCESS`.
    let all = ctx.text_file(&dir, 1).unwrap().collect().unwrap();
    assert_eq!(all, ["a0", "a1", "b0", "c0"]);
    let glob = ctx
        .text_file(format!("{dir}/part-0000[02]"), 1)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(glob, ["a0", "a1", "c0"]);
    let list = ctx
        .text_file(format!("{dir}/part-00002,{dir}/part-00001"), 1)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(list, ["c0", "b0"]);
    let none = ctx.text_file(format!("{dir}/*.csv"), 1).unwrap_err();
    assert!(
        matches!(&none, Error::NoInput(p) if p.contains(&dir)),
        "{none}"
    );

    // Keys with a space, a plus and a percent sign (`%25` in the URL):
    // the objects a listing finds are named by URLs that parse back to
    // their keys.
    let odd = format!("{}/odd name+100%25", fresh("odd"));
    let lines = vec!["x".to_string(), "y".into(), "z".into()];
    ctx.parallelize(lines.clone(), 2)
        .save_as_text_file(&odd)
        .unwrap();
    assert_eq!(ctx.text_file(&odd, 1).unwrap().collect().unwrap(), lines);
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_missing_objects_and_refused_requests_are_errors_naming_them() {
    let ctx = ctx();
    let missing = format!("{}/no/such/object.txt", bucket());
    let err = ctx.text_file(&missing, 1).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, source } if path.to_str() == Some(missing.as_str())
            && source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    let err = ctx.parquet_file::<Row>(&missing).unwrap_err();
    assert!(err.to_string().contains(&missing), "{err}");

    // A bucket the server does not have: reads and writes are refused.
    let nowhere = "s3://spate-no-such-bucket/data";
    let err = ctx.text_file(nowhere, 1).unwrap_err();
    assert!(err.to_string().contains(nowhere), "{err}");
    let err = ctx
        .parallelize(vec![1, 2, 3], 2)
        .map(|x| x.to_string())
        .save_as_text_file(nowhere)
        .unwrap_err();
    assert!(err.to_string().contains(nowhere), "{err}");

    // An existing output is refused before any task runs.
    let dir = fresh("exists");
    let data = ctx.parallelize(vec!["x".to_string()], 1);
    data.save_as_text_file(&dir).unwrap();
    let err = data.save_as_text_file(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::OutputExists(p) if p.to_str() == Some(dir.as_str())),
        "{err}"
    );
    assert_eq!(server_keys(&dir), committed(1, ""));

    // A Parquet object cut short: a clear error naming it.
    let cut = format!("{}/part-00000", fresh("cut"));
    server_put(&cut, b"PAR1\x15\x04\x15\x10garbage");
    let err = ctx.parquet_file::<Row>(&cut).unwrap_err();
    assert!(
        matches!(&err, Error::BadParquetFile { path, .. } if path.to_str() == Some(cut.as_str())),
        "{err}"
    );

    // No server at all (a port nothing listens on), over plain HTTP.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}/data.txt");
    let err = ctx.text_file(&closed, 1).unwrap_err();
    assert!(
        matches!(&err, Error::ObjectStore { url, .. } if url.to_str() == Some(closed.as_str())),
        "{err}"
    );

    // The context is still usable.
    assert_eq!(ctx.parallelize(vec![1, 2, 3], 2).count().unwrap(), 3);
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_a_task_failing_mid_write_leaves_no_partial_object_and_its_retry_completes_the_output() {
    static FAILED: AtomicBool = AtomicBool::new(false);
    static RUNS_OF_PART_2: AtomicUsize = AtomicUsize::new(0);
    let ctx = ctx();
    let dir = fresh("retried");
    let parts: Vec<Vec<u32>> = (0..4)
        .map(|p| (p * 1000..(p + 1) * 1000).collect())
        .collect();
    partitioned(&ctx, parts.clone())
        .map(|x| {
            if x == 2000 {
                RUNS_OF_PART_2.fetch_add(1, Ordering::SeqCst);
            }
            // Half-way through partition 2, on its first attempt only:
            // half of its lines are in the attempt's file by then.
            if x == 2500 && !FAILED.swap(true, Ordering::SeqCst) {
                panic!("injected failure mid-write");
            }
            x.to_string()
        })
        .save_as_text_file(&dir)
        .unwrap();
    assert_eq!(
        RUNS_OF_PART_2.load(Ordering::SeqCst),
        2,
        "partition 2 was retried"
    );
    assert_eq!(server_keys(&dir), committed(4, ""));
    for (p, part) in parts.iter().enumerate() {
        let want: String = part.iter().map(|x| format!("{x}\n")).collect();
        assert_eq!(server_get(&format!("{dir}/part-{p:05}")), want, "part {p}");
    }
}

/// A program run as a cluster by the kill test below: writes 60 000
/// numbers in six partitions to `SPATE_TEST_S3_KILL`, and executor 1
/// SIGKILLs itself half-way through writing its first partition. (A no-op
/// in a normal test run.)
#[test]
fn s3_kill_child() {
    let Ok(dir) = std::env::var("SPATE_TEST_S3_KILL") else {
        return;
    };
    let ctx = spate::Context::builder().parallelism(1).build().unwrap();
    let killer = std::env::var("SPATE_RANK").as_deref() == Ok("1");
    ctx.range(0, 60_000, 1, 6)
        .map(move |x| {
            if killer && x % 10_000 == 5_000 {
                let _ = Command::new("kill")
                    .args(["-9", &std::process::id().to_string()])
                    .status();
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
            x.to_string()
        })
        .save_as_text_file(&dir)
        .unwrap();
    println!("RESULT saved");
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_an_executor_killed_while_writing_leaves_no_partial_object_and_the_job_completes() {
    let dir = fresh("killed");
    let out = Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", "3", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "object_store::s3_kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPATE_TEST_S3_KILL", &dir)
        .env("SPATE_HEARTBEAT_TIMEOUT_MS", "3000")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("RESULT saved"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("executor 1 ended with signal: 9"),
        "executor 1 was killed: {stderr}"
    );
    assert_eq!(server_keys(&dir), committed(6, ""));
    for p in 0..6u64 {
        let want: String = (p * 10_000..(p + 1) * 10_000)
            .map(|x| format!("{x}\n"))
            .collect();
        assert_eq!(server_get(&format!("{dir}/part-{p:05}")), want, "part {p}");
    }
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn http_urls_read_single_objects_by_ranged_gets() {
    let ctx = ctx();
    let lines: Vec<String> = (0..20_000).map(|i| format!("row {i}")).collect();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let object = format!("{}/lines.txt", fresh("http"));
    server_put(&object, text.as_bytes());
    // The object through the server's plain HTTP face, anonymously.
    let url = format!("{}/{}/{}", endpoint(), bucket_name(), key(&object));
    let back = ctx.text_file(&url, 3).unwrap();
    assert_eq!(back.num_partitions(), 3);
    assert_eq!(back.collect().unwrap(), lines);
}

#[test]
#[ignore = "needs the S3 server: scripts/services.sh start s3"]
fn s3_group_sum_example_reads_its_input_from_a_url() {
    let ctx = ctx();
    let rows: Vec<(String, i64)> = (0..3000)
        .map(|i| (format!("k{}", i % 37), i - 1500))
        .collect();
    let mut want = std::collections::BTreeMap::<String, i64>::new();
    for (k, v) in &rows {
        *want.entry(k.clone()).or_default() += v;
    }
    let input = fresh("group-sum-in");
    ctx.parallelize(rows, 3)
        .map(|(k, v)| format!("{k}\t{v}"))
        .save_as_text_file(&input)
        .unwrap();
    let output = fresh("group-sum-out");
    let out = Command::new(example("group_sum"))
        .args([&input, "--output", &output])
        .env_remove("SPATE_RANK")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: std::collections::BTreeMap<String, i64> = ctx
        .text_file(&output, 1)
        .unwrap()
        .collect()
        .unwrap()
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(got, want);
}
