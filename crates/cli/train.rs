//! `mnist train`: build the configuration, run epochs, checkpoint after each, report.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use mnist_data::Normalization;
use mnist_model::Checkpoint;
use mnist_report::EpochMetrics;
use mnist_train::{EpochReport, OptimizerConfig, OptimizerKind, TrainConfig, Trainer};

use crate::cli::{NormalizationName, OptimizerName, TrainArgs};
use crate::created_dirs::CreatedDirs;
use crate::progress::EpochBar;
use crate::{data, device};

/// The tutorial trains for 5 epochs, its own network.
pub const DEFAULT_EPOCHS: usize = 5;
pub const DEFAULT_NETWORK: &str = "tutorial";

/// Exit code after Ctrl-C, as shells expect (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

fn config_from_args(args: &TrainArgs) -> Result<TrainConfig> {
    let architecture = match args.network.architecture() {
        Some(architecture) => architecture,
        None => DEFAULT_NETWORK.parse()?,
    };
    let normalization = match args.normalization {
        Some(NormalizationName::Unit) => Normalization::Unit,
        Some(NormalizationName::MeanStd) => Normalization::mnist_mean_std(),
        None => architecture.default_normalization(),
    };
    let kind = match args.optimizer {
        OptimizerName::Adam => OptimizerKind::Adam,
        OptimizerName::Adamw => OptimizerKind::Adamw,
        OptimizerName::Sgd => OptimizerKind::Sgd,
    };
    let mut optimizer = OptimizerConfig::new(kind, args.lr);
    optimizer.momentum = args.momentum;
    optimizer.weight_decay = args.weight_decay;
    let config = TrainConfig {
        architecture,
        epochs: args.epochs.unwrap_or(DEFAULT_EPOCHS),
        batch_size: args.batch_size,
        optimizer,
        lr_decay: args.lr_decay,
        seed: args.seed,
        normalization,
        augment: args.augment,
        pen_strokes: args.pen_strokes,
        elastic: args.elastic,
        flagged_ones: args.flagged_ones,
        eval_batch_size: mnist_train::CLASSIFY_BATCH_SIZE,
    };
    config.validate()?;
    Ok(config)
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    // Check everything the user typed before loading 55 MB of data.
    if args.resume.is_some() && args.network.architecture().is_some() {
        anyhow::bail!(
            "--resume continues the checkpoint's own network; leave out --model and --layers"
        );
    }
    let fresh_config = config_from_args(&args)?;
    let resume = match &args.resume {
        Some(path) => Some(Checkpoint::read(path).context("reading the --resume checkpoint")?),
        None => None,
    };
    let out = match (&args.out, &args.resume) {
        (Some(out), _) => out.clone(),
        (None, Some(resume)) => resume.clone(),
        (None, None) => PathBuf::from(format!(
            "runs/{}.safetensors",
            fresh_config.architecture.name()
        )),
    };
    // Folders made here are removed again if the run ends before writing into them.
    let mut created = CreatedDirs::default();
    prepare_output(&out, &mut created)?;
    if let Some(dir) = &args.report {
        created
            .create(dir)
            .with_context(|| format!("--report {}: cannot create the directory", dir.display()))?;
    }
    let (device, device_name) = device::open(args.device)?;
    let mnist = data::load(&args.data)?;
    // The report evaluates the final model on the test set; the trainer keeps its copy on the
    // device, so keep one on the host.
    let report_test = args.report.as_ref().map(|_| mnist.test.clone());

    let mut trainer = match &resume {
        Some(checkpoint) => {
            // On resume the recipe comes from the checkpoint; only --epochs may change it.
            Trainer::resume(checkpoint, args.epochs, mnist, &device)?
        }
        None => Trainer::new(fresh_config, mnist, &device)?,
    };
    let config = trainer.config.clone();
    eprintln!(
        "training {} ({}; {} parameters) on {device_name}: {} epoch{}, batch {}, {:?} lr {}{}; checkpoint {}",
        config.architecture,
        config.architecture.layers_text(),
        trainer.network.parameter_count(),
        config.epochs,
        if config.epochs == 1 { "" } else { "s" },
        config.batch_size,
        config.optimizer.kind,
        config.optimizer.lr,
        if trainer.completed_epochs() > 0 { format!(", resuming after epoch {}", trainer.completed_epochs()) } else { String::new() },
        out.display()
    );

    // The file holding the last completed epoch: the one resumed from until this run saves.
    let mut last_saved = args.resume.clone();
    let mut history = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // First Ctrl-C: finish cleanly (the checkpoint on disk is the last completed epoch).
        // Second: leave at once.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
        });
    }

    while !trainer.is_finished() {
        let epoch = trainer.completed_epochs() + 1;
        let bar = EpochBar::new(epoch, config.epochs, trainer.steps_per_epoch());
        let report = trainer.train_epoch(&stop, &mut |p| bar.update(p));
        bar.finish();
        let Some(report) = report? else {
            let done = trainer.completed_epochs();
            match &last_saved {
                Some(path) => eprintln!(
                    "interrupted during epoch {epoch}; {} holds epoch {done}. Continue with: mnist train --resume {}",
                    path.display(),
                    path.display()
                ),
                None => eprintln!(
                    "interrupted during epoch {epoch}; no epoch completed, so no checkpoint was written"
                ),
            }
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        };
        trainer
            .save_checkpoint(&out, Some(report.test.accuracy))
            .with_context(|| format!("saving the epoch {epoch} checkpoint"))?;
        last_saved = Some(out.clone());
        print_epoch(&report);
        if let Some(metrics) = &args.metrics {
            append_metrics(metrics, &report, &config)?;
        }
        history.push(EpochMetrics {
            epoch: report.epoch,
            train_loss: report.train_loss,
            train_accuracy: report.train_accuracy,
            test_loss: report.test.loss,
            test_accuracy: report.test.accuracy,
        });
    }
    eprintln!("saved {}", out.display());
    if let (Some(dir), Some(test)) = (&args.report, &report_test) {
        // The metrics file holds the epochs before a --resume too.
        if let Some(metrics) = &args.metrics {
            history = mnist_report::read_metrics(metrics).context("reading --metrics")?;
        }
        let classifier = mnist_train::Classifier::new(&trainer.network, config.normalization)?;
        let title = format!("{} from {}", config.architecture.name(), out.display());
        crate::report::write(dir, title, history, &classifier, test)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates the checkpoint's directory and makes sure it can be written before hours of training.
fn prepare_output(out: &Path, created: &mut CreatedDirs) -> Result<()> {
    if out.is_dir() {
        anyhow::bail!(
            "--out {}: is a directory; give a file name such as {}/model.safetensors",
            out.display(),
            out.display()
        );
    }
    let dir = match out.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    created.create(dir).with_context(|| {
        format!(
            "--out {}: cannot create directory {}",
            out.display(),
            dir.display()
        )
    })?;
    // Checkpoints go through a temporary file in the same directory; find out now, not after
    // the first epoch, whether one can be created there.
    let probe = dir.join(format!(".mnist-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("--out {}: cannot write in {}", out.display(), dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    // A run killed while writing its checkpoint leaves a temporary file beside it (the
    // checkpoint itself is intact: it is only ever replaced by a rename).
    match mnist_data::fs::remove_stale_parts(out) {
        Ok(0) | Err(_) => {}
        Ok(n) => eprintln!("removed {n} partial checkpoint file(s) left by an interrupted write"),
    }
    Ok(())
}

/// The stable result line on stdout, one per epoch.
fn print_epoch(r: &EpochReport) {
    println!(
        "epoch {}/{} train_loss {:.4} train_accuracy {:.4} test_loss {:.4} test_accuracy {:.4} lr {:.6} seconds {:.1}",
        r.epoch, r.epochs, r.train_loss, r.train_accuracy, r.test.loss, r.test.accuracy, r.lr, r.seconds
    );
}

fn append_metrics(path: &Path, r: &EpochReport, config: &TrainConfig) -> Result<()> {
    let line = serde_json::json!({
        "epoch": r.epoch,
        "epochs": r.epochs,
        "architecture": config.architecture.name(),
        "train_loss": r.train_loss,
        "train_accuracy": r.train_accuracy,
        "test_loss": r.test.loss,
        "test_accuracy": r.test.accuracy,
        "lr": r.lr,
        "seconds": r.seconds,
    });
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("--metrics {}: cannot open for appending", path.display()))?;
    writeln!(file, "{line}")
        .with_context(|| format!("--metrics {}: cannot write", path.display()))?;
    Ok(())
}
