//! `mnist eval`: accuracy, per-class accuracy and the confusion matrix of a checkpoint.

use std::process::ExitCode;

use anyhow::Result;
use mnist_data::batch::DeviceSplit;
use mnist_train::{evaluate, EvalReport};

use crate::cli::EvalArgs;
use crate::{data, device, weights};

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let (device, device_name) = device::open(args.device)?;
    let loaded = weights::load(Some(&args.weights), args.network.architecture(), &device)?;
    let (network, norm) = (loaded.network, loaded.normalization);
    let mnist = data::load(&args.data)?;
    eprintln!(
        "evaluating {} ({}) on {device_name}",
        args.weights.display(),
        network.architecture
    );
    let test = DeviceSplit::new(mnist.test.images, &mnist.test.labels, &device)?;
    let batch_size = args.batch_size;
    // The forward passes alone (data already decoded and on the device): what the benchmark quotes.
    let started = std::time::Instant::now();
    let report = evaluate(&network, &test, &norm, batch_size)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("evaluated {} images in {seconds:.3} s", report.n);
    if args.json {
        let json = serde_json::json!({
            "weights": args.weights,
            "architecture": network.architecture.name(),
            "n": report.n,
            "accuracy": report.accuracy,
            "loss": report.loss,
            "per_class": report.per_class,
            "confusion": report.confusion,
            "seconds": seconds,
        });
        println!("{json}");
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &EvalReport) {
    let correct = (r.accuracy * r.n as f64).round() as u64;
    println!(
        "accuracy {:.4} ({correct}/{}) loss {:.4}",
        r.accuracy, r.n, r.loss
    );
    println!();
    println!("confusion matrix (rows: true digit, columns: predicted), per-class accuracy");
    print!("     ");
    for p in 0..10 {
        print!("{p:>6}");
    }
    println!("  accuracy");
    for (t, row) in r.confusion.iter().enumerate() {
        print!("{t:>5}");
        for count in row {
            print!("{count:>6}");
        }
        println!("  {:.4}", r.per_class[t]);
    }
}
