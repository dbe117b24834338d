//! File formats: CSV and JSON lines round trips over random rows, files
//! written and read by other tools (Python's csv and json modules, the
//! gzip, bzip2, zstd and lz4 commands), compressed text, and every bad
//! input with the result its policy documents.

use crate::common::{ctx, logged_ctx, part_files as parts};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use spate::{
    BadRecord, BadRecords, Compression, CsvOptions, CsvWriteOptions, Error, JsonLinesOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    name: String,
    count: i64,
    score: Option<i64>,
    flag: bool,
}

fn row(line_breaks: bool) -> impl Strategy<Value = Row> {
    // Unicode, delimiters, quotes, backslashes; line breaks only where the
    // format allows them in a field.
    let name = if line_breaks {
        "[a-zé漢😀,;\"'\\\\ \t\r\n]{0,12}"
    } else {
        "[a-zé漢😀,;\"'\\\\ \t]{0,12}"
    };
    (name, any::<i64>(), any::<Option<i64>>(), any::<bool>()).prop_map(
        |(name, count, score, flag)| Row {
            name,
            count,
            score,
            flag,
        },
    )
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Zstd,
    Compression::Bzip2,
    Compression::Lz4,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn json_lines_round_trip_any_rows_partitions_and_codec(
        rows in prop::collection::vec(row(true), 0..60),
        parts_out in 1usize..6,
        parts_in in 1usize..9,
        codec in 0usize..5,
    ) {
        let ctx = ctx();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        ctx.parallelize(rows.clone(), parts_out)
            .save_as_compressed_json_lines(&out, CODECS[codec])
            .unwrap();
        prop_assert!(out.join("_SUCCESS").exists());
        let options = JsonLinesOptions::default().min_partitions(parts_in);
        let back = ctx.json_lines_file::<Row>(&out, &options).unwrap();
        prop_assert_eq!(back.collect().unwrap(), rows);
    }

    #[test]
    fn csv_round_trips_any_rows_split_anywhere_or_read_whole(
        rows in prop::collection::vec(row(false), 0..60),
        multi in prop::collection::vec(row(true), 0..20),
        parts_out in 1usize..6,
        parts_in in 1usize..40,
        codec in 0usize..5,
        header in any::<bool>(),
    ) {
        let ctx = ctx();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let write = CsvWriteOptions::default().header(header).compression(CODECS[codec]);
        ctx.parallelize(rows.clone(), parts_out).save_as_csv(&out, &write).unwrap();
        let read = CsvOptions::default().header(header).min_partitions(parts_in);
        prop_assert_eq!(ctx.csv_file::<Row>(&out, &read).unwrap().collect().unwrap(), rows);
        // Line breaks inside quoted fields: read each file whole.
        let out = dir.path().join("multi");
        ctx.parallelize(multi.clone(), parts_out).save_as_csv(&out, &write).unwrap();
        let read = read.multi_line(true);
        prop_assert_eq!(ctx.csv_file::<Row>(&out, &read).unwrap().collect().unwrap(), multi);
    }
}

#[test]
fn an_empty_dataset_writes_empty_parts_that_read_back_empty() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let empty = ctx.parallelize(Vec::<Row>::new(), 3);
    empty
        .save_as_csv(dir.path().join("csv"), &Default::default())
        .unwrap();
    empty.save_as_json_lines(dir.path().join("jsonl")).unwrap();
    assert_eq!(parts(&dir.path().join("csv")).len(), 3);
    let csv = ctx
        .csv_file::<Row>(dir.path().join("csv"), &Default::default())
        .unwrap();
    assert_eq!(csv.count().unwrap(), 0);
    let json = ctx
        .json_lines_file::<Row>(dir.path().join("jsonl"), &Default::default())
        .unwrap();
    assert_eq!(json.count().unwrap(), 0);
}

fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const PY_ROWS: &str = r#"
rows = [
    {"name": "plain", "count": 1, "score": 10, "flag": True},
    {"name": "comma, and \"quotes\"", "count": -2, "score": None, "flag": False},
    {"name": "ünïcödé 漢字 😀", "count": 9007199254740993, "score": -5, "flag": True},
    {"name": "", "count": 0, "score": 0, "flag": False},
]
"#;

fn py_rows() -> Vec<Row> {
    let r = |name: &str, count, score, flag| Row {
        name: name.into(),
        count,
        score,
        flag,
    };
    vec![
        r("plain", 1, Some(10), true),
        r("comma, and \"quotes\"", -2, None, false),
        r("ünïcödé 漢字 😀", 9007199254740993, Some(-5), true),
        r("", 0, Some(0), false),
    ]
}

#[test]
fn files_written_by_pythons_csv_and_json_modules_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (csv_path, json_path) = (dir.path().join("rows.csv"), dir.path().join("rows.jsonl"));
    python(
        &format!(
            "{PY_ROWS}
import csv, json, sys
with open(sys.argv[1], 'w', newline='', encoding='utf-8') as f:
    w = csv.DictWriter(f, fieldnames=['name', 'count', 'score', 'flag'])  # \\r\\n line ends
    w.writeheader()
    for r in rows:
        w.writerow({{**r, 'score': '' if r['score'] is None else r['score'], 'flag': 'true' if r['flag'] else 'false'}})
with open(sys.argv[2], 'w', encoding='utf-8') as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + '\\n')
"
        ),
        &[&csv_path, &json_path],
    );
    let ctx = ctx();
    for parts in [1, 2, 5] {
        let csv = ctx.csv_file::<Row>(&csv_path, &CsvOptions::default().min_partitions(parts));
        assert_eq!(
            csv.unwrap().collect().unwrap(),
            py_rows(),
            "{parts} partitions"
        );
        let json = ctx.json_lines_file::<Row>(
            &json_path,
            &JsonLinesOptions::default().min_partitions(parts),
        );
        assert_eq!(
            json.unwrap().collect().unwrap(),
            py_rows(),
            "{parts} partitions"
        );
    }
}

#[test]
fn files_spate_writes_are_read_by_pythons_csv_and_json_modules() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let rows = ctx.parallelize(py_rows(), 2);
    rows.save_as_csv(dir.path().join("csv"), &Default::default())
        .unwrap();
    rows.save_as_json_lines(dir.path().join("jsonl")).unwrap();
    let csv_parts = parts(&dir.path().join("csv"));
    let json_parts = parts(&dir.path().join("jsonl"));
    // Python prints what it read as one JSON list of rows.
    let read = python(
        &format!(
            "{PY_ROWS}
import csv, json, sys
n = len(sys.argv) // 2
got = []
for p in sys.argv[1:1 + n]:
    with open(p, newline='', encoding='utf-8') as f:
        for r in csv.DictReader(f):
            got.append({{'name': r['name'], 'count': int(r['count']),
                        'score': None if r['score'] == '' else int(r['score']), 'flag': r['flag'] == 'true'}})
assert got == rows, got
got = []
for p in sys.argv[1 + n:]:
    with open(p, encoding='utf-8') as f:
        got.extend(json.loads(l) for l in f)
assert got == rows, got
print('ok', len(got))
"
        ),
        &csv_parts
            .iter()
            .chain(&json_parts)
            .map(PathBuf::as_path)
            .collect::<Vec<_>>(),
    );
    assert_eq!(read.trim(), "ok 4");
}

/// `text` compressed by the command `tool` (gzip, bzip2, zstd, lz4).
fn compress_with(tool: &str, text: &[u8], path: &Path) {
    let plain = path.with_extension("plain");
    std::fs::write(&plain, text).unwrap();
    let out = Command::new(tool)
        .args(["-c", "-q"])
        .arg(&plain)
        .output()
        .unwrap_or_else(|e| panic!("the {tool} command: {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, out.stdout).unwrap();
    std::fs::remove_file(plain).unwrap();
}

#[test]
fn text_compressed_by_the_usual_commands_is_read_whole_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i} ü\n")).collect();
    let expected: Vec<String> = text.lines().map(String::from).collect();
    let ctx = ctx();
    for (tool, ext) in [
        ("gzip", "gz"),
        ("bzip2", "bz2"),
        ("zstd", "zst"),
        ("lz4", "lz4"),
    ] {
        let path = dir.path().join(format!("big.txt.{ext}"));
        compress_with(tool, text.as_bytes(), &path);
        let lines = ctx.text_file(&path, 8).unwrap();
        assert_eq!(lines.num_partitions(), 1, "{tool}: one partition");
        assert_eq!(lines.collect().unwrap(), expected, "{tool}");
    }
    // Two gzip members one after the other are one stream (`cat a.gz b.gz`).
    let (a, b) = (dir.path().join("a.gz"), dir.path().join("b.gz"));
    compress_with("gzip", b"first\n", &a);
    compress_with("gzip", b"second\n", &b);
    let both = dir.path().join("both.txt.gz");
    std::fs::write(
        &both,
        [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()].concat(),
    )
    .unwrap();
    assert_eq!(
        ctx.text_file(&both, 1).unwrap().collect().unwrap(),
        ["first", "second"]
    );
}

#[test]
fn compressed_output_is_read_back_by_the_usual_commands() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let lines: Vec<String> = (0..5_000).map(|i| format!("row {i}")).collect();
    for (codec, tool) in [
        (Compression::Gzip, "gzip"),
        (Compression::Bzip2, "bzip2"),
        (Compression::Zstd, "zstd"),
        (Compression::Lz4, "lz4"),
    ] {
        let out = dir.path().join(tool);
        ctx.parallelize(lines.clone(), 3)
            .save_as_compressed_text_file(&out, codec)
            .unwrap();
        let mut all = String::new();
        for p in parts(&out) {
            assert!(p.to_string_lossy().ends_with(codec.extension()), "{p:?}");
            let o = Command::new(tool)
                .args(["-d", "-c"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{tool} -d {p:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            all.push_str(&String::from_utf8(o.stdout).unwrap());
        }
        assert_eq!(all.lines().collect::<Vec<_>>(), lines, "{tool}");
    }
}

#[test]
fn a_gzip_file_cut_short_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.txt.gz");
    let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    compress_with("gzip", text.as_bytes(), &path);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let ctx = ctx();
    let err = ctx.text_file(&path, 1).unwrap().count().unwrap_err();
    let Error::Io {
        path: named,
        source,
    } = err.root_cause()
    else {
        panic!("{err:?}");
    };
    assert_eq!(named, &path);
    assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof, "{source}");
    let json = ctx
        .json_lines_file::<u64>(&path, &Default::default())
        .unwrap();
    assert!(json.count().unwrap_err().to_string().contains("cut.txt.gz"));
}

/// 1-based line numbers of the lines of `text` for which `bad` holds, by
/// `str::lines` (the files here end lines with `\n` only).
fn bad_lines(text: &str, bad: impl Fn(&str) -> bool) -> Vec<u64> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| bad(l))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

#[test]
fn bad_json_lines_fail_naming_file_line_and_column_or_are_skipped_counted_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut text = String::new();
    for i in 0..3_000u64 {
        match i % 700 {
            699 => text.push_str("{\"id\": 1, oops}\n"),
            350 => text.push('\n'), // blank: no record
            _ => text.push_str(&format!("{{\"id\": {i}}}\n")),
        }
    }
    std::fs::write(&path, &text).unwrap();
    let expected_bad = bad_lines(&text, |l| l.contains("oops"));
    assert_eq!(expected_bad.len(), 4);
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Event {
        id: u64,
    }
    for parts in [1, 4, 13] {
        let (ctx, log) = logged_ctx();
        let options = JsonLinesOptions::default().min_partitions(parts);
        // Fail (the default): the first bad line of some partition.
        let err = ctx
            .json_lines_file::<Event>(&path, &options)
            .unwrap()
            .count()
            .unwrap_err();
        let Error::MalformedRecord(bad) = err.root_cause() else {
            panic!("{err:?}");
        };
        assert!(
            expected_bad.contains(&bad.line),
            "{bad:?}, {parts} partitions"
        );
        assert_eq!((bad.path.as_path(), bad.column), (path.as_path(), Some(11)));
        assert!(
            err.to_string()
                .contains(&format!("events.jsonl at line {}, column 11", bad.line)),
            "{err}"
        );
        // Skip: the good ones, and the job's metrics count the others.
        let skip = options.clone().bad_records(BadRecords::Skip);
        let good = ctx.json_lines_file::<Event>(&path, &skip).unwrap();
        assert_eq!(good.count().unwrap(), 3_000 - 4 - 4);
        assert_eq!(log.job_metrics().bad_records_skipped, 4);
        // Keep: every bad line with its own line number, offset and text.
        let all = ctx
            .json_lines_file_keeping_bad::<Event>(&path, &options)
            .unwrap();
        let bad: Vec<BadRecord> = all.filter_map(|r| r.err()).collect().unwrap();
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            expected_bad,
            "{parts} partitions"
        );
        for b in &bad {
            let at = b.offset as usize;
            assert_eq!(&text[at..at + b.text.len()], b.text);
            assert_eq!(b.text, "{\"id\": 1, oops}");
        }
    }
}

#[test]
fn csv_rows_with_too_many_or_too_few_fields_or_bad_values_get_their_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.csv");
    let mut text = String::from("key,value\n");
    for i in 0..2_000 {
        match i % 500 {
            100 => text.push_str("a,1,extra\n"),
            200 => text.push_str("lonely\n"),
            300 => text.push_str("b,notanumber\n"),
            _ => text.push_str(&format!("k{i},{i}\n")),
        }
    }
    std::fs::write(&path, &text).unwrap();
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Pair {
        key: String,
        value: i64,
    }
    let too_many = bad_lines(&text, |l| l.ends_with(",extra"));
    let too_few = bad_lines(&text, |l| l == "lonely");
    let not_number = bad_lines(&text, |l| l.ends_with(",notanumber"));
    for parts in [1, 3, 11] {
        let (ctx, log) = logged_ctx();
        let options = CsvOptions::default().min_partitions(parts);
        let err = ctx
            .csv_file::<Pair>(&path, &options)
            .unwrap()
            .count()
            .unwrap_err();
        assert!(
            matches!(err.root_cause(), Error::MalformedRecord(_)),
            "{err:?}"
        );
        assert!(err.to_string().contains("pairs.csv at line "), "{err}");
        let skip = options.clone().bad_records(BadRecords::Skip);
        assert_eq!(
            ctx.csv_file::<Pair>(&path, &skip).unwrap().count().unwrap(),
            2_000 - 12
        );
        assert_eq!(log.job_metrics().bad_records_skipped, 12);
        let bad: Vec<BadRecord> = ctx
            .csv_file_keeping_bad::<Pair>(&path, &options)
            .unwrap()
            .filter_map(|r| r.err())
            .collect()
            .unwrap();
        let lines = |f: &dyn Fn(&BadRecord) -> bool| {
            bad.iter()
                .filter(|b| f(b))
                .map(|b| b.line)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lines(&|b| b.reason.contains("has 3 fields")),
            too_many,
            "{parts}: {bad:?}"
        );
        assert_eq!(
            lines(&|b| b.reason.contains("has 1 fields")),
            too_few,
            "{parts}"
        );
        assert_eq!(lines(&|b| b.field == Some(2)), not_number, "{parts}");
        for b in &bad {
            assert_eq!(&text[b.offset as usize..][..b.text.len()], b.text, "{b:?}");
        }
    }
}

#[test]
fn invalid_utf8_is_a_bad_record_in_csv_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, b"name\nann\nb\xffb\ncy\n").unwrap();
    let json = dir.path().join("bad.jsonl");
    std::fs::write(&json, b"\"ann\"\n\"b\xffb\"\n\"cy\"\n").unwrap();
    let ctx = ctx();
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Name {
        name: String,
    }
    let err = ctx
        .csv_file::<Name>(&csv, &Default::default())
        .unwrap()
        .count()
        .unwrap_err();
    assert!(
        err.to_string().contains("bad.csv at line 3, field 1"),
        "{err}"
    );
    let err = ctx
        .json_lines_file::<String>(&json, &Default::default())
        .unwrap()
        .count()
        .unwrap_err();
    assert!(err.to_string().contains("bad.jsonl at line 2"), "{err}");
    let kept = ctx
        .json_lines_file_keeping_bad::<String>(&json, &Default::default())
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(kept[0], Ok("ann".to_string()));
    assert_eq!(kept[1].as_ref().unwrap_err().text, "\"b\u{fffd}b\"");
    assert_eq!(kept[2], Ok("cy".to_string()));
}

#[test]
fn csv_options_delimiter_quote_escape_comment_trim_and_no_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.tsv");
    std::fs::write(&path, "# a comment\n'x\\'y'\t 1 \n# another\n z \t2\n").unwrap();
    let options = CsvOptions::default()
        .header(false)
        .delimiter(b'\t')
        .quote(b'\'')
        .escape(b'\\')
        .comment(b'#')
        .trim(true);
    let rows = ctx()
        .csv_file::<(String, i32)>(&path, &options)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(rows, [("x'y".to_string(), 1), ("z".to_string(), 2)]);
}

#[test]
fn a_missing_input_fails_naming_it_for_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let ctx = ctx();
    let csv = ctx
        .csv_file::<(String,)>(&missing, &Default::default())
        .err()
        .unwrap();
    let json = ctx
        .json_lines_file::<u8>(&missing, &Default::default())
        .err()
        .unwrap();
    for err in [csv, json] {
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        assert!(
            err.to_string().to_lowercase().contains("no such file"),
            "{err}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn object_files_round_trip_any_rows_and_partitions(
        rows in prop::collection::vec(row(true), 0..300),
        parts_out in 1usize..7,
    ) {
        let ctx = ctx();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("objects");
        ctx.parallelize(rows.clone(), parts_out).save_as_object_file(&out).unwrap();
        let back = ctx.object_file::<Row>(&out).unwrap();
        prop_assert_eq!(back.num_partitions(), parts_out);
        prop_assert_eq!(back.collect().unwrap(), rows);
    }
}

#[test]
fn an_object_file_of_another_type_corrupt_or_cut_short_fails_naming_it() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("objects");
    let rows: Vec<(u64, String)> = (0..5_000).map(|i| (i, format!("row {i}"))).collect();
    ctx.parallelize(rows, 1).save_as_object_file(&out).unwrap();
    let part = out.join("part-00000");
    let reason = |err: Error| match err.root_cause() {
        Error::BadObjectFile { path, reason } => {
            assert_eq!(path, &part);
            reason.clone()
        }
        other => panic!("{other:?}"),
    };
    let wrong = ctx
        .object_file::<(u64, u64)>(&out)
        .unwrap()
        .count()
        .unwrap_err();
    assert_eq!(
        reason(wrong),
        "it holds (u64, alloc::string::String), not (u64, u64)"
    );
    let good = std::fs::read(&part).unwrap();
    // A flipped byte in the data: its frame's checksum says so.
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x55;
    std::fs::write(&part, &flipped).unwrap();
    let err = ctx
        .object_file::<(u64, String)>(&out)
        .unwrap()
        .count()
        .unwrap_err();
    assert_eq!(reason(err), "checksum mismatch");
    // Cut short anywhere, also between two frames: never fewer rows.
    for cut in [good.len() - 1, good.len() / 3, 12] {
        std::fs::write(&part, &good[..cut]).unwrap();
        let err = ctx
            .object_file::<(u64, String)>(&out)
            .unwrap()
            .count()
            .unwrap_err();
        assert_eq!(reason(err), "the file is cut short", "cut at {cut}");
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, long enough to be read").unwrap();
    let err = ctx.object_file::<u8>(&text).unwrap().count().unwrap_err();
    assert!(
        err.to_string()
            .contains("notes.txt: it does not start as an object file does"),
        "{err}"
    );
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Wide {
    name: String,
    count: i64,
    score: Option<i64>,
    flag: bool,
    ratio: f64,
    tags: Vec<String>,
}

fn wide() -> impl Strategy<Value = Wide> {
    (
        row(true),
        -1e9f64..1e9,
        prop::collection::vec("[a-z😀]{0,4}", 0..4),
    )
        .prop_map(|(r, ratio, tags)| Wide {
            name: r.name,
            count: r.count,
            score: r.score,
            flag: r.flag,
            ratio,
            tags,
        })
}

/// The columns a narrower type reads from a `Wide` file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct NameAndTags {
    tags: Vec<String>,
    name: String,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn parquet_round_trips_any_rows_codecs_and_row_groups(
        rows in prop::collection::vec(wide(), 0..200),
        parts_out in 1usize..5,
        group_rows in 1usize..80,
        codec in 0usize..5,
    ) {
        use spate::{ParquetCodec as P, ParquetWriteOptions};
        let codec = [P::Uncompressed, P::Snappy, P::Zstd, P::Gzip, P::Lz4][codec];
        let ctx = ctx();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pq");
        let options = ParquetWriteOptions::default().codec(codec).row_group_rows(group_rows);
        ctx.parallelize(rows.clone(), parts_out).save_as_parquet(&out, &options).unwrap();
        let back = ctx.parquet_file::<Wide>(&out).unwrap();
        // One partition per row group.
        let expected_groups: usize = (0..parts_out)
            .map(|p| {
                let n = rows.len() * (p + 1) / parts_out - rows.len() * p / parts_out;
                n.div_ceil(group_rows)
            })
            .sum();
        prop_assert_eq!(back.num_partitions(), expected_groups);
        prop_assert_eq!(back.collect().unwrap(), rows.clone());
        // Fewer columns, in another order: only those are read.
        let narrow = ctx.parquet_file::<NameAndTags>(&out).unwrap().collect().unwrap();
        let expected: Vec<NameAndTags> = rows.iter().map(|r| NameAndTags { tags: r.tags.clone(), name: r.name.clone() }).collect();
        prop_assert_eq!(narrow, expected);
    }
}

#[test]
fn parquet_reads_only_the_columns_a_type_names_and_counts_their_bytes() {
    let (ctx, log) = logged_ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pq");
    let rows: Vec<Wide> = (0..20_000)
        .map(|i| Wide {
            name: format!("n{}", i % 10),
            count: i,
            score: None,
            flag: i % 2 == 0,
            ratio: i as f64 / 7.0,
            tags: vec![format!("{:0>200}", i)], // a big column
        })
        .collect();
    ctx.parallelize(rows, 1)
        .save_as_parquet(&out, &Default::default())
        .unwrap();
    log.clear();
    #[derive(Clone, Serialize, Deserialize)]
    struct Count {
        count: i64,
    }
    assert_eq!(
        ctx.parquet_file::<Count>(&out)
            .unwrap()
            .map(|c| c.count)
            .sum()
            .unwrap(),
        199_990_000
    );
    let narrow = log.total_metrics();
    log.clear();
    assert_eq!(
        ctx.parquet_file::<Wide>(&out).unwrap().count().unwrap(),
        20_000
    );
    let all = log.total_metrics();
    assert_eq!((narrow.input_records, all.input_records), (20_000, 20_000));
    assert!(
        narrow.input_bytes * 3 < all.input_bytes,
        "{} vs {}",
        narrow.input_bytes,
        all.input_bytes
    );
}

#[test]
fn a_parquet_schema_that_does_not_fit_the_type_is_refused_before_any_job() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pq");
    ctx.parallelize(vec![py_rows()[0].clone()], 1)
        .save_as_parquet(&out, &Default::default())
        .unwrap();
    let part = out.join("part-00000.parquet");
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Missing {
        name: String,
        weight: f64,
    }
    let err = ctx.parquet_file::<Missing>(&out).err().unwrap();
    let Error::SchemaMismatch { path, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &part);
    assert!(
        reason.contains(
            "has a field \"weight\", the file has no such column (it has name, count, score, flag)"
        ),
        "{reason}"
    );
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct WrongKind {
        flag: String,
    }
    let err = ctx.parquet_file::<WrongKind>(&out).err().unwrap();
    assert!(
        err.to_string()
            .contains("column \"flag\" holds a boolean (Boolean), but"),
        "{err}"
    );
    assert!(err.to_string().contains("field is a string"), "{err}");
    // Integer widths may differ: an i64 column into an i32 field reads
    // what fits.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Narrower {
        count: i32,
    }
    assert_eq!(
        ctx.parquet_file::<Narrower>(&out)
            .unwrap()
            .collect()
            .unwrap(),
        [Narrower { count: 1 }]
    );
}

#[test]
fn a_parquet_file_cut_short_or_not_parquet_fails_naming_it() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pq");
    ctx.parallelize(py_rows(), 1)
        .save_as_parquet(&out, &Default::default())
        .unwrap();
    let part = out.join("part-00000.parquet");
    let good = std::fs::read(&part).unwrap();
    for cut in [good.len() - 3, good.len() / 2, 4] {
        std::fs::write(&part, &good[..cut]).unwrap();
        let err = ctx.parquet_file::<Row>(&out).err().unwrap();
        let Error::BadParquetFile { path, .. } = &err else {
            panic!("cut at {cut}: {err:?}")
        };
        assert_eq!(path, &part, "{err}");
    }
    let text = dir.path().join("notes.parquet");
    std::fs::write(&text, "not parquet at all, just text").unwrap();
    let err = ctx.parquet_file::<Row>(&text).err().unwrap();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read Parquet file {}", text.display())),
        "{err}"
    );
}

/// The Python with pyarrow, pandas, DuckDB and Polars that
/// `scripts/system-tests.sh` installs from PyPI.
fn data_python() -> PathBuf {
    std::env::var_os("SPATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            Path::new(&home).join(".cache/spate-test/pyenv/bin/python")
        })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Sale {
    key: String,
    value: i64,
    discount: Option<f64>,
    paid: bool,
}

fn sales() -> Vec<Sale> {
    (0..1000)
        .map(|i| Sale {
            key: format!("k{}-ü", i % 37),
            value: i * 3 - 500,
            discount: (i % 4 == 0).then_some(i as f64 / 8.0),
            paid: i % 3 == 0,
        })
        .collect()
}

#[test]
#[ignore = "needs pyarrow, pandas, DuckDB and Polars: scripts/system-tests.sh installs them"]
fn pyarrow_duckdb_polars_and_pandas_parquet_files_are_read_and_spates_are_read_by_them() {
    let py = data_python();
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, duckdb, polars as pl, pyarrow as pa, pyarrow.parquet as pq, pandas as pd
d = sys.argv[1]
rows = [dict(key=f"k{i % 37}-ü", value=i * 3 - 500, discount=(i / 8.0 if i % 4 == 0 else None), paid=(i % 3 == 0)) for i in range(1000)]
t = pa.Table.from_pylist(rows)
pq.write_table(t, f"{d}/pyarrow.parquet", row_group_size=300)
pl.DataFrame(rows).write_parquet(f"{d}/polars.parquet")
pd.DataFrame(rows).to_parquet(f"{d}/pandas.parquet")
con = duckdb.connect()
con.register("t", t)
con.execute(f"COPY (SELECT * FROM t) TO '{d}/duckdb.parquet' (FORMAT parquet, ROW_GROUP_SIZE 256)")
"#;
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{py:?}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx = ctx();
    for writer in ["pyarrow", "polars", "pandas", "duckdb"] {
        let file = dir.path().join(format!("{writer}.parquet"));
        let got = ctx.parquet_file::<Sale>(&file).unwrap();
        assert_eq!(got.collect().unwrap(), sales(), "written by {writer}");
    }
    assert_eq!(
        ctx.parquet_file::<Sale>(dir.path().join("pyarrow.parquet"))
            .unwrap()
            .num_partitions(),
        4
    );

    // Spate writes; DuckDB and Polars read it back.
    let mine = dir.path().join("spate");
    let options = spate::ParquetWriteOptions::default()
        .codec(spate::ParquetCodec::Zstd)
        .row_group_rows(400);
    ctx.parallelize(sales(), 3)
        .save_as_parquet(&mine, &options)
        .unwrap();
    let check = r#"
import sys, json, duckdb, polars as pl
d = sys.argv[1]
a = duckdb.sql(f"SELECT key, value, discount, paid FROM '{d}/part-*.parquet' ORDER BY value").fetchall()
b = pl.read_parquet(f"{d}/part-*.parquet").sort("value").rows()
assert [tuple(r) for r in a] == [tuple(r) for r in b], (a[:3], b[:3])
print(json.dumps([list(r) for r in a]))
"#;
    let out = Command::new(&py)
        .arg("-c")
        .arg(check)
        .arg(&mine)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<(String, i64, Option<f64>, bool)> = serde_json::from_slice(&out.stdout).unwrap();
    let mut expected: Vec<(String, i64, Option<f64>, bool)> = sales()
        .into_iter()
        .map(|s| (s.key, s.value, s.discount, s.paid))
        .collect();
    expected.sort_by_key(|r| r.1);
    assert_eq!(read, expected);
}

#[test]
fn file_urls_name_local_paths_for_readers_and_writers() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = format!("file://{}/out", dir.path().display());
    let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    ctx.parallelize(lines.clone(), 3)
        .save_as_text_file(&out)
        .unwrap();
    // Written where the path says, committed as a local directory is.
    let local = dir.path().join("out");
    assert!(local.join("_SUCCESS").is_file());
    assert_eq!(parts(&local).len(), 3);
    assert_eq!(ctx.text_file(&out, 2).unwrap().collect().unwrap(), lines);
    let glob = format!("file://{}/out/part-0000[12]", dir.path().display());
    let want: Vec<String> = parts(&local)[1..]
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(ctx.text_file(&glob, 1).unwrap().collect().unwrap(), want);
}

#[cfg(not(feature = "object-store"))]
#[test]
fn object_store_urls_without_the_feature_are_refused_naming_it() {
    let ctx = ctx();
    for url in [
        "s3://bucket/data.csv",
        "gs://bucket/x",
        "https://example.com/x.txt",
    ] {
        let err = ctx.text_file(url, 1).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains(url) && m.contains("`object-store` feature")),
            "{err}"
        );
    }
    let err = ctx
        .parallelize(vec![1u32], 1)
        .save_as_object_file("s3://bucket/out")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("s3://bucket/out")),
        "{err}"
    );
}

/// The Python with PySpark for the Spark test (`SPATE_TEST_SPARK_PYTHON`,
/// else the virtualenv `scripts/system-tests.sh` makes).
fn spark_python() -> PathBuf {
    std::env::var_os("SPATE_TEST_SPARK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            Path::new(&home).join(".cache/spate-test/spark/bin/python")
        })
}

#[test]
#[ignore = "needs PySpark and Java: scripts/system-tests.sh installs PySpark"]
fn pyspark_parquet_output_is_read_and_spark_reads_spates() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("spate");
    let ctx = ctx();
    ctx.parallelize(sales(), 3)
        .save_as_parquet(&mine, &Default::default())
        .unwrap();
    // Spark writes its directory (part files, `_SUCCESS`, `.crc` files) and
    // reads Spate's, printing the rows it read as JSON.
    let script = r#"
import sys, json
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
rows = [(f"k{i % 37}-ü", i * 3 - 500, (i / 8.0 if i % 4 == 0 else None), i % 3 == 0) for i in range(1000)]
df = spark.createDataFrame(rows, "key string, value long, discount double, paid boolean")
df.repartition(3).write.parquet(sys.argv[1] + "/spark")
back = spark.read.parquet(sys.argv[2]).orderBy("value").collect()
print("ROWS " + json.dumps([[r.key, r.value, r.discount, r.paid] for r in back]))
spark.stop()
"#;
    let py = spark_python();
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .arg(&mine)
        .output()
        .unwrap_or_else(|e| panic!("{py:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = sales();
    expected.sort_by_key(|s| s.value);
    let spark_dir = dir.path().join("spark");
    assert!(spark_dir.join("_SUCCESS").is_file());
    let got = ctx.parquet_file::<Sale>(&spark_dir).unwrap();
    assert_eq!(got.num_partitions(), parts(&spark_dir).len());
    let mut got = got.collect().unwrap();
    got.sort_by_key(|s| s.value);
    assert_eq!(got, expected, "Spark's files as Spate reads them");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROWS "))
        .unwrap();
    let read: Vec<(String, i64, Option<f64>, bool)> = serde_json::from_str(line).unwrap();
    let want: Vec<_> = expected
        .into_iter()
        .map(|s| (s.key, s.value, s.discount, s.paid))
        .collect();
    assert_eq!(read, want, "Spate's files as Spark reads them");
}
