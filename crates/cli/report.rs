//! `mnist report` and `mnist train --report`: evaluate a model on the test set and draw the
//! training report (`mnist-report` does the drawing; this file only gathers the numbers).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use mnist_data::{Split, IMAGE_PIXELS};
use mnist_report::{EpochMetrics, Report, MISTAKES_SHOWN};
use mnist_train::{Classifier, EvalReport};

use crate::cli::ReportArgs;
use crate::{data, device, weights};

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    // The cheap checks first: a bad metrics file should not cost loading the data.
    let history = mnist_report::read_metrics(&args.metrics).context("reading --metrics")?;
    let (device, device_name) = device::open(args.device)?;
    let loaded = weights::load(Some(&args.weights), args.network.architecture(), &device)?;
    let classifier = Classifier::new(&loaded.network, loaded.normalization)?;
    let mnist = data::load(&args.data)?;
    eprintln!(
        "evaluating {} ({}) on {device_name}",
        args.weights.display(),
        loaded.network.architecture
    );
    let title = format!(
        "{} from {}",
        loaded.network.architecture.name(),
        args.weights.display()
    );
    write(&args.out, title, history, &classifier, &mnist.test)?;
    Ok(ExitCode::SUCCESS)
}

/// Evaluates `classifier` on `test` and writes the report into `dir`, listing the files written
/// on stdout.
pub fn write(
    dir: &Path,
    title: String,
    history: Vec<EpochMetrics>,
    classifier: &Classifier,
    test: &Split,
) -> Result<()> {
    let images: Vec<[u8; IMAGE_PIXELS]> = test
        .images
        .chunks_exact(IMAGE_PIXELS)
        .map(|c| std::array::from_fn(|i| c[i]))
        .collect();
    let probabilities = classifier.probabilities(&images)?;
    let labels: Vec<u32> = test.labels.iter().map(|&l| l as u32).collect();
    let predictions: Vec<u32> = probabilities
        .iter()
        .map(|p| mnist_report::argmax(p).0 as u32)
        .collect();
    let loss_sum: f64 = probabilities
        .iter()
        .zip(&test.labels)
        .map(|(p, &l)| -(p[l as usize].max(1e-12) as f64).ln())
        .sum();
    // The same counting as `mnist eval`.
    let evaluation = EvalReport::from_predictions(&labels, &predictions, loss_sum);
    let report = Report {
        title,
        history,
        confusion: evaluation.confusion,
        mistakes: mnist_report::mistakes(
            &test.images,
            &test.labels,
            &probabilities,
            MISTAKES_SHOWN,
        ),
    };
    let written = mnist_report::write(dir, &report).context("writing the report")?;
    for path in &written {
        println!("{}", path.display());
    }
    eprintln!(
        "report: {} (test accuracy {:.2}% over {} images)",
        dir.join("index.html").display(),
        evaluation.accuracy * 100.0,
        evaluation.n
    );
    Ok(())
}
