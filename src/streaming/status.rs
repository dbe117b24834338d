//! How a streaming context's events appear in the web UI and its REST API
//! (`…/streaming/statistics` and `…/streaming/batches`, shaped after
//! Spark's): durations in milliseconds, times as the batch time in ms.

use super::metrics::{BatchInfo, StreamingEvent};
use crate::ui::{StreamingRow, ms};
use serde_json::json;

/// A finished batch as the API lists it.
fn batch(b: &BatchInfo) -> serde_json::Value {
    json!({
        "batchId": b.time.millis(),
        "batchTime": b.time.millis(),
        "status": "COMPLETED",
        "batchDuration": ms(b.interval),
        "inputSize": b.input_records,
        "invalidRecords": b.invalid_records,
        "schedulingDelay": ms(b.scheduling_delay),
        "processingTime": ms(b.processing_time),
        "totalDelay": ms(b.total_delay),
        "state": b.state.iter().map(|s| json!({"stream": s.stream, "keys": s.keys, "rows": s.rows, "bytes": s.bytes})).collect::<Vec<_>>(),
        "watermarks": b.watermarks.iter().map(|(stream, w)| json!({"stream": stream, "watermark": w})).collect::<Vec<_>>(),
        "lateRecords": b.late_records,
    })
}

/// The UI's row for `event`.
pub(crate) fn row(event: &StreamingEvent) -> StreamingRow {
    let change = |time: u64, kind: &str, value: String| {
        StreamingRow::Change(json!({"batchTime": time, "kind": kind, "value": value}))
    };
    match event {
        StreamingEvent::Started { zero, interval } => StreamingRow::Started(json!({
            "startTime": zero.millis(),
            "batchDuration": ms(*interval),
        })),
        StreamingEvent::BatchStarted { time } => StreamingRow::Running(time.millis()),
        StreamingEvent::BatchCompleted(b) => StreamingRow::Batch(batch(b)),
        StreamingEvent::InputWarning { stream, message } => {
            change(0, "input warning", format!("stream {stream}: {message}"))
        }
        StreamingEvent::RateChanged { time, rate } => change(
            time.millis(),
            "receiving rate",
            format!("{rate:.0} records/s per receiver"),
        ),
        StreamingEvent::IntervalChanged { time, interval } => change(
            time.millis(),
            "batch interval",
            format!("{} ms", ms(*interval)),
        ),
        StreamingEvent::Stopped(summary) => StreamingRow::Stopped(json!({
            "summary": summary.to_string(),
            "batches": summary.batches,
            "inputRecords": summary.input_records,
        })),
    }
}
