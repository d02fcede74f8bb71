//! Training reports as pictures: loss and accuracy per epoch for the training and test sets, a
//! confusion-matrix heatmap, and a grid of the test images a model gets most confidently wrong,
//! each as PNG and SVG, tied together by an `index.html` with relative links.
//!
//! The inputs are plain numbers: the per-epoch lines `mnist train --metrics` writes (see
//! [`read_metrics`]), a confusion matrix and the chosen mistakes. Nothing here runs a model; the
//! binary evaluates and hands the results over. Text is drawn with an embedded DejaVu Sans
//! (Bitstream Vera license, `fonts/DejaVuSans-LICENSE.txt`), so a PNG looks the same on every
//! machine and needs no system fonts.

mod figures;

use std::path::{Path, PathBuf};

use mnist_data::{IMAGE_PIXELS, NUM_CLASSES};
use serde::Deserialize;

pub use figures::{Figure, FIGURES};

/// How many mistakes the grid shows (fewer when the model makes fewer).
pub const MISTAKES_SHOWN: usize = 24;

/// Why a report could not be made; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}; expected one JSON object per line as `mnist train --metrics` writes")]
    Metrics {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: holds no epochs; pass the file `mnist train --metrics` wrote")]
    NoEpochs { path: PathBuf },
    #[error("{path}: cannot draw the figure: {reason}")]
    Draw { path: PathBuf, reason: String },
}

/// One epoch's figures, as in a line of `mnist train --metrics FILE.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
}

/// Reads a metrics file: one JSON object per line (other keys are ignored). A later line for
/// the same epoch replaces an earlier one, so a file appended to by a run and its `--resume`, or
/// by a repeated run, gives one point per epoch. Sorted by epoch.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut by_epoch = std::collections::BTreeMap::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let metrics: EpochMetrics =
            serde_json::from_str(line).map_err(|e| ReportError::Metrics {
                path: path.to_path_buf(),
                line: k + 1,
                reason: e.to_string(),
            })?;
        by_epoch.insert(metrics.epoch, metrics);
    }
    if by_epoch.is_empty() {
        return Err(ReportError::NoEpochs {
            path: path.to_path_buf(),
        });
    }
    Ok(by_epoch.into_values().collect())
}

/// A test image the model got wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    /// Position in the test set.
    pub index: usize,
    pub pixels: [u8; IMAGE_PIXELS],
    pub label: usize,
    pub predicted: usize,
    /// The probability the model gave its (wrong) answer.
    pub probability: f32,
}

/// Indices of the wrongly classified images, most confident first (ties: lower index first),
/// at most `n` of them. `probabilities[i]` answers image `i`, whose true digit is `labels[i]`.
pub fn most_confidently_wrong(
    labels: &[u8],
    probabilities: &[[f32; NUM_CLASSES]],
    n: usize,
) -> Vec<usize> {
    let mut wrong: Vec<(usize, f32)> = labels
        .iter()
        .zip(probabilities)
        .enumerate()
        .filter_map(|(i, (&label, p))| {
            let (predicted, confidence) = argmax(p);
            (predicted != label as usize).then_some((i, confidence))
        })
        .collect();
    wrong.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    wrong.into_iter().take(n).map(|(i, _)| i).collect()
}

/// The most probable class and its probability (the first on a tie).
pub fn argmax(p: &[f32; NUM_CLASSES]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (d, v)| {
            if v > best.1 {
                (d, v)
            } else {
                best
            }
        })
}

/// The [`Mistake`]s to show for a test set: `images` holds `labels.len()` MNIST images.
pub fn mistakes(
    images: &[u8],
    labels: &[u8],
    probabilities: &[[f32; NUM_CLASSES]],
    n: usize,
) -> Vec<Mistake> {
    most_confidently_wrong(labels, probabilities, n)
        .into_iter()
        .map(|i| {
            let (predicted, probability) = argmax(&probabilities[i]);
            let mut pixels = [0u8; IMAGE_PIXELS];
            pixels.copy_from_slice(&images[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]);
            Mistake {
                index: i,
                pixels,
                label: labels[i] as usize,
                predicted,
                probability,
            }
        })
        .collect()
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was trained or evaluated, e.g. `tutorial from runs/tutorial.safetensors`.
    pub title: String,
    pub history: Vec<EpochMetrics>,
    /// `confusion[true][predicted]` over the test set.
    pub confusion: [[u64; NUM_CLASSES]; NUM_CLASSES],
    pub mistakes: Vec<Mistake>,
}

impl Report {
    /// Test images counted in the confusion matrix, and how many were right.
    pub fn test_counts(&self) -> (u64, u64) {
        let n = self.confusion.iter().flatten().sum();
        let right = (0..NUM_CLASSES).map(|c| self.confusion[c][c]).sum();
        (n, right)
    }
}

/// Writes every figure as `<name>.png` and `<name>.svg` into `dir` (created if needed), then
/// `index.html`. Returns the files written.
pub fn write(dir: &Path, report: &Report) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for figure in FIGURES {
        written.extend(figures::render(dir, figure, report)?);
    }
    let index = dir.join("index.html");
    std::fs::write(&index, index_html(report)).map_err(|source| ReportError::Write {
        path: index.clone(),
        source,
    })?;
    written.push(index);
    Ok(written)
}

fn index_html(report: &Report) -> String {
    let (n, right) = report.test_counts();
    let accuracy = if n == 0 { 0.0 } else { right as f64 / n as f64 };
    let mut rows = String::new();
    for m in &report.history {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{:.2}%</td><td>{:.4}</td><td>{:.2}%</td></tr>\n",
            m.epoch,
            m.train_loss,
            m.train_accuracy * 100.0,
            m.test_loss,
            m.test_accuracy * 100.0
        ));
    }
    let mut body = String::new();
    for figure in FIGURES {
        body.push_str(&format!(
            "<figure>\n<a href=\"{name}.svg\"><img src=\"{name}.png\" width=\"{w}\" height=\"{h}\" alt=\"{alt}\"></a>\n<figcaption>{caption} (<a href=\"{name}.svg\">SVG</a>)</figcaption>\n</figure>\n",
            name = figure.name,
            w = figure.width,
            h = figure.height,
            alt = escape(figure.caption),
            caption = escape(figure.caption),
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Training report: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
figure {{ margin: 2em 0; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
</style>
</head>
<body>
<h1>Training report</h1>
<p>{title}: {right} of {n} test images right ({accuracy:.2}%).</p>
<table>
<tr><th>epoch</th><th>train loss</th><th>train accuracy</th><th>test loss</th><th>test accuracy</th></tr>
{rows}</table>
{body}</body>
</html>
"#,
        title = escape(&report.title),
        accuracy = accuracy * 100.0,
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(d: usize, p: f32) -> [f32; NUM_CLASSES] {
        let mut out = [(1.0 - p) / 9.0; NUM_CLASSES];
        out[d] = p;
        out
    }

    #[test]
    fn most_confidently_wrong_picks_wrong_answers_by_confidence() {
        let labels = [3, 1, 4, 1, 5, 9];
        let probabilities = [
            one_hot(3, 0.99), // right
            one_hot(7, 0.60), // wrong, 60%
            one_hot(9, 0.95), // wrong, 95%
            one_hot(1, 0.99), // right
            one_hot(6, 0.95), // wrong, 95%: a tie, so after index 2
            one_hot(4, 0.70), // wrong, 70%
        ];
        assert_eq!(
            most_confidently_wrong(&labels, &probabilities, 10),
            vec![2, 4, 5, 1]
        );
        assert_eq!(
            most_confidently_wrong(&labels, &probabilities, 2),
            vec![2, 4]
        );
        assert!(most_confidently_wrong(&labels[..1], &probabilities[..1], 5).is_empty());
    }

    #[test]
    fn mistakes_carry_their_pixels_and_answers() {
        let mut images = vec![0u8; 2 * IMAGE_PIXELS];
        images[IMAGE_PIXELS + 5] = 200;
        let found = mistakes(&images, &[0, 2], &[one_hot(0, 0.9), one_hot(8, 0.8)], 5);
        assert_eq!(found.len(), 1);
        let m = &found[0];
        assert_eq!((m.index, m.label, m.predicted), (1, 2, 8));
        assert!((m.probability - 0.8).abs() < 1e-6);
        assert_eq!(m.pixels[5], 200);
    }

    #[test]
    fn metrics_keep_the_last_line_of_each_epoch_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let line = |epoch: usize, acc: f64| {
            format!(
                r#"{{"epoch":{epoch},"epochs":3,"train_loss":0.5,"train_accuracy":0.9,"test_loss":0.4,"test_accuracy":{acc},"lr":0.001,"seconds":1.0}}"#
            )
        };
        let text = [line(2, 0.1), line(1, 0.2), String::new(), line(2, 0.3)].join("\n");
        std::fs::write(&path, text).unwrap();
        let history = read_metrics(&path).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!((history[0].epoch, history[1].epoch), (1, 2));
        assert_eq!(history[1].test_accuracy, 0.3);

        std::fs::write(&path, "{\"epoch\": 1}\n").unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("train_loss"),
            "{err}"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_metrics(&path),
            Err(ReportError::NoEpochs { .. })
        ));
    }

    #[test]
    fn test_counts_read_the_diagonal() {
        let mut confusion = [[0u64; NUM_CLASSES]; NUM_CLASSES];
        confusion[1][1] = 5;
        confusion[1][7] = 2;
        confusion[3][3] = 3;
        let report = Report {
            title: "t".into(),
            history: vec![],
            confusion,
            mistakes: vec![],
        };
        assert_eq!(report.test_counts(), (10, 8));
    }

    #[test]
    fn write_draws_every_figure_at_its_size_and_links_them() {
        let history: Vec<EpochMetrics> = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 0.5 / e as f64,
                train_accuracy: 0.9 + 0.02 * e as f64,
                test_loss: 0.4 / e as f64,
                test_accuracy: 0.91 + 0.015 * e as f64,
            })
            .collect();
        let mut confusion = [[0u64; NUM_CLASSES]; NUM_CLASSES];
        for (t, row) in confusion.iter_mut().enumerate() {
            row[t] = 1000 + t as u64;
            row[(t + 3) % NUM_CLASSES] = t as u64;
        }
        let mut pixels = [0u8; IMAGE_PIXELS];
        for (i, p) in pixels.iter_mut().enumerate() {
            *p = if (i / 28 + i % 28) % 7 == 0 { 255 } else { 0 };
        }
        let mistake = |index| Mistake {
            index,
            pixels,
            label: 4,
            predicted: 9,
            probability: 0.97,
        };
        let report = Report {
            title: "seed <test>".into(),
            history,
            confusion,
            mistakes: (0..30).map(mistake).collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), &report).unwrap();
        assert_eq!(written.len(), 2 * FIGURES.len() + 1);
        let index = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(index.contains("seed &lt;test&gt;"));
        for figure in FIGURES {
            let png = dir.path().join(format!("{}.png", figure.name));
            assert_eq!(
                image::image_dimensions(&png).unwrap(),
                (figure.width, figure.height),
                "{}",
                figure.name
            );
            let svg =
                std::fs::read_to_string(dir.path().join(format!("{}.svg", figure.name))).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            assert!(index.contains(&format!("src=\"{}.png\"", figure.name)));
            assert!(index.contains(&format!("href=\"{}.svg\"", figure.name)));
        }
        if let Some(keep) = std::env::var_os("MNIST_REPORT_TEST_OUT") {
            for path in written {
                std::fs::copy(&path, Path::new(&keep).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}
