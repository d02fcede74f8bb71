//! What `predict` and `read` share: preparing many image files in parallel, answering the good
//! ones in batches, reporting each bad one on its own line without stopping the others, and
//! writing the 28x28 images the model saw.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mnist_data::{IMAGE_SIDE, NUM_CLASSES};
use mnist_image::{FoundDigit, ImageError, MnistPixels, Segment};
use mnist_train::{ranked, Classifier};
use rayon::prelude::*;
use serde_json::json;

use crate::cli::ModelArgs;
use crate::{device, weights};

/// The models that read found digits: the one `--weights` names for every digit, or the built-in
/// ones: the convnet for MNIST-like strokes, and for thin pen lines the image reader redrew, the
/// convnet and the pen models together (a weighted mean of their probabilities,
/// [`PEN_MODEL_WEIGHT`]: they were trained on different strokes or from different seeds and miss
/// different digits, so together they miss fewer than any alone; see
/// docs/photo-reader-notes.md), each over the digit's drawings with three pen widths.
pub struct Reader {
    general: Classifier,
    /// Join `general` on [`mnist_image::Styled::redrawn`] digits; none with `--weights`.
    pen: Vec<Classifier>,
}

/// On a redrawn pen line, each pen model's probabilities count this many times the convnet's:
/// each was trained on lines redrawn so. On the four sets of `scripts/photo-accuracy.sh 0 100 0
/// SEED` (seeds 5, 11, 23, 31; 3,600 numbers) with one pen model, the weights 1, 2 and 3 read
/// 3,480, 3,487 and 3,490 numbers right, the pen model alone 3,476; 2 over 1 was also checked on
/// three more sets (9 numbers mended, 3 lost, of 5,575 pictures). With the two, 2 and 1 read
/// 3,501 and 3,500 (and 3,481 and 3,479 of seed 41's).
pub const PEN_MODEL_WEIGHT: f32 = 2.0;

impl Reader {
    /// Loads the model named by `args`, or the built-in ones.
    pub fn load(args: &ModelArgs) -> Result<Self> {
        let (device, device_name) = device::open(args.device)?;
        let loaded = args.weights.load(&device)?;
        eprintln!(
            "model: {} from {} on {device_name}",
            loaded.network.architecture,
            loaded.source.display()
        );
        let general = Classifier::new(&loaded.network, loaded.normalization)?;
        let pen = match args.weights.weights {
            Some(_) => Vec::new(),
            None => {
                let loaded = weights::load_pen(&device)?;
                let names: Vec<String> = loaded
                    .iter()
                    .map(|pen| pen.source.display().to_string())
                    .collect();
                eprintln!(
                    "models for thin pen strokes (with the first): {}",
                    names.join(", ")
                );
                loaded
                    .iter()
                    .map(|pen| Ok(Classifier::new(&pen.network, pen.normalization)?))
                    .collect::<Result<_>>()?
            }
        };
        Ok(Self { general, pen })
    }

    /// Each digit's ten probabilities, in order: one batched pass per model. A redrawn digit is
    /// read in each of its drawings ([`mnist_image::Styled::drawings`]), by every built-in model
    /// (or the one `--weights` names), and the probabilities averaged, each pen model's weighted
    /// [`PEN_MODEL_WEIGHT`] times.
    pub fn probabilities(&self, digits: &[&FoundDigit]) -> Result<Vec<[f32; NUM_CLASSES]>> {
        let all: Vec<MnistPixels> = digits.iter().flat_map(|d| d.styled.drawings()).collect();
        let general = self.general.probabilities(&all)?;
        anyhow::ensure!(
            general.len() == all.len(),
            "the model returned {} answers for {} drawings",
            general.len(),
            all.len()
        );
        // Only the pen models read these; with --weights there are none.
        let redrawn: Vec<MnistPixels> = digits
            .iter()
            .filter(|d| !self.pen.is_empty() && d.styled.redrawn())
            .flat_map(|d| d.styled.drawings())
            .collect();
        let mut pen = Vec::with_capacity(self.pen.len());
        for model in &self.pen {
            let answers = model.probabilities(&redrawn)?;
            anyhow::ensure!(
                answers.len() == redrawn.len(),
                "a pen model returned {} answers for {} drawings",
                answers.len(),
                redrawn.len()
            );
            pen.push(answers.into_iter());
        }
        let mut general = general.into_iter();
        Ok(digits
            .iter()
            .map(|digit| {
                let n = digit.styled.drawings().count();
                let mut read: Vec<([f32; NUM_CLASSES], f32)> =
                    general.by_ref().take(n).map(|p| (p, 1.0)).collect();
                if digit.styled.redrawn() {
                    for answers in &mut pen {
                        read.extend(answers.by_ref().take(n).map(|p| (p, PEN_MODEL_WEIGHT)));
                    }
                }
                let total: f32 = read.iter().map(|(_, w)| w).sum();
                std::array::from_fn(|k| read.iter().map(|(p, w)| w * p[k]).sum::<f32>() / total)
            })
            .collect())
    }
}

/// Runs `prepare` on every path in parallel (decoding is most of the work for large pictures),
/// keeping the input order.
pub fn prepare_all<T: Send>(
    paths: &[PathBuf],
    prepare: impl Fn(&Path) -> Result<T, ImageError> + Sync,
) -> Vec<Result<T, ImageError>> {
    paths.par_iter().map(|p| prepare(p)).collect()
}

/// A digit of a number with the model's ten probabilities for it.
pub type ReadDigit = (FoundDigit, [f32; NUM_CLASSES]);

/// The digits of each number (one list of segments per picture) with their probabilities: every
/// reading of every picture goes through the model in one batched pass, and a group wide enough
/// to be touching digits is cut or kept whole by which the model reads more confidently
/// ([`Segment::choose`]).
pub fn read_numbers(
    reader: &Reader,
    numbers: &[&[Segment<FoundDigit>]],
) -> Result<Vec<Vec<ReadDigit>>> {
    let inputs: Vec<&FoundDigit> = numbers
        .iter()
        .flat_map(|segments| segments.iter())
        .flat_map(|segment| segment.candidates())
        .collect();
    let mut answers = reader.probabilities(&inputs)?.into_iter();
    let mut missing = false;
    let read = numbers
        .iter()
        .map(|segments| {
            segments
                .iter()
                .flat_map(|segment| {
                    let paired = segment.map(|digit| {
                        let probabilities = answers.next().unwrap_or_else(|| {
                            missing = true;
                            [0.0; NUM_CLASSES]
                        });
                        (digit.clone(), probabilities)
                    });
                    paired.choose(|(_, p)| p.iter().copied().fold(0.0, f32::max))
                })
                .collect()
        })
        .collect();
    anyhow::ensure!(!missing, "the model returned fewer answers than digits");
    Ok(read)
}

/// One line on stderr for a file that could not be answered, and with `--json` an object on
/// stdout too, so a program reading the output sees every input accounted for.
pub fn report_failure(path: &Path, error: &ImageError, json: bool) {
    eprintln!("error: {error}");
    if json {
        println!("{}", json!({ "file": path, "error": error.to_string() }));
    }
}

/// The top `n` digits and their probabilities, most probable first.
pub fn top(probabilities: &[f32; NUM_CLASSES], n: usize) -> Vec<(usize, f32)> {
    ranked(probabilities)[..n]
        .iter()
        .map(|&d| (d, probabilities[d]))
        .collect()
}

/// Writes `pixels` as a 28x28 greyscale PNG at `dir/name` (creating `dir`).
pub fn dump(dir: &Path, name: &str, pixels: &MnistPixels) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "{}: cannot create --dump-preprocessed directory",
            dir.display()
        )
    })?;
    let path = dir.join(name);
    let side = IMAGE_SIDE as u32;
    image::GrayImage::from_raw(side, side, pixels.to_vec())
        .context("a 28x28 buffer")?
        .save(&path)
        .with_context(|| format!("{}: cannot write the preprocessed image", path.display()))
}

/// The file name of `path` without its extension, for naming dumped images.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

/// The answer for one digit of a number, as `read` prints it and `serve` returns it.
pub struct DigitAnswer {
    /// The three most probable digits, most probable first.
    pub top3: Vec<(usize, f32)>,
    /// The best guess is below the confidence threshold.
    pub uncertain: bool,
}

impl DigitAnswer {
    pub fn new(probabilities: &[f32; NUM_CLASSES], min_confidence: f32) -> Self {
        let top3 = top(probabilities, 3);
        let uncertain = top3[0].1 < min_confidence;
        Self { top3, uncertain }
    }

    pub fn digit(&self) -> usize {
        self.top3[0].0
    }

    pub fn probability(&self) -> f32 {
        self.top3[0].1
    }

    /// `digit`, `probability`, `uncertain`, `box`, `redrawn` and `top3`: one element of
    /// `digits` in `read --json`.
    pub fn to_json(&self, found: &FoundDigit) -> serde_json::Value {
        let top3: Vec<_> = self
            .top3
            .iter()
            .map(|&(d, p)| json!({ "digit": d, "probability": p }))
            .collect();
        json!({
            "digit": self.digit(),
            "probability": self.probability(),
            "uncertain": self.uncertain,
            "box": found.bbox,
            "redrawn": found.styled.redrawn(),
            "top3": top3,
        })
    }
}

/// `7 99.9%` for text output.
pub fn percent(p: f32) -> String {
    format!("{:.1}%", p * 100.0)
}
