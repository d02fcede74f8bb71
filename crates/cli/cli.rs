//! The command line, as clap derive types. Parsed arguments are turned into checked
//! configurations (in `train.rs`, `eval.rs`) before any work starts.

use std::path::{Path, PathBuf};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mnist_model::{Architecture, Layer};

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
    /// Show a network layer by layer: output shapes, parameters, arithmetic (like Keras'
    /// model.summary()); checks a --layers list without training it.
    Summary(SummaryArgs),
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The network to show (the tutorial's unless --model or --layers says otherwise).
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
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

/// The `--model` choices: mnist-model's shipped networks, each with its layer list as its help,
/// and `seed`, the tutorial network's old name.
fn model_names() -> impl clap::builder::TypedValueParser<Value = Architecture> {
    let names = mnist_model::BUILT_IN.map(|(name, list)| {
        let value = PossibleValue::new(name).help(list);
        if name == "tutorial" {
            value.alias("seed")
        } else {
            value
        }
    });
    PossibleValuesParser::new(names)
        .map(|name| Architecture::built_in(&name).expect("clap accepts only the shipped names"))
}

/// `--layers`: a layer list, written out or in a file (the same list, one or more layers per
/// line, `#` comments, or a JSON array of the layers).
pub fn parse_layers(value: &str) -> Result<Architecture, String> {
    let path = Path::new(value);
    if path.is_dir() {
        return Err(format!(
            "{value}: a folder, not a layer list or a file that holds one"
        ));
    }
    let text = if path.is_file() {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if bytes > 1 << 20 {
            return Err(format!("{value}: {bytes} bytes is no layer list"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{value}: {e}"))?;
        if text.trim_start().starts_with('[') {
            let layers: Vec<Layer> = serde_json::from_str(&text)
                .map_err(|e| format!("{value}: not a JSON array of layers: {e}"))?;
            return Architecture::from_layers(&layers).map_err(|e| format!("{value}: {e}"));
        }
        Some(text)
    } else {
        None
    };
    match text {
        Some(text) => Architecture::from_text(&text).map_err(|e| format!("{value}: {e}")),
        None if !value.contains(',') && (value.contains('/') || value.contains('.')) => Err(
            format!("{value}: no such file (give a layer list or a file that holds one)"),
        ),
        None => Architecture::from_text(value).map_err(|e| e.to_string()),
    }
}

/// The network a command uses: a shipped one by name, or a layer list.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// A shipped network [train's default: tutorial].
    #[arg(long, value_parser = model_names(), conflicts_with = "layers")]
    pub model: Option<Architecture>,
    /// Your own network as a comma-separated layer list, or a file holding one (also as a JSON
    /// array): conv<N>x<K>, bn, relu, pool2, flatten, dense<N>, ending in dense10; for example
    /// conv32x3,relu,pool2,flatten,dense128,relu,dense10 (see docs/layers.md).
    #[arg(long, value_name = "LIST|FILE", value_parser = parse_layers)]
    pub layers: Option<Architecture>,
}

impl NetworkArgs {
    /// The network named, if one was.
    pub fn architecture(&self) -> Option<Architecture> {
        self.model.clone().or_else(|| self.layers.clone())
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

/// Numeric options take negative numbers as values (`--lr -1`), so that a wrong sign gets the
/// option's own error rather than "unexpected argument".
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// What to train (the tutorial's network unless --model or --layers says otherwise).
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Passes over the 60,000 training images [default: 5; with --resume: the checkpoint's plan].
    /// With --resume this is the new total, to extend a run.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per gradient step.
    #[arg(long, default_value_t = 32, conflicts_with = "resume")]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(
        long,
        default_value_t = 1e-3,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub lr: f64,
    /// Multiply the learning rate by this after every epoch (1 keeps it constant).
    #[arg(
        long,
        default_value_t = 1.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub lr_decay: f64,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam, conflicts_with = "resume")]
    pub optimizer: OptimizerName,
    /// Momentum for --optimizer sgd.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub momentum: f64,
    /// Decoupled weight decay for --optimizer adamw.
    #[arg(
        long,
        default_value_t = 0.01,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub weight_decay: f64,
    /// Pixel normalization [default: unit (the tutorial's), mean-std for networks with batch norm].
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub normalization: Option<NormalizationName>,
    /// Randomly rotate, scale and shift training images each epoch.
    #[arg(long, conflicts_with = "resume")]
    pub augment: bool,
    /// With --augment, also redraw this fraction of the training images each epoch with their
    /// strokes thinned and drawn again with a round pen, the way pen-written photos are shown
    /// to the model (see docs/photos.md).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub pen_strokes: f32,
    /// With --augment, also bend the training images elastically each epoch: a random
    /// displacement field smoothed over 4 pixels and scaled by this many pixels (Simard et al.'s
    /// 34; 0 for none).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "PIXELS",
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub elastic: f32,
    /// Draw this fraction of the training set's 1s with a flag from the top down to the left, as
    /// much of Europe writes a 1 (MNIST's American writers did not, so a model trained on MNIST
    /// alone reads such a 1 as a 7); chosen and drawn once per run from --seed.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub flagged_ones: f32,
    /// Where to train: auto picks CUDA, then Metal, then CPU.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]|metal")]
    pub device: DeviceChoice,
    /// Seed for initialization, shuffling and augmentation; the same seed gives the same run.
    #[arg(long, default_value_t = 42, conflicts_with = "resume")]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Checkpoint to write after every epoch [default: runs/<network>.safetensors (tutorial, fast,
    /// convnet or custom), or the --resume file].
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
    /// The network of a weights file without mnist metadata (for example saved by PyTorch).
    #[command(flatten)]
    pub network: NetworkArgs,
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
    /// The network of a weights file without mnist metadata (for example saved by PyTorch); its
    /// input is then normalized the way `mnist train` would for that network.
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to run: auto picks CUDA, then Metal, then CPU.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]|metal")]
    pub device: DeviceChoice,
    /// Images per forward pass (speed and memory only; results do not depend on it).
    #[arg(long, default_value_t = mnist_train::CLASSIFY_BATCH_SIZE)]
    pub batch_size: usize,
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
            (
                t.network.architecture(),
                t.epochs,
                t.batch_size,
                t.lr,
                t.optimizer
            ),
            (None, None, 32, 1e-3, OptimizerName::Adam)
        );
        assert_eq!(crate::train::DEFAULT_NETWORK, "tutorial");
        assert_eq!(crate::train::DEFAULT_EPOCHS, 5);
        assert_eq!(t.device, DeviceChoice::Auto);
    }

    #[test]
    fn model_names_come_from_the_shipped_list_and_seed_means_tutorial() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args.iter().copied()).map_err(|e| e.to_string())?;
            let Command::Train(t) = cli.command else {
                panic!("not train")
            };
            Ok::<_, String>(t.network.architecture().map(|a| a.name().to_string()))
        };
        for (name, _) in mnist_model::BUILT_IN {
            assert_eq!(
                parse(&["mnist", "train", "--model", name])
                    .unwrap()
                    .unwrap(),
                name
            );
        }
        assert_eq!(
            parse(&["mnist", "train", "--model", "seed"])
                .unwrap()
                .unwrap(),
            "tutorial"
        );
        let custom = parse(&[
            "mnist",
            "train",
            "--layers",
            "conv8x5,relu,pool2,flatten,dense10",
        ]);
        assert_eq!(custom.unwrap().unwrap(), "custom");
        let err = parse(&["mnist", "train", "--layers", "conv8x3,dense10"]).unwrap_err();
        assert!(
            err.contains("layer 2 (dense10)") && err.contains("flatten"),
            "{err}"
        );
        let err = parse(&[
            "mnist",
            "train",
            "--model",
            "fast",
            "--layers",
            "flatten,dense10",
        ]);
        assert!(err.unwrap_err().contains("cannot be used with"));
    }

    #[test]
    fn layers_files_hold_the_text_form_or_a_json_array() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("net.txt");
        std::fs::write(&text, "# mine\nconv8x3, relu, pool2\nflatten\ndense10\n").unwrap();
        let json = dir.path().join("net.json");
        std::fs::write(
            &json,
            r#"["conv8x3", "relu", "pool2", "flatten", "dense10"]"#,
        )
        .unwrap();
        for file in [&text, &json] {
            let arch = parse_layers(file.to_str().unwrap()).unwrap();
            assert_eq!(arch.layers_text(), "conv8x3,relu,pool2,flatten,dense10");
        }
        std::fs::write(&json, r#"["conv8x3", "flatten", "dense12"]"#).unwrap();
        let err = parse_layers(json.to_str().unwrap()).unwrap_err();
        assert!(err.contains("net.json") && err.contains("dense10"), "{err}");
        let err = parse_layers("nets/missing.json").unwrap_err();
        assert!(err.contains("no such file"), "{err}");
        let err = parse_layers(dir.path().to_str().unwrap()).unwrap_err();
        assert!(err.contains("a folder"), "{err}");
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
    /// Checkpoint to use for every digit [default: the built-in weights/convnet.safetensors,
    /// 99.71% on MNIST's test set, joined by weights/pen.safetensors and pen-7.safetensors for
    /// digits written with a thin pen line, which are redrawn at MNIST's stroke width].
    #[arg(long, value_name = "FILE.safetensors")]
    pub weights: Option<PathBuf>,
    /// The network of a weights file without mnist metadata (for example saved by PyTorch).
    #[command(flatten)]
    pub network: NetworkArgs,
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
