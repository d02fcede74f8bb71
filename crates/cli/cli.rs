//! The command line, as clap derive types. Parsed arguments are turned into checked
//! configurations (in `train.rs`, `eval.rs`) before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::device::DeviceChoice;

#[derive(Debug, Parser)]
#[command(name = "mnist", version, about = "Handwritten digit recognition on MNIST with Candle", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model, writing a checkpoint after every epoch.
    Train(TrainArgs),
    /// Evaluate a checkpoint on the MNIST test set.
    Eval(EvalArgs),
    /// Recognize the digit in each image file (one digit per image).
    Predict(PredictArgs),
    /// Read the number written left to right in each image file (several digits per image).
    Read(ReadArgs),
    /// Write a checkpoint in another tool's format (ONNX).
    Export(ExportArgs),
    /// Draw a training report (loss and accuracy curves, confusion matrix, worst mistakes) as
    /// PNG and SVG figures with an index.html.
    Report(ReportArgs),
    /// Run a local web page to draw or upload digits and watch them being read.
    Serve(ServeArgs),
}

/// Where to find (or download) the four MNIST IDX files.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Directory holding the MNIST IDX files (gzipped or raw) [default: $MNIST_DIR, else
    /// ./data/mnist, else the copy in this repository's data/mnist]. Missing files are downloaded
    /// there.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// The Keras tutorial's CNN: conv 32 3x3, max-pool, dense 128, dense 10 (693,962 parameters).
    Seed,
    /// Two VGG-style conv blocks with batch norm; use with --augment for ≥ 99.5%.
    Convnet,
    /// Two small conv layers (16 and 32 channels, 108,618 parameters): the fast recipe's network,
    /// 99% in three epochs (see docs/performance.md).
    Fast,
}

impl ModelName {
    pub fn architecture(self) -> mnist_model::Architecture {
        match self {
            Self::Seed => mnist_model::Architecture::Seed(Default::default()),
            Self::Convnet => mnist_model::Architecture::Convnet(Default::default()),
            Self::Fast => mnist_model::Architecture::Fast(Default::default()),
        }
    }

    /// The tutorial's x/255 for its own model; PyTorch's usual mean/std otherwise.
    pub fn default_normalization(self) -> mnist_data::Normalization {
        match self {
            Self::Seed | Self::Fast => mnist_data::Normalization::Unit,
            Self::Convnet => mnist_data::Normalization::mnist_mean_std(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerName {
    /// Adam with Keras' defaults (the tutorial's optimizer).
    Adam,
    /// Adam with decoupled weight decay (--weight-decay).
    Adamw,
    /// Plain gradient descent, with optional --momentum.
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormalizationName {
    /// x / 255, as the Keras tutorial.
    Unit,
    /// (x / 255 - 0.1307) / 0.3081, as the usual PyTorch example.
    MeanStd,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture to train.
    #[arg(long, value_enum, default_value_t = ModelName::Seed, conflicts_with = "resume")]
    pub model: ModelName,
    /// Passes over the 60,000 training images [default: 5; with --resume: the checkpoint's plan].
    /// With --resume this is the new total, to extend a run.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per gradient step.
    #[arg(long, default_value_t = 32, conflicts_with = "resume")]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, conflicts_with = "resume")]
    pub lr: f64,
    /// Multiply the learning rate by this after every epoch (1 keeps it constant).
    #[arg(long, default_value_t = 1.0, conflicts_with = "resume")]
    pub lr_decay: f64,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam, conflicts_with = "resume")]
    pub optimizer: OptimizerName,
    /// Momentum for --optimizer sgd.
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub momentum: f64,
    /// Decoupled weight decay for --optimizer adamw.
    #[arg(long, default_value_t = 0.01, conflicts_with = "resume")]
    pub weight_decay: f64,
    /// Pixel normalization [default: unit for seed (the tutorial's), mean-std for convnet].
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub normalization: Option<NormalizationName>,
    /// Randomly rotate, scale and shift training images each epoch.
    #[arg(long, conflicts_with = "resume")]
    pub augment: bool,
    /// Where to train: auto picks CUDA, then Metal, then CPU.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]|metal")]
    pub device: DeviceChoice,
    /// Seed for initialization, shuffling and augmentation; the same seed gives the same run.
    #[arg(long, default_value_t = 42, conflicts_with = "resume")]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Checkpoint to write after every epoch [default: runs/<model>.safetensors, or the --resume file].
    #[arg(long, value_name = "FILE.safetensors")]
    pub out: Option<PathBuf>,
    /// Continue the run saved in this checkpoint: weights, optimizer state, epoch and recipe
    /// all come from it (recipe flags are refused); --epochs may raise the total.
    #[arg(long, value_name = "FILE.safetensors")]
    pub resume: Option<PathBuf>,
    /// Append one JSON object per epoch to this file.
    #[arg(long, value_name = "FILE.jsonl")]
    pub metrics: Option<PathBuf>,
    /// After the last epoch, draw the training report into this directory (PNG and SVG
    /// figures, index.html); with --metrics the curves come from that file, so they include
    /// epochs before a --resume.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The per-epoch metrics `mnist train --metrics` wrote.
    #[arg(long, value_name = "FILE.jsonl")]
    pub metrics: PathBuf,
    /// The trained checkpoint, evaluated on the test set for the confusion matrix and mistakes.
    #[arg(long, value_name = "FILE.safetensors")]
    pub weights: PathBuf,
    /// Architecture of a weights file without mnist metadata (for example saved by PyTorch).
    #[arg(long, value_enum)]
    pub model: Option<ModelName>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to run: auto picks CUDA, then Metal, then CPU.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]|metal")]
    pub device: DeviceChoice,
    /// Directory to write the figures and index.html into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint to evaluate.
    #[arg(long, value_name = "FILE.safetensors")]
    pub weights: PathBuf,
    /// Architecture of a weights file without mnist metadata (for example saved by PyTorch);
    /// its input is then normalized the way `mnist train` would for that model.
    #[arg(long, value_enum)]
    pub model: Option<ModelName>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to run: auto picks CUDA, then Metal, then CPU.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]|metal")]
    pub device: DeviceChoice,
    /// Images per forward pass (speed and memory only; results do not depend on it). Default:
    /// the architecture's (256 for seed, 128 for fast and convnet).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_tutorial_recipe() {
        let cli = Cli::try_parse_from(["mnist", "train"]).unwrap();
        let Command::Train(t) = cli.command else {
            panic!("not train")
        };
        assert_eq!(
            (t.model, t.epochs, t.batch_size, t.lr, t.optimizer),
            (ModelName::Seed, None, 32, 1e-3, OptimizerName::Adam)
        );
        assert_eq!(crate::train::DEFAULT_EPOCHS, 5);
        assert_eq!(t.device, DeviceChoice::Auto);
    }

    #[test]
    fn min_confidence_is_a_probability() {
        for ok in [0.0, 0.5, 1.0] {
            assert_eq!(min_confidence(ok).unwrap(), ok);
        }
        for bad in [-0.1, 1.5, f32::NAN, f32::INFINITY] {
            let message = min_confidence(bad).unwrap_err().to_string();
            assert!(message.starts_with("--min-confidence "), "{message}");
        }
    }

    #[test]
    fn serve_listens_on_loopback_by_default() {
        let cli = Cli::try_parse_from(["mnist", "serve"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("not serve")
        };
        assert!(s.addr.ip().is_loopback());
        assert_eq!(s.addr.port(), 8080);
        assert_eq!(s.min_confidence, DEFAULT_MIN_CONFIDENCE);
    }
}

/// Which trained model to use: a file, or the one built into the binary.
#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// Checkpoint to use [default: the built-in weights/convnet.safetensors, 99.67% on MNIST's
    /// test set].
    #[arg(long, value_name = "FILE.safetensors")]
    pub weights: Option<PathBuf>,
    /// Architecture of a weights file without mnist metadata (for example saved by PyTorch).
    #[arg(long, value_enum, requires = "weights")]
    pub model: Option<ModelName>,
}

/// The model `predict` and `read` use, and where it runs.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Where to run: auto picks CUDA, then Metal, then CPU.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]|metal")]
    pub device: DeviceChoice,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Image files (PNG, JPEG, BMP, GIF, WebP or TIFF; any size; dark ink on light paper or the
    /// reverse), each showing one digit.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object per image instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Write the 28x28 image the model saw for each input to DIR/<name>.png (white ink on black,
    /// like MNIST), to see why it answered what it answered.
    #[arg(long, value_name = "DIR")]
    pub dump_preprocessed: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Image files, each showing one number written left to right (a meter reading, a form field).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object per image instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Flag digits the model gives less than this probability (0-1) as uncertain.
    #[arg(long, default_value_t = DEFAULT_MIN_CONFIDENCE)]
    pub min_confidence: f32,
    /// Write the 28x28 image of each digit the model saw to DIR/<name>-<k>.png.
    #[arg(long, value_name = "DIR")]
    pub dump_preprocessed: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default answers this machine only; port 0 picks a free port
    /// (the URL printed on stdout says which).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
    pub addr: std::net::SocketAddr,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Flag digits the model gives less than this probability (0-1) as uncertain.
    #[arg(long, default_value_t = DEFAULT_MIN_CONFIDENCE)]
    pub min_confidence: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// ONNX, opset 13: input "pixels" float32 [batch, 1, 28, 28] scaled 0-1, output "logits"
    /// float32 [batch, 10]; normalization and metadata inside the model.
    Onnx,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Onnx)]
    pub format: ExportFormat,
    /// File to write (atomically: an existing file is replaced only by a complete one).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Below this, `read` flags a digit as uncertain.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.8;

/// `--min-confidence` checked before any work, like the other values a number can hold but the
/// flag cannot take (a one-line error, exit 1; clap's own errors are about the command line's
/// shape).
pub fn min_confidence(value: f32) -> anyhow::Result<f32> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        anyhow::bail!("--min-confidence {value}: not a probability; give a value from 0 to 1")
    }
}
