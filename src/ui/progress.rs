//! The terminal progress line of each running stage, as Spark's console
//! shows it: `[Stage 3: ====>      (12 + 2) / 40]`. Drawn with indicatif
//! on stderr, only when stderr is a terminal and the context's
//! [`console_progress`](crate::ContextBuilder::console_progress) is on.

use crate::runtime::{Event, Listener};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use std::collections::HashMap;

/// One bar per running stage: (bar, tasks running).
#[derive(Default)]
pub(crate) struct Progress {
    bars: Mutex<HashMap<u64, (ProgressBar, u64)>>,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("[{prefix}: {bar:40.cyan/blue} ({pos} + {msg}) / {len}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Listener for Progress {
    fn on_event(&self, event: &Event) {
        let mut bars = self.bars.lock();
        match event {
            Event::StageSubmitted { stage, tasks, .. } => {
                let bar = ProgressBar::with_draw_target(
                    Some(*tasks as u64),
                    ProgressDrawTarget::stderr(),
                );
                bar.set_style(style());
                bar.set_prefix(format!("Stage {stage}"));
                bar.set_message("0");
                bars.insert(*stage, (bar, 0));
            }
            Event::TaskStart { task, .. } => {
                if let Some((bar, running)) = bars.get_mut(&task.stage) {
                    *running += 1;
                    bar.set_message(running.to_string());
                }
            }
            Event::TaskEnd { task, failure, .. } => {
                if let Some((bar, running)) = bars.get_mut(&task.stage) {
                    *running = running.saturating_sub(1);
                    if failure.is_none() {
                        bar.inc(1);
                    }
                    bar.set_message(running.to_string());
                }
            }
            Event::StageCompleted { stage, .. } => {
                if let Some((bar, _)) = bars.remove(stage) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
