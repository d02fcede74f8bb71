//! Drawing each figure once, for any plotters backend: the PNG is drawn into an RGB buffer and
//! encoded by `image`, the SVG into a string.

use std::path::{Path, PathBuf};
use std::sync::Once;

use mnist_data::{IMAGE_SIDE, NUM_CLASSES};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{EpochMetrics, Report, ReportError, MISTAKES_SHOWN};

/// One figure of a report: its file name (without extension), size in pixels, and caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub caption: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loss,
    Accuracy,
    Confusion,
    Mistakes,
}

/// Columns of the mistakes grid; the grid always has room for [`MISTAKES_SHOWN`] images, so the
/// figure's size does not depend on how good the model is.
const GRID_COLUMNS: usize = 8;
const CELL_WIDTH: u32 = 120;
const CELL_HEIGHT: u32 = 150;
/// Each MNIST pixel drawn as a square this many pixels wide.
const PIXEL: u32 = 4;
const GRID_TOP: u32 = 50;

/// Every figure, in the order `index.html` shows them.
pub const FIGURES: [Figure; 4] = [
    Figure {
        name: "loss",
        width: 800,
        height: 480,
        caption: "Cross-entropy loss per epoch on the training and test sets",
        kind: Kind::Loss,
    },
    Figure {
        name: "accuracy",
        width: 800,
        height: 480,
        caption: "Accuracy per epoch on the training and test sets",
        kind: Kind::Accuracy,
    },
    Figure {
        name: "confusion",
        width: 720,
        height: 720,
        caption: "Confusion matrix on the test set (rows: true digit, columns: predicted)",
        kind: Kind::Confusion,
    },
    Figure {
        name: "mistakes",
        width: GRID_COLUMNS as u32 * CELL_WIDTH,
        height: GRID_TOP + MISTAKES_SHOWN.div_ceil(GRID_COLUMNS) as u32 * CELL_HEIGHT,
        caption: "The test images the model gets most confidently wrong",
        kind: Kind::Mistakes,
    },
];

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF compiled into the binary (a unit test draws with it).
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// Writes `figure` as PNG and SVG into `dir`.
pub(crate) fn render(
    dir: &Path,
    figure: Figure,
    report: &Report,
) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    let (w, h) = (figure.width, figure.height);
    let png = dir.join(format!("{}.png", figure.name));
    let draw_error = |path: &Path, reason: String| ReportError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, figure.kind, report).map_err(|e| draw_error(&png, e))?;
        root.present()
            .map_err(|e| draw_error(&png, e.to_string()))?;
    }
    let image = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| draw_error(&png, "the pixel buffer has the wrong size".into()))?;
    image
        .save_with_format(&png, image::ImageFormat::Png)
        .map_err(|e| ReportError::Write {
            path: png.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;

    let svg = dir.join(format!("{}.svg", figure.name));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
        draw(&root, figure.kind, report).map_err(|e| draw_error(&svg, e))?;
        root.present()
            .map_err(|e| draw_error(&svg, e.to_string()))?;
    }
    std::fs::write(&svg, text).map_err(|source| ReportError::Write {
        path: svg.clone(),
        source,
    })?;
    Ok(vec![png, svg])
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn draw<DB: DrawingBackend>(root: &Area<DB>, kind: Kind, report: &Report) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    match kind {
        Kind::Loss => curves(
            root,
            "Loss per epoch",
            "cross-entropy",
            &report.history,
            |m| (m.train_loss, m.test_loss),
            false,
        ),
        Kind::Accuracy => curves(
            root,
            "Accuracy per epoch",
            "accuracy",
            &report.history,
            |m| (m.train_accuracy, m.test_accuracy),
            true,
        ),
        Kind::Confusion => confusion(root, &report.confusion),
        Kind::Mistakes => mistakes(root, report),
    }
    .map_err(|e| e.to_string())
}

/// Text of `size` pixels centred on its position.
fn centred(size: u32, colour: &RGBColor) -> TextStyle<'_> {
    TextStyle::from((FONT, size).into_font())
        .color(colour)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
const TEST_COLOUR: RGBColor = RGBColor(214, 39, 40);

/// Train and test values per epoch, as lines with a dot at each epoch (one epoch is a dot).
fn curves<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    y_name: &str,
    history: &[EpochMetrics],
    values: impl Fn(&EpochMetrics) -> (f64, f64),
    percent: bool,
) -> DrawResult<DB> {
    let last = history.iter().map(|m| m.epoch).max().unwrap_or(1) as i32;
    let all: Vec<f64> = history
        .iter()
        .flat_map(|m| {
            let (a, b) = values(m);
            [a, b]
        })
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if all.is_empty() {
        (0.0, 1.0)
    } else if percent {
        // Accuracies crowd near 100%: show from a little below the lowest, up to 100%.
        let span = (hi - lo).max(0.002);
        ((lo - span * 0.15).max(0.0), (hi + span * 0.15).min(1.0))
    } else {
        (0.0, hi * 1.1 + 1e-6)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0..last + 1, lo..hi)?;
    let epoch_label = |x: &i32| {
        if (1..=last).contains(x) {
            x.to_string()
        } else {
            String::new()
        }
    };
    let percent_label = |y: &f64| format!("{:.1}%", y * 100.0);
    let plain_label = |y: &f64| format!("{y:.3}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("epoch")
        .y_desc(y_name)
        .x_labels((last as usize + 2).min(16))
        .x_label_formatter(&epoch_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16));
    if percent {
        mesh.y_label_formatter(&percent_label);
    } else {
        mesh.y_label_formatter(&plain_label);
    }
    mesh.draw()?;
    for (name, colour, pick) in [("train", TRAIN_COLOUR, 0), ("test", TEST_COLOUR, 1)] {
        let points: Vec<(i32, f64)> = history
            .iter()
            .map(|m| {
                let (a, b) = values(m);
                (m.epoch as i32, if pick == 0 { a } else { b })
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(if percent {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        })
        .draw()?;
    Ok(())
}

/// A 10x10 heatmap with the count in every cell: the diagonal in blue by the row's fraction
/// right; errors in red by the square root of their share of the largest error, so a handful of
/// mistakes among thousands is still visible.
fn confusion<DB: DrawingBackend>(
    root: &Area<DB>,
    matrix: &[[u64; NUM_CLASSES]; NUM_CLASSES],
) -> DrawResult<DB> {
    let (left, top, cell) = (90i32, 90i32, 60i32);
    let grid = cell * NUM_CLASSES as i32;
    root.draw(&Text::new(
        "Confusion matrix (test set)",
        (left + grid / 2, 22),
        centred(22, &BLACK),
    ))?;
    root.draw(&Text::new(
        "predicted digit",
        (left + grid / 2, top - 44),
        centred(16, &BLACK),
    ))?;
    root.draw(&Text::new(
        "true digit",
        (28, top + grid / 2),
        centred(16, &BLACK).transform(FontTransform::Rotate270),
    ))?;
    let max_error = (0..NUM_CLASSES)
        .flat_map(|t| {
            (0..NUM_CLASSES)
                .filter(move |&p| p != t)
                .map(move |p| (t, p))
        })
        .map(|(t, p)| matrix[t][p])
        .max()
        .unwrap_or(0)
        .max(1);
    for d in 0..NUM_CLASSES as i32 {
        let label = d.to_string();
        root.draw(&Text::new(
            label.clone(),
            (left + d * cell + cell / 2, top - 16),
            centred(16, &BLACK),
        ))?;
        root.draw(&Text::new(
            label,
            (left - 18, top + d * cell + cell / 2),
            centred(16, &BLACK),
        ))?;
    }
    for (t, row) in matrix.iter().enumerate() {
        let row_total = row.iter().sum::<u64>().max(1);
        for (p, &count) in row.iter().enumerate() {
            let strength = if t == p {
                count as f64 / row_total as f64
            } else {
                (count as f64 / max_error as f64).sqrt()
            };
            let ink = if t == p {
                (31.0, 119.0, 180.0)
            } else {
                (214.0, 39.0, 40.0)
            };
            let mix = |c: f64| (255.0 + (c - 255.0) * strength).round() as u8;
            let fill = if count == 0 {
                WHITE
            } else {
                RGBColor(mix(ink.0), mix(ink.1), mix(ink.2))
            };
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                fill.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(200, 200, 200).stroke_width(1),
            ))?;
            let colour = match (count, strength > 0.55) {
                (0, _) => RGBColor(190, 190, 190),
                (_, true) => WHITE,
                _ => BLACK,
            };
            let size = if count >= 1000 { 15 } else { 17 };
            root.draw(&Text::new(
                count.to_string(),
                (x + cell / 2, y + cell / 2),
                centred(size, &colour),
            ))?;
        }
    }
    Ok(())
}

/// The most confidently wrong test images, white on black as in MNIST, each labelled with its
/// true digit, the answer and its probability.
fn mistakes<DB: DrawingBackend>(root: &Area<DB>, report: &Report) -> DrawResult<DB> {
    let (width, _) = root.dim_in_pixel();
    let shown = report.mistakes.len().min(MISTAKES_SHOWN);
    let title = match shown {
        0 => "No test image is misclassified".to_string(),
        1 => "The one test image the model gets wrong".to_string(),
        n => format!("The {n} test images the model gets most confidently wrong"),
    };
    root.draw(&Text::new(
        title,
        (width as i32 / 2, 24),
        centred(20, &BLACK),
    ))?;
    let side = (IMAGE_SIDE as u32 * PIXEL) as i32;
    for (k, m) in report.mistakes.iter().take(MISTAKES_SHOWN).enumerate() {
        let (col, row) = ((k % GRID_COLUMNS) as i32, (k / GRID_COLUMNS) as i32);
        let x0 = col * CELL_WIDTH as i32 + (CELL_WIDTH as i32 - side) / 2;
        let y0 = GRID_TOP as i32 + row * CELL_HEIGHT as i32 + 4;
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            BLACK.filled(),
        ))?;
        // Only the ink: MNIST images are four fifths background, and every square is an
        // element in the SVG.
        for (i, &v) in m.pixels.iter().enumerate().filter(|(_, &v)| v > 0) {
            let (px, py) = ((i % IMAGE_SIDE) as i32, (i / IMAGE_SIDE) as i32);
            let (x, y) = (x0 + px * PIXEL as i32, y0 + py * PIXEL as i32);
            root.draw(&Rectangle::new(
                [(x, y), (x + PIXEL as i32, y + PIXEL as i32)],
                RGBColor(v, v, v).filled(),
            ))?;
        }
        let label = format!(
            "{} read as {}, {:.0}%",
            m.label,
            m.predicted,
            m.probability * 100.0
        );
        root.draw(&Text::new(
            label,
            (
                col * CELL_WIDTH as i32 + CELL_WIDTH as i32 / 2,
                y0 + side + 16,
            ),
            centred(13, &BLACK),
        ))?;
    }
    Ok(())
}
