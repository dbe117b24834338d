//! What every batch reports besides its outputs: records each input
//! brought, state sizes, watermarks and late records, gathered from the
//! streams that registered a meter.

use super::metrics::StateSize;
use super::time::Time;
use super::watermark::EventTime;
use parking_lot::Mutex;
use std::collections::BTreeMap;

type StateMeter = Box<dyn Fn(Time) -> Option<StateSize> + Send + Sync>;
type WatermarkMeter = Box<dyn Fn(Time) -> (usize, EventTime) + Send + Sync>;
type LateMeter = Box<dyn Fn(Time) -> u64 + Send + Sync>;

/// The meters of one streaming context.
#[derive(Default)]
pub(crate) struct Meters {
    /// Records each input brought to each batch not yet reported.
    input_records: Mutex<BTreeMap<Time, u64>>,
    /// Report the state size of each stateful stream after a batch.
    state_meters: Mutex<Vec<StateMeter>>,
    /// Report the watermark of each event stream after a batch.
    watermark_meters: Mutex<Vec<WatermarkMeter>>,
    /// Report the late records of each event-time window operator.
    late_meters: Mutex<Vec<LateMeter>>,
}

impl Meters {
    /// Counts records an input brought to the batch at `time`.
    pub(crate) fn count_input(&self, time: Time, records: u64) {
        *self.input_records.lock().entry(time).or_default() += records;
    }

    /// The records counted for `time`, forgetting them.
    pub(crate) fn take_input_count(&self, time: Time) -> u64 {
        let mut m = self.input_records.lock();
        let n = m.remove(&time).unwrap_or(0);
        // Counts of batches that will never be reported (undefined times).
        let newer = m.split_off(&time);
        *m = newer;
        n
    }

    pub(crate) fn add_state_meter(&self, meter: StateMeter) {
        self.state_meters.lock().push(meter);
    }

    pub(crate) fn add_watermark_meter(&self, meter: WatermarkMeter) {
        self.watermark_meters.lock().push(meter);
    }

    pub(crate) fn add_late_meter(&self, meter: LateMeter) {
        self.late_meters.lock().push(meter);
    }

    /// Records later than their windows' lateness in the batch at `time`.
    pub(crate) fn late_records(&self, time: Time) -> u64 {
        self.late_meters.lock().iter().map(|m| m(time)).sum()
    }

    /// The watermark of each event stream after the batch at `time`.
    pub(crate) fn watermarks(&self, time: Time) -> Vec<(usize, EventTime)> {
        self.watermark_meters
            .lock()
            .iter()
            .map(|m| m(time))
            .collect()
    }

    /// The state held by each stateful stream after the batch at `time`.
    pub(crate) fn state_sizes(&self, time: Time) -> Vec<StateSize> {
        self.state_meters
            .lock()
            .iter()
            .filter_map(|m| m(time))
            .collect()
    }
}
