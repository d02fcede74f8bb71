//! A Keras-like progress bar on stderr ("1875/1875 [=====>....] ETA 12s loss: 0.1502 - accuracy:
//! 0.9552"). indicatif draws nothing when stderr is not a terminal, so logs and pipes stay clean.

use indicatif::{ProgressBar, ProgressStyle};
use mnist_train::StepProgress;

pub struct EpochBar {
    bar: ProgressBar,
}

impl EpochBar {
    pub fn new(epoch: usize, epochs: usize, steps: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        let style = ProgressStyle::with_template(
            "Epoch {prefix} {pos:>5}/{len} [{bar:30.cyan/blue}] {elapsed} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        Self { bar }
    }

    pub fn update(&self, p: StepProgress) {
        self.bar.set_position(p.step as u64);
        self.bar
            .set_message(format!("loss: {:.4} - accuracy: {:.4}", p.loss, p.accuracy));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
