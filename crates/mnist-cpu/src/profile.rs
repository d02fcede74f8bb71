//! Where a step goes, node by node: with the `profile` feature, every node's forward and
//! backward (and the optimizer's pass) adds its wall time here, and [`report`] prints the mean
//! per call. `cargo run --release -p mnist-cpu --features profile --example step_time`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

static TIMES: Mutex<BTreeMap<String, (f64, usize)>> = Mutex::new(BTreeMap::new());

/// Adds the time from its creation to its drop under its label.
pub struct Timer(String, Instant);

impl Timer {
    pub fn new(label: String) -> Self {
        Timer(label, Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let mut times = TIMES.lock().unwrap_or_else(|e| e.into_inner());
        let entry = times.entry(std::mem::take(&mut self.0)).or_default();
        entry.0 += self.1.elapsed().as_secs_f64();
        entry.1 += 1;
    }
}

/// The mean milliseconds per call of every label so far, and their sum; then starts afresh.
pub fn report() -> String {
    let mut times = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    let mut total = 0.0;
    for (label, (seconds, calls)) in times.iter() {
        let mean = seconds / *calls as f64 * 1e3;
        total += mean;
        out += &format!("{label:>24}: {mean:8.3} ms\n");
    }
    out += &format!("{:>24}: {total:8.3} ms\n", "sum");
    times.clear();
    out
}
