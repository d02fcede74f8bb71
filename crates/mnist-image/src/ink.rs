//! From a decoded picture to an ink map: how strongly each pixel is pen rather than paper.
//!
//! People hand us dark ink on light paper (a scan, a photo, a drawing app), light ink on dark
//! (MNIST itself, a blackboard, a dark-mode canvas), or strokes on a transparent background. The
//! paper is whatever most of the picture is; transparent pixels are always paper. Contrast is
//! measured against the paper, the noise floor is estimated from how much the paper itself
//! varies, and the result is scaled so that the typical stroke pixel is 1 whatever the pen's
//! colour or the lighting.

use image::DynamicImage;
use rayon::prelude::*;

/// Ink strength per pixel, row-major, 0 (paper) to 1 (full stroke).
#[derive(Debug, Clone, PartialEq)]
pub struct InkMap {
    pub width: usize,
    pub height: usize,
    pub ink: Vec<f32>,
    /// Ink up to this strength may be the paper's noise just crossing the floor (within
    /// `FAINT_SIGMAS`, a private constant of this module, noise deviations of it); 0 where the
    /// picture has no noise.
    pub faint: f32,
    /// The strength of each pixel before `ink` caps it at 1, on the same scale: on ruled or
    /// squared paper the printed lines are most of the ink and set the scale, so a pen is 1.5-2
    /// times as strong as they are, which tells a stroke running along a line from the line
    /// ([`crate::lines`]). Empty when nothing is above 1 (then `ink` is the strength).
    pub strength: Vec<f32>,
    /// The pixels of the page's printed lines that [`crate::lines::remove_page_lines`] removed
    /// (each line's band and its fringe), row-major: what ink is left there may be the line's
    /// own. Empty when it removed none.
    pub on_lines: Vec<bool>,
    /// The pixels that show no part of the picture (past its edges, in the view from above of
    /// a page photographed at a slant: [`crate::perspective`]), row-major: a page's line there
    /// is not missing but out of view. Empty when every pixel shows the picture.
    pub outside: Vec<bool>,
}

/// Strokes whose typical level stands this far (on a 0-1 luminance scale) above the noise floor
/// ([`NOISE_SIGMAS`] deviations above the paper, or 12% of the strokes' level) are ink on
/// any page; fainter ones are ink only where they stand out from the paper's noise
/// ([`FAINT_CONTRAST`]): a blank page with lighting gradients, JPEG noise or a faint texture has
/// no digit on it.
const MIN_CONTRAST: f32 = 0.12;
/// Strokes standing from this far above the floor up to [`MIN_CONTRAST`] are ink where they
/// also stand [`FAINT_STROKE_SIGMAS`] noise deviations above it. (Asking this much above the
/// paper instead of the floor reads one out-of-focus pencil number more, and two more of 1,125
/// blank pages: docs/photo-reader-notes.md.) A photo out of focus spreads a thin
/// line's ink over a band several pixels wide, so its strokes are this faint, yet they mostly
/// stand 6 to 20 deviations above the sensor's noise, while what a blank page leaves after its
/// shadows and texture are taken out (blurred or not) mostly stays within 3 (one blank page of
/// 500, `scripts/photo-accuracy.sh 0 0 100 5`, reached between 5 and 6).
const FAINT_CONTRAST: f32 = 0.05;
/// On planes averaged over each pixel's neighbours ([`InkMap::from_smoothed_planes`]), strokes
/// this far above the floor are enough when they stand [`FAINT_STROKE_SIGMAS`] deviations above
/// it. Averaging divides the paper's noise by up to 3 and takes a little of a blurred stroke's
/// contrast too: the faint pen lines of out-of-focus photos that every other look refuses can
/// stand 18 deviations above their floor there but under [`FAINT_CONTRAST`] (seed 11's `338`,
/// 0.049). 0.04 reads the five such numbers of docs/photos.md's sets that this look can; 0.03
/// reads no more of them (docs/photo-reader-notes.md).
const SMOOTHED_FAINT_CONTRAST: f32 = 0.04;
/// See [`FAINT_CONTRAST`].
const FAINT_STROKE_SIGMAS: f32 = 6.0;
/// Pixels this many noise standard deviations from the paper can still be noise.
const NOISE_SIGMAS: f32 = 3.5;

/// A picture as floating-point planes (0-1): one grey plane or red, green and blue, and the
/// alpha when it has one. [`Planes::from_image`] also shrinks a large picture, in the same pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub width: usize,
    pub height: usize,
    pub colour: Vec<Vec<f32>>,
    pub alpha: Option<Vec<f32>>,
}

impl Planes {
    /// `image` averaged over blocks of `factor` x `factor` pixels (1 keeps every pixel; blocks
    /// cut by the right and bottom edges average what they hold). A box average is the area
    /// filter: a thin pen line keeps its mass, and one pass over the samples, straight from the
    /// decoded buffer, costs less than any resampling filter on a 12-megapixel photo.
    pub fn from_image(image: &DynamicImage, factor: usize) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let k = factor.max(1);
        match image {
            DynamicImage::ImageLuma8(b) => shrink::<_, 1>(b.as_raw(), w, h, false, k, 255.0),
            DynamicImage::ImageLumaA8(b) => shrink::<_, 2>(b.as_raw(), w, h, true, k, 255.0),
            DynamicImage::ImageRgb8(b) => shrink::<_, 3>(b.as_raw(), w, h, false, k, 255.0),
            DynamicImage::ImageRgba8(b) => shrink::<_, 4>(b.as_raw(), w, h, true, k, 255.0),
            DynamicImage::ImageLuma16(b) => shrink::<_, 1>(b.as_raw(), w, h, false, k, 65535.0),
            DynamicImage::ImageLumaA16(b) => shrink::<_, 2>(b.as_raw(), w, h, true, k, 65535.0),
            DynamicImage::ImageRgb16(b) => shrink::<_, 3>(b.as_raw(), w, h, false, k, 65535.0),
            DynamicImage::ImageRgba16(b) => shrink::<_, 4>(b.as_raw(), w, h, true, k, 65535.0),
            DynamicImage::ImageRgb32F(b) => shrink::<_, 3>(b.as_raw(), w, h, false, k, 1.0),
            DynamicImage::ImageRgba32F(b) => shrink::<_, 4>(b.as_raw(), w, h, true, k, 1.0),
            other => shrink::<_, 4>(other.to_rgba32f().as_raw(), w, h, true, k, 1.0),
        }
    }

    /// Each plane averaged over blocks of `k` x `k` pixels (blocks cut by the right and bottom
    /// edges average what they hold), without the alpha plane: what [`Planes::from_image`] would
    /// make at a `k` times larger factor, from planes already made.
    pub fn shrunk(&self, k: usize) -> Self {
        let (w, h) = (self.width.div_ceil(k), self.height.div_ceil(k));
        let shrink = |plane: &Vec<f32>| {
            let mut sum = vec![0.0f32; w * h];
            let mut count = vec![0u32; w * h];
            for (y, row) in plane.chunks_exact(self.width).enumerate() {
                let out = (y / k) * w;
                for (x, block) in row.chunks(k).enumerate() {
                    sum[out + x] += block.iter().sum::<f32>();
                    count[out + x] += block.len() as u32;
                }
            }
            sum.iter().zip(&count).map(|(s, &n)| s / n as f32).collect()
        };
        Planes {
            width: w,
            height: h,
            colour: self.colour.iter().map(shrink).collect(),
            alpha: None,
        }
    }

    /// Each plane averaged over the `(2 * radius + 1)`-pixel square around each pixel (what of
    /// it is inside the picture), the same size as before.
    pub fn smoothed(&self, radius: usize) -> Self {
        let (w, h) = (self.width, self.height);
        let smooth = |plane: &Vec<f32>| {
            let mut across = vec![0.0f32; w * h];
            for y in 0..h {
                let row = &plane[y * w..(y + 1) * w];
                for x in 0..w {
                    let span = &row[x.saturating_sub(radius)..(x + radius + 1).min(w)];
                    across[y * w + x] = span.iter().sum::<f32>() / span.len() as f32;
                }
            }
            let mut out = vec![0.0f32; w * h];
            for y in 0..h {
                let rows = y.saturating_sub(radius)..(y + radius + 1).min(h);
                let n = rows.len() as f32;
                for r in rows {
                    for (o, &v) in out[y * w..(y + 1) * w]
                        .iter_mut()
                        .zip(&across[r * w..(r + 1) * w])
                    {
                        *o += v;
                    }
                }
                for o in &mut out[y * w..(y + 1) * w] {
                    *o /= n;
                }
            }
            out
        };
        Planes {
            width: w,
            height: h,
            colour: self.colour.iter().map(smooth).collect(),
            alpha: self.alpha.as_ref().map(smooth),
        }
    }
}

/// Samples that can be summed exactly: 8-bit in `u32` (a block would need 16 million pixels
/// to overflow it, a picture 27 billion), 16-bit in `u64`, floats in `f64`.
trait Sample: Copy + Sync {
    type Sum: Copy + Default + std::ops::AddAssign + Send;
    fn widen(self) -> Self::Sum;
    fn total(sum: Self::Sum) -> f64;
}
impl Sample for u8 {
    type Sum = u32;
    fn widen(self) -> u32 {
        self.into()
    }
    fn total(sum: u32) -> f64 {
        sum.into()
    }
}
impl Sample for u16 {
    type Sum = u64;
    fn widen(self) -> u64 {
        self.into()
    }
    fn total(sum: u64) -> f64 {
        sum as f64
    }
}
impl Sample for f32 {
    type Sum = f64;
    fn widen(self) -> f64 {
        self.into()
    }
    fn total(sum: f64) -> f64 {
        sum
    }
}

/// Interleaved samples, `N` a pixel (the colour channels, then the alpha if `has_alpha`),
/// averaged over `k` x `k` blocks into planes, scaled by `1 / max`.
fn shrink<T: Sample, const N: usize>(
    raw: &[T],
    w: usize,
    h: usize,
    has_alpha: bool,
    k: usize,
    max: f32,
) -> Planes {
    let (sw, sh) = (w.div_ceil(k), h.div_ceil(k));
    let mut planes = vec![vec![0.0f32; sw * sh]; N];
    // Row `sy` of every plane, for the bands to be shrunk in parallel.
    let mut rows: Vec<Vec<&mut [f32]>> = (0..sh).map(|_| Vec::with_capacity(N)).collect();
    for plane in planes.iter_mut() {
        for (set, row) in rows.iter_mut().zip(plane.chunks_mut(sw.max(1))) {
            set.push(row);
        }
    }
    // Each band of k rows is summed column by column first (one long loop the compiler turns
    // into vector adds), then across each block's k columns.
    rows.into_par_iter().enumerate().for_each_init(
        || vec![T::Sum::default(); w * N],
        |columns, (sy, mut out)| {
            columns.fill(T::Sum::default());
            let rows = sy * k..((sy + 1) * k).min(h);
            let block_rows = rows.len();
            for y in rows {
                for (sum, v) in columns.iter_mut().zip(&raw[y * w * N..(y + 1) * w * N]) {
                    *sum += v.widen();
                }
            }
            for (sx, block) in columns.chunks(k * N).enumerate() {
                let mut total = [T::Sum::default(); N];
                for px in block.chunks_exact(N) {
                    for (t, &v) in total.iter_mut().zip(px) {
                        *t += v;
                    }
                }
                let scale = 1.0 / (max as f64 * (block_rows * block.len() / N) as f64);
                for (row, &t) in out.iter_mut().zip(&total) {
                    row[sx] = (T::total(t) * scale) as f32;
                }
            }
        },
    );
    let alpha = has_alpha.then(|| planes.pop().unwrap_or_default());
    Planes {
        width: sw,
        height: sh,
        colour: planes,
        alpha,
    }
}

impl InkMap {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            ink: vec![0.0; width * height],
            faint: 0.0,
            strength: Vec::new(),
            on_lines: Vec::new(),
            outside: Vec::new(),
        }
    }

    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.ink[y * self.width + x]
    }

    /// The strength at `(x, y)` before capping: [`InkMap::strength`], or the ink.
    pub fn strength_at(&self, x: usize, y: usize) -> f32 {
        let i = y * self.width + x;
        self.strength.get(i).copied().unwrap_or(self.ink[i])
    }

    /// True when no pixel carries ink.
    pub fn is_blank(&self) -> bool {
        self.ink.iter().all(|&v| v == 0.0)
    }

    /// Detects paper and ink in `image` (any colour type, any bit depth), pixel for pixel.
    pub fn from_image(image: &DynamicImage) -> Self {
        Self::from_planes(&Planes::from_image(image, 1))
    }

    /// Detects paper and ink in a picture's planes (borrowed: the page's lines are told from
    /// strokes by their colour afterwards, [`crate::lines::remove_page_lines`]).
    pub fn from_planes(planes: &Planes) -> Self {
        Self::found_in(planes).0
    }

    /// [`InkMap::from_planes`], and how it told ink from paper there (`None` where it had no
    /// choice to make: strokes on a transparent canvas, an empty picture), for a second look
    /// at the same planes ([`InkMap::from_planes_over_narrow_window`]).
    pub fn found_in(planes: &Planes) -> (Self, Option<Contrast>) {
        Self::from_planes_over(planes, false, None, FAINT_CONTRAST)
    }

    /// [`InkMap::from_planes`] for planes averaged over each pixel's neighbours
    /// ([`Planes::smoothed`]): a last look at a faint picture out of focus, where no other look
    /// found ink. The noise is averaged down there, so faint strokes need not stand as far above
    /// the floor ([`SMOOTHED_FAINT_CONTRAST`]).
    pub fn from_smoothed_planes(planes: &Planes) -> Self {
        Self::from_planes_over(planes, false, None, SMOOTHED_FAINT_CONTRAST).0
    }

    /// [`InkMap::from_planes`] with the paper estimated over the narrowest window a thin pen
    /// line gets ([`MIN_WINDOW`] of the longer side), whatever the wider windows find: a look
    /// at a page where they found no ink. A shadow's sharp edge, which wide windows cannot
    /// follow, puts the shade into the noise and can hide a lone pen line under it. The narrow
    /// window leaves wedges of false ink along that edge, so only thin strokes found this way
    /// are to be trusted (`crate::analysable` judges them). `contrast` is how the first look
    /// at these planes told ink from paper ([`InkMap::found_in`]); it is chosen again if `None`.
    pub fn from_planes_over_narrow_window(planes: &Planes, contrast: Option<Contrast>) -> Self {
        Self::from_planes_over(planes, true, contrast, FAINT_CONTRAST).0
    }

    fn from_planes_over(
        planes: &Planes,
        narrowest: bool,
        contrast: Option<Contrast>,
        faint_contrast: f32,
    ) -> (Self, Option<Contrast>) {
        let (width, height) = (planes.width, planes.height);
        let look = Look {
            narrowest,
            contrast,
            faint_contrast,
        };
        let ink = match &planes.alpha {
            Some(alpha) => ink_with_alpha(&mut planes.colour.clone(), alpha, width, height, look),
            None => ink_against_paper(&planes.colour, width, height, look)
                .map(|(found, contrast)| (found, Some(contrast))),
        };
        let ((strength, faint), contrast) =
            ink.unwrap_or_else(|| ((vec![0.0; width * height], 0.0), None));
        let ink: Vec<f32> = strength.iter().map(|&v| v.min(1.0)).collect();
        let strength = if strength.iter().any(|&v| v > 1.0) {
            strength
        } else {
            Vec::new()
        };
        let map = Self {
            width,
            height,
            ink,
            faint,
            strength,
            on_lines: Vec::new(),
            outside: Vec::new(),
        };
        (map, contrast)
    }
}

/// How ink is told from paper in a picture's planes: the candidate plane where it stands out
/// furthest above the paper's noise (the luminance, then red, green and blue), and whether it
/// is darker than the paper there ([`dark_ink`]). Both are chosen on the picture's first look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contrast {
    candidate: usize,
    dark_ink: bool,
}

/// Each pixel's ink strength (uncapped), and the strength up to which it may be the paper's
/// noise ([`scale_to_strokes`]).
type Strengths = (Vec<f32>, f32);

/// What a look at a picture's planes asks: the paper over the narrowest window only, how to
/// tell ink from paper if a first look chose it already, and how far above the floor faint
/// strokes must stand ([`FAINT_CONTRAST`], or [`SMOOTHED_FAINT_CONTRAST`] on smoothed planes).
#[derive(Debug, Clone, Copy)]
struct Look {
    narrowest: bool,
    contrast: Option<Contrast>,
    faint_contrast: f32,
}

/// Ink for images with an alpha channel. Transparent pixels are paper. When the opaque
/// pixels are all about one colour they are the strokes themselves (a drawing exported on a
/// transparent canvas) and the alpha is the ink; otherwise the opaque part holds paper and ink
/// of its own, and transparent pixels take that paper's colour.
fn ink_with_alpha(
    planes: &mut [Vec<f32>],
    alpha: &[f32],
    width: usize,
    height: usize,
    look: Look,
) -> Option<(Strengths, Option<Contrast>)> {
    let luma = luminance(planes);
    let opaque: Vec<f32> = luma
        .iter()
        .zip(alpha)
        .filter(|(_, &a)| a >= 0.5)
        .map(|(&l, _)| l)
        .collect();
    if opaque.is_empty() {
        return None;
    }
    let transparent = alpha.len() - opaque.len();
    let spread = percentile(&opaque, 0.95) - percentile(&opaque, 0.05);
    if transparent * 100 >= alpha.len() && spread < 0.25 {
        // Strokes on a transparent canvas: coverage is ink, and nothing else is noise.
        return Some((scale_to_strokes(alpha, 0.0, look.faint_contrast), None));
    }
    for plane in planes.iter_mut() {
        let paper_values: Vec<f32> = plane
            .iter()
            .zip(alpha)
            .filter(|(_, &a)| a >= 0.5)
            .map(|(&v, _)| v)
            .collect();
        let paper = percentile(&paper_values, 0.5);
        for (v, &a) in plane.iter_mut().zip(alpha) {
            *v = a * *v + (1.0 - a) * paper;
        }
    }
    ink_against_paper(planes, width, height, look).map(|(found, contrast)| (found, Some(contrast)))
}

/// Rec. 601 luminance of one (grey) or three (RGB) planes.
fn luminance(planes: &[Vec<f32>]) -> Vec<f32> {
    match planes {
        [r, g, b] => r
            .iter()
            .zip(g)
            .zip(b)
            .map(|((r, g), b)| 0.299 * r + 0.587 * g + 0.114 * b)
            .collect(),
        [grey, ..] => grey.clone(),
        [] => Vec::new(),
    }
}

/// Ink is dark on light paper or light on dark ([`dark_ink`]); light ink is turned into dark so
/// one rule serves both. The paper's brightness is then estimated locally ([`PaperGrid`]), so a
/// photo's uneven lighting and shadows are not taken for ink, and each pixel's contrast is how
/// much darker than its paper it is, as a fraction of the paper's brightness: a stroke in a
/// shadow keeps its contrast. Each colour channel and the luminance are candidates, and the one
/// where ink stands out furthest above the paper's noise is used (blue ballpoint ink is darkest
/// in red, red ink in green, pencil in all alike, where luminance averages the noise down).
/// Candidates are compared on a sample of the pixels; only the chosen one is computed for every
/// pixel.
///
/// The paper is first estimated over windows wide enough for the boldest stroke (two thirds
/// of the picture). It is then estimated again over windows a few stroke widths across
/// ([`STROKE_WINDOWS`] when the strokes found that way are thin, [`BOLD_STROKE_WINDOWS`] when
/// they are bold), which follow the edge of a shadow much more closely: a wide window cut by
/// the picture's edge bends a slanted shadow's edge into a band of false ink along it, and a
/// window kept off the lit side of the edge takes the shade's lightest part within its reach
/// for the paper, a wedge of false ink where the shade darkens towards the frame. Returns each
/// pixel's ink, 0-1, and the strength up to which it may be noise ([`scale_to_strokes`]), with
/// how ink was told from paper (`look.contrast` when given).
fn ink_against_paper(
    planes: &[Vec<f32>],
    width: usize,
    height: usize,
    look: Look,
) -> Option<(Strengths, Contrast)> {
    let luma = luminance(planes);
    let mut candidates: Vec<&[f32]> = vec![&luma];
    if planes.len() == 3 {
        candidates.extend(planes.iter().map(Vec::as_slice));
    }
    // Every `step`-th pixel of every `step`-th row: some 100,000 pixels, of which the 0.2% that
    // a thin pen line covers are still a couple of hundred.
    let step = ((width * height) as f64 / 100_000.0).sqrt().max(1.0) as usize;
    let contrast = match look.contrast {
        Some(contrast) => contrast,
        None => choose_contrast(&candidates, width, height, step)?,
    };
    let dark_ink = contrast.dark_ink;
    let plane = candidates[contrast.candidate];
    let found = |ink| Some((ink, contrast));
    // The ink over the paper estimated over narrower squares, `window` pixels across.
    let ink_over_window = |window: f32| {
        let paper = PaperGrid::new(plane, width, height, dark_ink, PAPER_CELLS, Some(window));
        ink_over(
            &paper,
            plane,
            width,
            height,
            step * step,
            look.faint_contrast,
        )
    };
    let thin_window =
        |stroke: f32| (STROKE_WINDOWS * stroke).max(MIN_WINDOW * width.max(height) as f32);
    if look.narrowest {
        return found(ink_over_window(thin_window(0.0)));
    }
    let wide = PaperGrid::new(plane, width, height, dark_ink, PAPER_CELLS, None);
    let ink = ink_over(
        &wide,
        plane,
        width,
        height,
        step * step,
        look.faint_contrast,
    );
    let Some(stroke) = outline_width(&ink.0, width, height) else {
        return found(ink);
    };
    let thin = thin_window(stroke);
    let window = if thin < 0.5 * wide.window() {
        thin
    } else {
        BOLD_STROKE_WINDOWS * stroke
    };
    if window >= 0.5 * wide.window() {
        return found(ink);
    }
    let ink = ink_over_window(window);
    // The wide window's false ink along a shadow's edge can be a band wider than any stroke, and
    // then the strokes' width, and the window made from it, come out too wide. Measured again
    // on the narrow window's ink, where that band is mostly gone, a much narrower window
    // ([`NARROWER_WINDOW`]) is used instead.
    let Some(stroke) = outline_width(&ink.0, width, height) else {
        return found(ink);
    };
    let narrower = thin_window(stroke);
    if narrower >= NARROWER_WINDOW * window {
        return found(ink);
    }
    found(ink_over_window(narrower))
}

/// Whether ink is darker than the paper ([`dark_ink`], from the luminance, `candidates[0]`),
/// and which candidate plane shows it furthest above the paper's noise, compared on every
/// `step`-th pixel of every `step`-th row against a coarser paper estimate than the chosen one
/// gets. `None` for an empty picture.
fn choose_contrast(
    candidates: &[&[f32]],
    width: usize,
    height: usize,
    step: usize,
) -> Option<Contrast> {
    let dark_ink = dark_ink(candidates.first()?, width, height)?;
    let coarse = Columns::new(width, PaperGrid::cell(width, height, CHOOSING_CELLS));
    let separations: Vec<f32> = candidates
        .par_iter()
        .map(|plane| separation(plane, width, height, step, dark_ink, &coarse))
        .collect();
    let mut best: Option<(f32, usize)> = None;
    for (index, separation) in separations.into_iter().enumerate() {
        if best.is_none_or(|b| separation > b.0) {
            best = Some((separation, index));
        }
    }
    Some(Contrast {
        candidate: best?.1,
        dark_ink,
    })
}

/// How far above the paper's noise `plane` shows ink, for [`choose_contrast`].
fn separation(
    plane: &[f32],
    width: usize,
    height: usize,
    step: usize,
    dark_ink: bool,
    coarse: &Columns,
) -> f32 {
    let paper = PaperGrid::new(plane, width, height, dark_ink, CHOOSING_CELLS, None);
    let mut row = Vec::new();
    let mut darker = Vec::with_capacity((width / step + 1) * (height / step + 1));
    for y in (0..height).step_by(step) {
        paper.row(y, coarse, &mut row);
        for x in (0..width).step_by(step) {
            darker.push(paper.darker(plane[y * width + x], row[x]));
        }
    }
    let (centre, noise) = centre_and_noise(&darker);
    let signal = percentile(&darker, SIGNAL_QUANTILE) - centre;
    signal / noise.max(1e-4)
}

/// The strokes measured again on the narrow window's ink give a window at most this fraction
/// of it: the paper is estimated once more, over that window. On a photo of a number on dark
/// ruled paper with a lit corner (`tests/regressions/41-03018-combined-number-02.jpg`), the wide
/// window's ink measured 7.4 px (an 89-px window) and the narrow one's 2.4 px, the pen line's
/// width (a 28-px window). Of `scripts/photo-accuracy.sh 0 400 0 SEED`'s photos (seeds 5, 11,
/// 23, 31 at 100 per condition, 41, 53), it mends 2 numbers and changes no other reading; one
/// more of the 2,000 blank pages is refused (docs/photo-reader-notes.md).
const NARROWER_WINDOW: f32 = 0.75;

/// The paper is estimated over windows this many stroke widths across when the strokes are
/// thin: far wider than where strokes cross and bunch, far narrower than a shadow.
const STROKE_WINDOWS: f32 = 12.0;
/// ... and at least this fraction of the picture's longer side.
const MIN_WINDOW: f32 = 0.03;
/// Bold strokes, those [`STROKE_WINDOWS`] of which span half the wide window or more, get
/// windows this many stroke widths across: wider than where they cross, narrow enough to follow
/// a shade that darkens towards the frame. Of the 5 blank pages of `scripts/photo-accuracy.sh 0
/// 0 100 5` and `0 0 100 31` that the wide window reads as digits, 2, 3 and 4 widths leave none,
/// none and 2; 3 reads more of the real photos cut close than 2 (docs/photo-reader-notes.md).
const BOLD_STROKE_WINDOWS: f32 = 3.0;

/// The ink of `plane` over `paper`: each pixel's contrast, centred on the paper's median and
/// scaled by [`scale_to_strokes`] against the paper's noise, both measured on every
/// `sample`-th pixel. The noise is the spread of every pixel around that median; where that
/// leaves no ink to trust (all of it within [`FAINT_SIGMAS`] deviations of the floor) and the
/// strokes are bold for the picture ([`bold_strokes`]), the spread is mostly the strokes' own,
/// and the noise is measured again on the paper's lighter half ([`lighter_half_noise`]).
/// `faint_contrast` is how far above the floor faint strokes must stand ([`Look`]).
fn ink_over(
    paper: &PaperGrid,
    plane: &[f32],
    width: usize,
    height: usize,
    sample: usize,
    faint_contrast: f32,
) -> Strengths {
    let columns = Columns::new(width, paper.cell);
    let mut darker = vec![0.0f32; width * height];
    darker
        .par_chunks_mut(width.max(1))
        .zip(plane.par_chunks(width.max(1)))
        .enumerate()
        .for_each_init(Vec::new, |row, (y, (out, pixels))| {
            paper.row(y, &columns, row);
            for ((d, &v), &p) in out.iter_mut().zip(pixels).zip(row.iter()) {
                *d = paper.darker(v, p);
            }
        });
    let sampled: Vec<f32> = darker.iter().step_by(sample.max(1)).copied().collect();
    let (centre, noise) = centre_and_noise(&sampled);
    for d in darker.iter_mut() {
        *d = (*d - centre).max(0.0);
    }
    let (ink, faint) = scale_to_strokes(&darker, noise, faint_contrast);
    if faint >= 1.0 && bold_strokes(&darker, noise, width, height) {
        return scale_to_strokes(
            &darker,
            lighter_half_noise(&sampled, centre),
            faint_contrast,
        );
    }
    (ink, faint)
}

/// Strokes at least this wide, as a fraction of the picture's shorter side, are bold for it:
/// the picture is a digit cropped close (a marker digit cut out to its strokes is 5-7% of its
/// side). A pen line in a photo of a page is at most 1.6% (the number pictures of
/// `scripts/photo-accuracy.sh`), and a page's printed lines are thinner still.
const BOLD_STROKE: f32 = 0.035;

/// Whether the strokes that Otsu's split finds in `contrast` (centred, as [`scale_to_strokes`] gets
/// it) are bold for the picture ([`BOLD_STROKE`]). Then they can be a third of it, and the spread
/// of every pixel around the median is mostly theirs: on the grey paper of a marker 8 cut out to
/// its strokes it comes out 1.4 times what the paper's lighter half gives, and every stroke pixel
/// would be taken for noise (docs/photo-reader-notes.md, "A check on real photos").
fn bold_strokes(contrast: &[f32], noise: f32, width: usize, height: usize) -> bool {
    stroke_split(contrast, noise).is_some_and(|(threshold, _)| {
        width_at(contrast, width, height, threshold)
            .is_some_and(|w| w >= BOLD_STROKE * width.min(height) as f32)
    })
}

/// The paper's noise from the pixels lighter than the `centre` of `values` (contrast, not
/// centred) alone: ink is only ever darker than the paper, so it cannot widen this half.
/// [`MAD_TO_DEVIATION`] times their median distance from the centre, as [`centre_and_noise`] measures both
/// halves. It leaves out what strokes add, and so also what a page's printed lines and a
/// shadow's edge add, which the spread of both halves holds under the floor: it is used only
/// where that spread leaves no ink to trust ([`ink_over`]).
fn lighter_half_noise(values: &[f32], centre: f32) -> f32 {
    let lighter: Vec<f32> = values
        .iter()
        .filter(|&&v| v < centre)
        .map(|&v| centre - v)
        .collect();
    MAD_TO_DEVIATION * percentile(&lighter, 0.5)
}

/// Ink less than this many noise deviations above the floor may be noise: it is kept only
/// beside stronger ink ([`InkMap::drop_faint_alone`]). A stroke this faint all along is
/// within 7 deviations of the paper, and goes.
const FAINT_SIGMAS: f32 = 3.5;

/// A stroke whose outline at a quarter of its strength is at least this wide (pixels)...
const BLURRED_WIDTH: f32 = 4.0;
/// ... and this much wider than at three quarters has soft edges: the picture is out of focus.
/// From one level to the other a sharp pen line widens by about 1 px and a grainy pencil line by
/// up to about 1.6 (8 of the 3,400 sharp pictures of `scripts/photo-accuracy.sh`'s seeds 17 and
/// 23 pass, all pencil, and read the same either way); four in five of its pictures blurred by
/// a Gaussian of 1-2.5 px widen by 1.7-3.7 px.
const BLURRED_EDGE: f32 = 1.7;

impl InkMap {
    /// Whether the strokes have soft, wide edges, as in a photo out of focus: then the picture
    /// is looked at smaller ([`crate::ink_map`]), where its strokes and printed lines are sharp
    /// and thin again.
    pub fn out_of_focus(&self) -> bool {
        let width = |level| width_at(&self.ink, self.width, self.height, level);
        match (width(0.25), width(0.75)) {
            (Some(soft), Some(core)) => soft >= BLURRED_WIDTH && soft - core >= BLURRED_EDGE,
            _ => false,
        }
    }

    /// The typical width of the strokes, in pixels (twice their area over their outline, at
    /// half a stroke's strength): about 2 for a thin pen line, far more for a patch. `None`
    /// when there is no ink.
    pub fn stroke_width(&self) -> Option<f32> {
        outline_width(&self.ink, self.width, self.height)
    }

    /// Zeroes faint ink (up to [`InkMap::faint`]) with no stronger pixel among its eight
    /// neighbours: the faint edge of a stroke stays, while the paper's noise that only just
    /// crosses the floor (along the edge of a shadow, in a texture) goes, and with it the
    /// bridges it made between other specks.
    pub fn drop_faint_alone(&mut self) {
        let (width, height, ink) = (self.width, self.height, &mut self.ink);
        let strong: Vec<bool> = ink.iter().map(|&v| v > self.faint).collect();
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                if ink[i] == 0.0 || strong[i] {
                    continue;
                }
                let beside = (y.saturating_sub(1)..(y + 2).min(height)).any(|ny| {
                    strong[ny * width + x.saturating_sub(1)..ny * width + (x + 2).min(width)]
                        .contains(&true)
                });
                if !beside {
                    ink[i] = 0.0;
                }
            }
        }
    }
}

/// The typical width in pixels of the strokes in `ink` (pixels at least half a stroke's
/// strength): twice their area over their outline, which is a band's width for a band and 2 for
/// a line one pixel wide. `None` when there are none.
fn outline_width(ink: &[f32], width: usize, height: usize) -> Option<f32> {
    width_at(ink, width, height, 0.5)
}

/// [`outline_width`] of the pixels at least `level` strong.
fn width_at(ink: &[f32], width: usize, height: usize, level: f32) -> Option<f32> {
    let on = |x: usize, y: usize| ink[y * width + x] >= level;
    let (mut area, mut outline) = (0usize, 0usize);
    for y in 0..height {
        for x in 0..width {
            if !on(x, y) {
                continue;
            }
            area += 1;
            let inside = x > 0
                && y > 0
                && x + 1 < width
                && y + 1 < height
                && on(x - 1, y)
                && on(x + 1, y)
                && on(x, y - 1)
                && on(x, y + 1);
            outline += usize::from(!inside);
        }
    }
    (outline > 0).then(|| 2.0 * area as f32 / outline as f32)
}

/// A Gaussian's standard deviation over its median absolute deviation (1 / 0.6745): what turns
/// a robust spread, which the few pixels of ink cannot move, into a noise deviation.
const MAD_TO_DEVIATION: f32 = 1.4826;

/// The median of `values` and their robust standard deviation around it ([`MAD_TO_DEVIATION`]
/// times the median absolute deviation, which equals the standard deviation for Gaussian noise and
/// ignores the few values that are ink). For the paper's darkness, the median centres the
/// estimate, which sits on the bright side of the paper's noise.
pub(crate) fn centre_and_noise(values: &[f32]) -> (f32, f32) {
    let centre = percentile(values, 0.5);
    let deviations: Vec<f32> = values.iter().map(|d| (d - centre).abs()).collect();
    (centre, MAD_TO_DEVIATION * percentile(&deviations, 0.5))
}

/// Whether the ink is darker than the paper. First by the tails beyond the paper's levels:
/// the darkest and the brightest of the luminance histogram's peaks (each holding at least 5%
/// of the picture) are paper, or paper in a shadow, and thin ink is a tail reaching well below
/// the darkest or above the brightest, further than the picture's noise reaches
/// ([`TAIL_NOISE_DEVIATIONS`]), made of strokes rather than a patch the frame cuts
/// ([`framed_patch`]). When neither tail clearly wins (bold ink is a peak of its own), the page
/// is light paper, and the ink dark, if its brighter peak is light and a patch that the frame
/// cuts (the lit part of a page mostly in a shadow) or if the picture is mostly light
/// ([`LIGHT_PAPER`]): in a page in a shadow, the lit part would otherwise pass for a light
/// stroke. Otherwise, whether the luminance reaches further below its median than above it.
/// `None` for an empty picture.
fn dark_ink(luma: &[f32], width: usize, height: usize) -> Option<bool> {
    if luma.is_empty() {
        return None;
    }
    const BINS: usize = 64;
    let fine = Histogram::new(luma);
    let mut hist = [0usize; BINS];
    for (i, &n) in fine.counts.iter().enumerate() {
        hist[i * BINS / Histogram::BINS] += n;
    }
    let smooth: Vec<usize> = (0..BINS)
        .map(|i| hist[i.saturating_sub(1)..(i + 2).min(BINS)].iter().sum())
        .collect();
    let peaks: Vec<usize> = (0..BINS)
        .filter(|&i| {
            smooth[i] * 20 >= luma.len()
                && (i == 0 || smooth[i] >= smooth[i - 1])
                && (i + 1 == BINS || smooth[i] > smooth[i + 1])
        })
        .collect();
    if let (Some(&lowest), Some(&highest)) = (peaks.first(), peaks.last()) {
        let level = |i: usize| (i as f32 + 0.5) / BINS as f32;
        let (dark_end, light_end) = (fine.quantile(0.002), fine.quantile(0.998));
        let (paper_low, paper_high) = (level(lowest), level(highest));
        let (mut below, mut above) = (paper_low - dark_end, light_end - paper_high);
        // A tail no further out than the sensor's noise reaches on its own is not ink: on a
        // bold digit cut close, the strokes are the darker peak, and the paper's noise passed
        // for light ink beyond the brighter one.
        let noise = pixel_noise(luma, width);
        for tail in [&mut below, &mut above] {
            if *tail < TAIL_NOISE_DEVIATIONS * noise {
                *tail = 0.0;
            }
        }
        // A tail that the picture's frame cuts along much of its outline is a patch of light
        // or shade (the lit corner of a page that lies mostly in a shadow), not strokes.
        if framed_patch(luma, width, height, |v| v > (paper_high + light_end) / 2.0) {
            above = 0.0;
        }
        if framed_patch(luma, width, height, |v| v < (paper_low + dark_end) / 2.0) {
            below = 0.0;
        }
        if below > 0.1 && below > 2.0 * above {
            return Some(true);
        }
        if above > 0.1 && above > 2.0 * below {
            return Some(false);
        }
        // Two levels of paper, the brighter a patch that the frame cuts: a page partly in a
        // shadow, whose lit part is light paper however much of the picture the shadow covers.
        let half_way = (paper_low + paper_high) / 2.0;
        if lowest != highest
            && paper_high >= LIGHT_PAPER
            && framed_patch(luma, width, height, |v| v > half_way)
        {
            return Some(true);
        }
    }
    let median = fine.quantile(0.5);
    if median >= LIGHT_PAPER {
        return Some(true);
    }
    let (low, high) = (fine.quantile(0.01), fine.quantile(0.99));
    Some(median - low >= high - median)
}

/// The deviation of the picture's pixel-to-pixel noise: the median difference between
/// horizontal neighbours, scaled to a Gaussian's deviation. Edges of strokes are too few to move
/// the median, and shading too smooth.
fn pixel_noise(luma: &[f32], width: usize) -> f32 {
    // Some 100,000 differences are plenty: every `step`-th row.
    let step = (luma.len() / 100_000).max(1);
    let steps: Vec<f32> = luma
        .chunks_exact(width)
        .step_by(step)
        .flat_map(|row| row.windows(2).map(|w| (w[1] - w[0]).abs()))
        .collect();
    if steps.is_empty() {
        return 0.0;
    }
    // a - b of two values with deviation s has deviation sqrt(2) * s.
    MAD_TO_DEVIATION * percentile(&steps, 0.5) / std::f32::consts::SQRT_2
}

/// Whether the pixels of `luma` (`width` x `height`) that are `beyond` the paper have at least
/// [`FRAMED_OUTLINE`] of their outline on the picture's edge.
fn framed_patch(luma: &[f32], width: usize, height: usize, beyond: impl Fn(f32) -> bool) -> bool {
    if width == 0 || height == 0 {
        return false;
    }
    let mask = BitMask::from_fn(width, height, |i| beyond(luma[i])).closed(FRAMED_GAP);
    let (framed, outline) = mask.outline();
    outline > 0 && framed as f32 >= FRAMED_OUTLINE * outline as f32
}

/// A `width` x `height` mask, a bit a pixel, each row in whole 64-bit words (bit x of word i is
/// pixel 64 i + x; the bits past the width are off). [`framed_patch`] closes a mask of the
/// whole picture up to three times a look, and word-wide shifts and ORs do that many times
/// faster than a byte a pixel.
#[derive(Debug, Clone, PartialEq)]
struct BitMask {
    width: usize,
    height: usize,
    words: usize,
    bits: Vec<u64>,
}

impl BitMask {
    /// The mask whose pixel `i` (row-major) is `on(i)`.
    fn from_fn(width: usize, height: usize, on: impl Fn(usize) -> bool) -> Self {
        let words = width.div_ceil(64);
        let mut bits = vec![0u64; words * height];
        for y in 0..height {
            for x in 0..width {
                if on(y * width + x) {
                    bits[y * words + x / 64] |= 1 << (x % 64);
                }
            }
        }
        Self {
            width,
            height,
            words,
            bits,
        }
    }

    fn row(&self, y: usize) -> &[u64] {
        &self.bits[y * self.words..][..self.words]
    }

    /// The bits of a row's last word that are pixels.
    fn last_word(&self) -> u64 {
        match self.width % 64 {
            0 => u64::MAX,
            n => (1 << n) - 1,
        }
    }

    /// Each pixel on where a pixel within `reach` (under 64) either way, a square clipped at
    /// the borders, is on: along each row by shifts, then down the columns.
    fn dilated(&self, reach: usize) -> Self {
        assert!(reach < 64, "a dilation reaches less than a word");
        let mut rows = self.bits.clone();
        for (row, out) in self
            .bits
            .chunks_exact(self.words)
            .zip(rows.chunks_exact_mut(self.words))
        {
            for k in 1..reach as u32 + 1 {
                for i in 0..self.words {
                    // From the pixel k to the left (a higher bit), and k to the right.
                    let from_left =
                        (row[i] << k) | i.checked_sub(1).map_or(0, |j| row[j] >> (64 - k));
                    let from_right = (row[i] >> k) | row.get(i + 1).map_or(0, |w| w << (64 - k));
                    out[i] |= from_left | from_right;
                }
            }
            out[self.words - 1] &= self.last_word();
        }
        let mut bits = vec![0u64; self.bits.len()];
        for y in 0..self.height {
            let out = &mut bits[y * self.words..][..self.words];
            for from in y.saturating_sub(reach)..(y + reach + 1).min(self.height) {
                for (o, &v) in out.iter_mut().zip(&rows[from * self.words..][..self.words]) {
                    *o |= v;
                }
            }
        }
        Self { bits, ..*self }
    }

    /// Every pixel flipped.
    fn inverted(mut self) -> Self {
        let last = self.last_word();
        for row in self.bits.chunks_exact_mut(self.words) {
            for w in row.iter_mut() {
                *w = !*w;
            }
            row[self.words - 1] &= last;
        }
        self
    }

    /// How many pixels of the mask's outline lie on the picture's edge, and how many there are:
    /// the pixels on that have a pixel off, or the edge, among their four neighbours.
    fn outline(&self) -> (u32, u32) {
        let (mut framed, mut outline) = (0, 0);
        for y in 0..self.height {
            let row = self.row(y);
            if y == 0 || y + 1 == self.height {
                let on: u32 = row.iter().map(|w| w.count_ones()).sum();
                framed += on;
                outline += on;
                continue;
            }
            let (up, down) = (self.row(y - 1), self.row(y + 1));
            for (i, &on) in row.iter().enumerate() {
                // Each pixel's left and right neighbours, shifted onto it.
                let left = (on << 1) | i.checked_sub(1).map_or(0, |j| row[j] >> 63);
                let right = (on >> 1) | row.get(i + 1).map_or(0, |w| w << 63);
                let mut edge = 0;
                if i == 0 {
                    edge |= 1;
                }
                if i == (self.width - 1) / 64 {
                    edge |= 1 << ((self.width - 1) % 64);
                }
                let interior = on & left & right & up[i] & down[i];
                framed += (on & edge).count_ones();
                outline += (on & edge).count_ones() + (on & !edge & !interior).count_ones();
            }
        }
        (framed, outline)
    }

    /// Closed over squares `2 * reach + 1` across: gaps up to `2 * reach` wide are filled, and
    /// what is on keeps its outline. Windows are clipped at the borders.
    fn closed(&self, reach: usize) -> Self {
        self.dilated(reach).inverted().dilated(reach).inverted()
    }
}

/// A tail of the luminance histogram beyond the paper's levels is ink only where it reaches
/// further than this many deviations of the picture's noise: the 0.2% of paper pixels at the
/// tail's end reach 2.9 of them on their own.
const TAIL_NOISE_DEVIATIONS: f32 = 4.0;
/// A picture whose median luminance is at least this is light paper, even in a shadow: light
/// ink comes on black, a blackboard, a dark-mode canvas.
const LIGHT_PAPER: f32 = 0.35;
/// Pixels beyond the paper's levels with at least this fraction of their outline on the
/// picture's edge are a patch of light or shade that the frame cuts, not strokes (a stroke that
/// runs off the picture leaves only its width on the edge).
const FRAMED_OUTLINE: f32 = 0.25;
/// ... once gaps up to twice this many pixels wide are closed (a closing, which leaves strokes
/// as wide as they are): the printed lines of squared paper cut a lit patch into squares, whose
/// outlines would be mostly inside the picture.
const FRAMED_GAP: usize = 2;

/// A fine histogram of values in 0-1, for quantiles of a whole picture in one pass.
struct Histogram {
    counts: Vec<usize>,
    total: usize,
}

impl Histogram {
    const BINS: usize = 1024;

    fn new(values: &[f32]) -> Self {
        let mut counts = vec![0usize; Self::BINS];
        for &v in values {
            counts[((v.clamp(0.0, 1.0) * Self::BINS as f32) as usize).min(Self::BINS - 1)] += 1;
        }
        Self {
            counts,
            total: values.len(),
        }
    }

    /// The `q` quantile, to the bin's centre.
    fn quantile(&self, q: f64) -> f32 {
        let k = ((self.total.saturating_sub(1)) as f64 * q).round() as usize;
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > k {
                return (i as f32 + 0.5) / Self::BINS as f32;
            }
        }
        1.0
    }
}

/// Paper darker than this (0-1) is not divided by its own brightness any further: black
/// regions would turn their noise into ink.
const MIN_PAPER: f32 = 0.08;
/// How far up the contrast distribution the ink's level is read when choosing a channel: ink
/// covers at least this much of a picture (a thin pen line on a large page, 0.2%).
const SIGNAL_QUANTILE: f64 = 0.998;
/// The paper estimate's grid has about this many cells along the picture's longer side: cells
/// of a few pixels, so that the estimate follows the sharp edge of a shadow instead of
/// leaving a line of false ink along it.
const PAPER_CELLS: usize = 400;
/// Channels are compared against a paper estimate this coarse (a sixteenth of the work).
const CHOOSING_CELLS: usize = 100;

/// The paper's brightness under a plane (made dark ink on light paper), as a smooth surface:
/// the plane is averaged into a grid of cells ([`PAPER_CELLS`] to the long side) and the
/// grid is closed (a maximum then a minimum over squares two thirds of the picture across,
/// which removes every stroke narrower than that and keeps the edge of a shadow or a light
/// gradient where it is). [`PaperGrid::row`] interpolates it bilinearly back to pixels.
struct PaperGrid {
    grid: Vec<f32>,
    gw: usize,
    gh: usize,
    cell: usize,
    /// The closing's reach, in cells either side.
    reach: usize,
    /// Light ink: the plane's values are read as `1 - v`.
    flip: bool,
}

impl PaperGrid {
    /// The side of the grid's cells, in pixels, for a `width` x `height` picture.
    fn cell(width: usize, height: usize, cells: usize) -> usize {
        width.max(height).div_ceil(cells).max(1)
    }

    /// The estimate for `plane`, on a grid of about `cells` along the longer side, closed over
    /// squares `window` pixels across (by default two thirds of the longer side).
    fn new(
        plane: &[f32],
        width: usize,
        height: usize,
        dark_ink: bool,
        cells: usize,
        window: Option<f32>,
    ) -> Self {
        let cell = Self::cell(width, height, cells);
        let (gw, gh) = (width.div_ceil(cell), height.div_ceil(cell));
        let mut grid = vec![0.0f32; gw * gh];
        // Each row of cells from its own band of pixel rows, the bands in parallel.
        grid.par_chunks_mut(gw)
            .zip(plane.par_chunks((width * cell).max(1)))
            .for_each(|(sums, band)| {
                for pixels in band.chunks_exact(width) {
                    for (sum, block) in sums.iter_mut().zip(pixels.chunks(cell)) {
                        *sum += block.iter().sum::<f32>();
                    }
                }
            });
        for (i, g) in grid.iter_mut().enumerate() {
            let (gx, gy) = (i % gw, i / gw);
            let cols = ((gx + 1) * cell).min(width) - gx * cell;
            let rows = ((gy + 1) * cell).min(height) - gy * cell;
            *g /= (cols * rows) as f32;
            if !dark_ink {
                *g = 1.0 - *g;
            }
        }
        let reach = match window {
            Some(w) => ((w / 2.0) / cell as f32).ceil().max(1.0) as usize,
            None => gw.max(gh).div_ceil(3),
        };
        Self {
            grid: close(&grid, gw, gh, reach),
            gw,
            gh,
            cell,
            reach,
            flip: !dark_ink,
        }
    }

    /// The closing's window, in pixels.
    fn window(&self) -> f32 {
        ((2 * self.reach + 1) * self.cell) as f32
    }

    /// The paper's level under every pixel of row `y`, into `out`.
    fn row(&self, y: usize, columns: &Columns, out: &mut Vec<f32>) {
        let (gw, gh) = (self.gw, self.gh);
        let (y0, y1, ty) = between_centres(y, self.cell, gh);
        let top = &self.grid[y0 * gw..(y0 + 1) * gw];
        let bottom = &self.grid[y1 * gw..(y1 + 1) * gw];
        out.clear();
        out.extend(columns.0.iter().map(|&(x0, x1, tx)| {
            let left = top[x0] + (bottom[x0] - top[x0]) * ty;
            let right = top[x1] + (bottom[x1] - top[x1]) * ty;
            left + (right - left) * tx
        }));
    }

    /// How much darker than `paper` the plane's value `v` is, as a fraction of the paper.
    fn darker(&self, v: f32, paper: f32) -> f32 {
        let v = if self.flip { 1.0 - v } else { v };
        (paper - v) / paper.max(MIN_PAPER)
    }
}

/// For each pixel column, the grid columns either side of it and the weight of the right one.
struct Columns(Vec<(usize, usize, f32)>);

impl Columns {
    fn new(width: usize, cell: usize) -> Self {
        let cells = width.div_ceil(cell);
        Self(
            (0..width)
                .map(|x| between_centres(x, cell, cells))
                .collect(),
        )
    }
}

/// The cells (of `cell` pixels, `cells` of them) whose centres pixel `p` lies between, and the
/// weight of the second; clamped at the borders.
fn between_centres(p: usize, cell: usize, cells: usize) -> (usize, usize, f32) {
    let f = ((p as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
    let first = (f as usize).min(cells - 1);
    (first, (first + 1).min(cells - 1), f.fract())
}

/// Morphological closing of a `gw` x `gh` grid over squares `2 * reach + 1` cells across. The
/// grid is extended by copies of its border cells first: clipped windows would let lit paper
/// leak into a shadow, or the centre's light into a dark corner, wherever the edge of the
/// picture cuts the window short.
fn close(grid: &[f32], gw: usize, gh: usize, reach: usize) -> Vec<f32> {
    let (pw, ph) = (gw + 2 * reach, gh + 2 * reach);
    let padded: Vec<f32> = (0..pw * ph)
        .map(|i| {
            let gx = (i % pw).saturating_sub(reach).min(gw - 1);
            let gy = (i / pw).saturating_sub(reach).min(gh - 1);
            grid[gy * gw + gx]
        })
        .collect();
    let dilated = running(&padded, pw, ph, reach, f32::max);
    let closed = running(&dilated, pw, ph, reach, f32::min);
    (0..gw * gh)
        .map(|i| closed[(i / gw + reach) * pw + i % gw + reach])
        .collect()
}

/// `pick` (max or min) of `grid` over squares `2 * reach + 1` cells across, clipped at the
/// borders; separable, rows then columns.
fn running(
    grid: &[f32],
    w: usize,
    h: usize,
    reach: usize,
    pick: impl Fn(f32, f32) -> f32 + Copy + Sync,
) -> Vec<f32> {
    let mut rows = vec![0.0; w * h];
    rows.par_chunks_mut(w)
        .zip(grid.par_chunks(w))
        .for_each_init(Scratch::default, |scratch, (out, line)| {
            running_line(line, reach, pick, scratch);
            out.copy_from_slice(&scratch.out);
        });
    // Column by column into a transposed grid, then back.
    let mut columns = vec![0.0; w * h];
    columns.par_chunks_mut(h).enumerate().for_each_init(
        || (Scratch::default(), Vec::with_capacity(h)),
        |(scratch, column), (x, out)| {
            column.clear();
            column.extend((0..h).map(|y| rows[y * w + x]));
            running_line(column, reach, pick, scratch);
            out.copy_from_slice(&scratch.out);
        },
    );
    let mut out = vec![0.0; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, v) in row.iter_mut().enumerate() {
            *v = columns[x * h + y];
        }
    });
    out
}

/// Buffers [`running_line`] reuses from one line to the next.
#[derive(Default)]
struct Scratch {
    forward: Vec<f32>,
    backward: Vec<f32>,
    out: Vec<f32>,
}

/// `pick` of `values` over windows `2 * reach + 1` long, clipped at the ends, into
/// `scratch.out`: van Herk and Gil-Werman's three comparisons a value whatever the window's
/// length, from running extremes within blocks of the window's length, forwards and backwards.
fn running_line(
    values: &[f32],
    reach: usize,
    pick: impl Fn(f32, f32) -> f32,
    scratch: &mut Scratch,
) {
    let n = values.len();
    let len = 2 * reach + 1;
    let Scratch {
        forward,
        backward,
        out,
    } = scratch;
    forward.clear();
    forward.extend_from_slice(values);
    backward.clear();
    backward.extend_from_slice(values);
    for start in (0..n).step_by(len) {
        let end = (start + len).min(n);
        for i in start + 1..end {
            forward[i] = pick(forward[i - 1], values[i]);
        }
        for i in (start..end - 1).rev() {
            backward[i] = pick(backward[i + 1], values[i]);
        }
    }
    // A window a..=b spans the end of a's block and the start of b's; one only where the ends
    // of the values clip it inside the first or the last block.
    let last_block = n.saturating_sub(1) / len * len;
    out.clear();
    out.extend((0..n).map(|i| {
        let (a, b) = (i.saturating_sub(reach), (i + reach).min(n - 1));
        if a == 0 && b < len {
            forward[b]
        } else if b == n - 1 && a >= last_block {
            backward[a]
        } else {
            pick(backward[a], forward[b])
        }
    }));
}

/// Turns raw contrast into ink: zero up to the noise floor, 1 at the typical stroke level
/// (the median of the pixels Otsu's threshold calls ink among those above the noise), linear
/// between and beyond (the caller caps it at 1). Nothing is ink unless that level stands
/// [`FAINT_STROKE_SIGMAS`] noise deviations and `faint_contrast` above the floor, or
/// [`MIN_CONTRAST`].
fn scale_to_strokes(contrast: &[f32], noise: f32, faint_contrast: f32) -> Strengths {
    let Some((_, stroke_level)) = stroke_split(contrast, noise) else {
        return (vec![0.0; contrast.len()], 0.0);
    };
    let floor = (NOISE_SIGMAS * noise).max(0.12 * stroke_level);
    let needed = (FAINT_STROKE_SIGMAS * noise).clamp(faint_contrast, MIN_CONTRAST);
    if stroke_level - floor < needed {
        return (vec![0.0; contrast.len()], 0.0);
    }
    let scale = 1.0 / (stroke_level - floor);
    let ink = contrast
        .iter()
        .map(|&c| ((c - floor) * scale).max(0.0))
        .collect();
    (ink, FAINT_SIGMAS * noise * scale)
}

/// Otsu's threshold between paper and stroke in `contrast` (centred, 0 for the paper) and
/// the typical stroke level (the median above it), or `None` when nothing stands above the
/// noise. The split is made among the pixels above the noise only: a thin pen line is a
/// fraction of a percent of a photo, and among all pixels it would fall inside the paper's
/// noise.
fn stroke_split(contrast: &[f32], noise: f32) -> Option<(f32, f32)> {
    let max = contrast.iter().copied().fold(0.0f32, f32::max);
    if max < FAINT_CONTRAST {
        return None;
    }
    let candidates: Vec<f32> = contrast
        .iter()
        .copied()
        .filter(|&c| c > NOISE_SIGMAS * noise)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let threshold = otsu_threshold(&candidates, max);
    let stroke: Vec<f32> = candidates.into_iter().filter(|&c| c > threshold).collect();
    Some((threshold, percentile(&stroke, 0.5).max(threshold)))
}

/// Otsu's threshold over `values` in `[0, max]` (256 bins): the split that best separates the
/// two populations, here paper-with-noise and stroke.
fn otsu_threshold(values: &[f32], max: f32) -> f32 {
    const BINS: usize = 256;
    let mut hist = [0u64; BINS];
    let scale = (BINS - 1) as f32 / max;
    for &v in values {
        hist[((v * scale) as usize).min(BINS - 1)] += 1;
    }
    let total = values.len() as f64;
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut weight_low, mut sum_low) = (0.0, 0.0);
    let (mut best, mut best_bin) = (-1.0, 0);
    for (i, &n) in hist.iter().enumerate() {
        weight_low += n as f64;
        sum_low += i as f64 * n as f64;
        let weight_high = total - weight_low;
        if weight_low == 0.0 || weight_high == 0.0 {
            continue;
        }
        let mean_low = sum_low / weight_low;
        let mean_high = (sum_all - sum_low) / weight_high;
        let between = weight_low * weight_high * (mean_low - mean_high).powi(2);
        if between > best {
            best = between;
            best_bin = i;
        }
    }
    (best_bin as f32 + 0.5) / scale
}

/// The `q` quantile (0-1) by selection, without sorting everything; 0 for no values.
pub(crate) fn percentile(values: &[f32], q: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_averages_each_pixel_over_its_neighbours_inside_the_picture() {
        let planes = Planes {
            width: 3,
            height: 2,
            colour: vec![vec![0.0, 3.0, 6.0, 3.0, 6.0, 9.0]],
            alpha: None,
        };
        // A corner averages the four pixels around it; the middle column, all six.
        assert_eq!(planes.smoothed(1).colour[0], [3.0, 4.5, 6.0, 3.0, 4.5, 6.0]);
        assert_eq!(planes.smoothed(0), planes);
    }
    use crate::synth::gaussian;
    use image::{GrayImage, Luma, Rgba, RgbaImage};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A 20x20 picture: paper everywhere, ink on a 4-px-wide vertical bar at x 8..12.
    fn bar(paper: u8, ink: u8) -> GrayImage {
        GrayImage::from_fn(20, 20, |x, _| {
            Luma([if (8..12).contains(&x) { ink } else { paper }])
        })
    }

    fn ink_on_bar(map: &InkMap) -> (f32, f32) {
        let on = (0..20).map(|y| map.at(9, y)).sum::<f32>() / 20.0;
        let off = (0..20).map(|y| map.at(2, y) + map.at(17, y)).sum::<f32>() / 40.0;
        (on, off)
    }

    #[test]
    fn dark_ink_on_light_paper_and_the_reverse_give_the_same_map() {
        let dark = InkMap::from_image(&DynamicImage::ImageLuma8(bar(230, 30)));
        let light = InkMap::from_image(&DynamicImage::ImageLuma8(bar(10, 200)));
        assert_eq!(ink_on_bar(&dark), (1.0, 0.0));
        // Equal but for float rounding (the contrast is relative to each paper's brightness).
        assert!(dark
            .ink
            .iter()
            .zip(&light.ink)
            .all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn strokes_on_a_transparent_canvas_are_ink_whatever_their_colour() {
        for colour in [[0, 0, 0], [255, 255, 255], [30, 60, 200]] {
            let img = RgbaImage::from_fn(20, 20, |x, _| {
                let [r, g, b] = colour;
                Rgba([r, g, b, if (8..12).contains(&x) { 255 } else { 0 }])
            });
            let map = InkMap::from_image(&DynamicImage::ImageRgba8(img));
            assert_eq!(ink_on_bar(&map), (1.0, 0.0), "colour {colour:?}");
        }
    }

    #[test]
    fn an_opaque_rgba_page_is_read_like_rgb() {
        let img = RgbaImage::from_fn(20, 20, |x, _| {
            let v = if (8..12).contains(&x) { 20 } else { 240 };
            Rgba([v, v, v, 255])
        });
        let map = InkMap::from_image(&DynamicImage::ImageRgba8(img));
        assert_eq!(ink_on_bar(&map), (1.0, 0.0));
    }

    #[test]
    fn blank_and_faint_pages_have_no_ink() {
        for img in [GrayImage::from_pixel(30, 30, Luma([255])), bar(200, 192)] {
            assert!(InkMap::from_image(&DynamicImage::ImageLuma8(img)).is_blank());
        }
        let clear = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
        assert!(InkMap::from_image(&DynamicImage::ImageRgba8(clear)).is_blank());
    }

    #[test]
    fn a_faint_stroke_is_ink_only_where_it_stands_clear_of_the_paper_noise() {
        // A bar 8% darker than the paper (an out-of-focus pen line is this faint), on paper
        // with a deterministic noise of ±`amplitude` levels.
        let page = |amplitude: i32| {
            let img = GrayImage::from_fn(40, 40, |x, y| {
                let noise = ((x * 7 + y * 13) % (2 * amplitude as u32 + 1)) as i32 - amplitude;
                Luma([(if (18..22).contains(&x) { 184 } else { 200 } + noise) as u8])
            });
            InkMap::from_image(&DynamicImage::ImageLuma8(img))
        };
        for amplitude in [0, 1] {
            let map = page(amplitude);
            assert!((0..40).all(|y| map.at(19, y) > 0.5), "±{amplitude}");
        }
        assert!(page(4).is_blank());
    }

    #[test]
    fn soft_wide_strokes_are_out_of_focus_and_sharp_ones_are_not() {
        // A ring of a pen line, `half` px either side of its centre, blurred by `sigma`.
        let ring = |half: f32, sigma: f32| {
            let img = GrayImage::from_fn(120, 120, |x, y| {
                let r = ((x as f32 - 60.0).powi(2) + (y as f32 - 60.0).powi(2)).sqrt();
                let d = ((r - 35.0).abs() - half).max(0.0);
                let ink = if sigma == 0.0 {
                    f32::from(d == 0.0)
                } else {
                    (-d * d / (2.0 * sigma * sigma)).exp()
                };
                Luma([(230.0 - 150.0 * ink).round() as u8])
            });
            InkMap::from_image(&DynamicImage::ImageLuma8(img)).out_of_focus()
        };
        for half in [0.5, 1.0, 2.0, 3.0] {
            assert!(!ring(half, 0.0), "a sharp line {} px wide", 2.0 * half);
        }
        for sigma in [1.5, 2.5] {
            assert!(ring(0.5, sigma), "a 1 px line blurred by {sigma}");
        }
    }

    #[test]
    fn paper_noise_stays_below_the_floor() {
        // Paper 220 with ±12 noise (a deterministic pattern), ink 40.
        let img = GrayImage::from_fn(40, 40, |x, y| {
            let noise = ((x * 7 + y * 13) % 25) as i32 - 12;
            Luma([if (18..22).contains(&x) {
                40
            } else {
                (220 + noise) as u8
            }])
        });
        let map = InkMap::from_image(&DynamicImage::ImageLuma8(img));
        let paper_ink: f32 = (0..40)
            .flat_map(|y| (0..10).map(move |x| (x, y)))
            .map(|(x, y)| map.at(x, y))
            .sum();
        assert_eq!(paper_ink, 0.0);
        assert!(map.at(19, 5) > 0.95);
    }

    #[test]
    fn a_bold_ring_cropped_close_on_noisy_paper_is_ink() {
        // A ring 10 px wide, a third of the picture, ink 60 on grey paper 150 with noise of
        // up to ±16 levels (a deterministic pattern): a marker digit cut out to its strokes.
        let ring = |x: u32, y: u32| {
            let r = ((x as f32 - 30.0).powi(2) + (y as f32 - 30.0).powi(2)).sqrt();
            (r - 20.0).abs()
        };
        let picture = |with_ring: bool| {
            let img = GrayImage::from_fn(60, 60, |x, y| {
                let noise = ((x * 7 + y * 13) % 17 + (x * 11 + y * 5) % 17) as i32 - 16;
                Luma([if with_ring && ring(x, y) <= 5.0 {
                    60
                } else {
                    (150 + noise) as u8
                }])
            });
            let mut map = InkMap::from_image(&DynamicImage::ImageLuma8(img));
            map.drop_faint_alone();
            map
        };
        assert!(picture(false).is_blank(), "the paper alone has no ink");
        let map = picture(true);
        let pixels = || (0..60u32).flat_map(|y| (0..60u32).map(move |x| (x, y)));
        let stroke: Vec<f32> = pixels()
            .filter(|&(x, y)| ring(x, y) <= 4.0)
            .map(|(x, y)| map.at(x as usize, y as usize))
            .collect();
        let inked = stroke.iter().filter(|&&v| v > 0.5).count();
        assert_eq!(inked, stroke.len(), "the stroke's core is ink");
        let paper_ink: f32 = pixels()
            .filter(|&(x, y)| ring(x, y) >= 7.0)
            .map(|(x, y)| map.at(x as usize, y as usize))
            .sum();
        assert_eq!(paper_ink, 0.0, "the paper's noise is not ink");
    }

    #[test]
    fn a_black_marker_digit_cut_close_on_noisy_paper_is_dark_ink() {
        // A ring 12 px wide, ink 5 on paper 190, cut close (120 x 120), with Gaussian sensor
        // noise of 10 levels: the strokes are the darker peak of the histogram, with nothing
        // below it, and the paper's noise reaches 0.12 above the brighter one. That tail is
        // noise, not light ink.
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let ring = |x: u32, y: u32| {
            let r = ((x as f32 - 60.0).powi(2) + (y as f32 - 60.0).powi(2)).sqrt();
            (r - 50.0).abs()
        };
        let img = GrayImage::from_fn(120, 120, |x, y| {
            let level = if ring(x, y) <= 6.0 { 5.0 } else { 190.0 };
            Luma([(level + 10.0 * gaussian(&mut rng))
                .round()
                .clamp(0.0, 255.0) as u8])
        });
        let luma: Vec<f32> = img.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
        assert_eq!(dark_ink(&luma, 120, 120), Some(true));
        let map = InkMap::from_image(&DynamicImage::ImageLuma8(img));
        let pixels = || (0..120u32).flat_map(|y| (0..120u32).map(move |x| (x, y)));
        let ink = |x: u32, y: u32| map.at(x as usize, y as usize);
        assert!(
            pixels()
                .filter(|&(x, y)| ring(x, y) <= 4.0)
                .all(|(x, y)| ink(x, y) > 0.5),
            "the strokes' core is ink"
        );
        assert!(
            pixels()
                .filter(|&(x, y)| ring(x, y) >= 9.0)
                .all(|(x, y)| ink(x, y) == 0.0),
            "the paper's noise is not ink"
        );
    }

    #[test]
    fn uneven_lighting_is_not_ink() {
        // Light falls by 40% from left to right over paper 240 and ink 30, as in a photo.
        let img = GrayImage::from_fn(60, 20, |x, _| {
            let light = 1.0 - 0.4 * x as f32 / 59.0;
            let v = if (28..32).contains(&x) { 30.0 } else { 240.0 };
            Luma([(v * light).round() as u8])
        });
        let map = InkMap::from_image(&DynamicImage::ImageLuma8(img));
        assert!(
            (28..32).all(|x| map.at(x, 10) > 0.9),
            "{:?}",
            &map.ink[600..660]
        );
        let paper: f32 = (0..20).map(|y| map.at(0, y) + map.at(59, y)).sum();
        assert_eq!(paper, 0.0);
    }

    /// Masks of several widths, across 64-bit word boundaries, and what `mask` has on.
    fn masks() -> impl Iterator<Item = (usize, usize, Vec<bool>)> {
        [(23, 17), (64, 9), (150, 13), (128, 5), (1, 7), (70, 2)]
            .into_iter()
            .map(|(w, h)| {
                let on = (0..w * h)
                    .map(|i| (i * 7919 + i / w * 31) % 11 < 4)
                    .collect();
                (w, h, on)
            })
    }

    fn bits(mask: &BitMask) -> Vec<bool> {
        (0..mask.width * mask.height)
            .map(|i| {
                let (x, y) = (i % mask.width, i / mask.width);
                mask.row(y)[x / 64] >> (x % 64) & 1 == 1
            })
            .collect()
    }

    #[test]
    fn closing_a_mask_matches_brute_force() {
        for (w, h, mask) in masks() {
            let bit_mask = BitMask::from_fn(w, h, |i| mask[i]);
            assert_eq!(bits(&bit_mask), mask);
            for reach in 0..4 {
                let window = |x: usize, y: usize| {
                    let xs = x.saturating_sub(reach)..(x + reach + 1).min(w);
                    let ys = y.saturating_sub(reach)..(y + reach + 1).min(h);
                    ys.flat_map(move |y| xs.clone().map(move |x| (x, y)))
                };
                let grown: Vec<bool> = (0..w * h)
                    .map(|i| window(i % w, i / w).any(|(x, y)| mask[y * w + x]))
                    .collect();
                let dilated = bit_mask.dilated(reach);
                assert_eq!(bits(&dilated), grown, "{w}x{h}, reach {reach}");
                let closed: Vec<bool> = (0..w * h)
                    .map(|i| window(i % w, i / w).all(|(x, y)| grown[y * w + x]))
                    .collect();
                let closing = bit_mask.closed(reach);
                assert_eq!(bits(&closing), closed, "{w}x{h}, reach {reach}");
                // The bits past the width stay off.
                let tail = !bit_mask.last_word();
                assert!((0..h).all(|y| dilated.row(y)[dilated.words - 1] & tail == 0));
                assert!((0..h).all(|y| closing.row(y)[closing.words - 1] & tail == 0));
            }
        }
    }

    #[test]
    fn the_outline_on_the_edge_is_counted_as_brute_force_counts_it() {
        let mut inside = 0;
        for (w, h, raw) in masks() {
            // The masks as they are, and closed: most pixels then have all four neighbours on.
            let raw = BitMask::from_fn(w, h, |i| raw[i]);
            for bit_mask in [raw.clone(), raw.closed(FRAMED_GAP)] {
                let mask = bits(&bit_mask);
                let at = |x: usize, y: usize| mask[y * w + x];
                let (mut framed, mut outline) = (0, 0);
                for y in 0..h {
                    for x in (0..w).filter(|&x| at(x, y)) {
                        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
                            framed += 1;
                            outline += 1;
                        } else if !(at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) {
                            outline += 1;
                        } else {
                            inside += 1;
                        }
                    }
                }
                assert!(framed > 0);
                assert_eq!(bit_mask.outline(), (framed, outline), "{w}x{h}");
            }
        }
        assert!(inside > 100, "{inside} pixels inside");
    }

    #[test]
    fn running_extremes_match_brute_force() {
        let values: Vec<f32> = (0..23).map(|i| ((i * 37 + 11) % 17) as f32).collect();
        let mut scratch = Scratch::default();
        for reach in 0..30 {
            for pick in [f32::max as fn(f32, f32) -> f32, f32::min] {
                running_line(&values, reach, pick, &mut scratch);
                for (i, &got) in scratch.out.iter().enumerate() {
                    let window = &values[i.saturating_sub(reach)..(i + reach + 1).min(23)];
                    assert_eq!(
                        got,
                        window.iter().copied().reduce(pick).unwrap(),
                        "{reach} {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn shrinking_averages_blocks_and_keeps_partial_ones() {
        // 5x3 grey: blocks of 2 give 3x2, the last column and row averaging what they hold.
        let img = GrayImage::from_fn(5, 3, |x, y| Luma([(x * 10 + y * 100) as u8]));
        let planes = Planes::from_image(&DynamicImage::ImageLuma8(img), 2);
        assert_eq!(
            (planes.width, planes.height, planes.colour.len()),
            (3, 2, 1)
        );
        let got: Vec<f32> = planes.colour[0]
            .iter()
            .map(|v| (v * 255.0).round())
            .collect();
        assert_eq!(got, [55.0, 75.0, 90.0, 205.0, 225.0, 240.0]);
        assert!(planes.alpha.is_none());
    }

    #[test]
    fn a_lit_corner_of_a_page_in_shadow_is_not_ink() {
        // Paper 80 in a shadow, lit to 190 in a corner triangle (2% of the picture), a 3-px
        // stroke of ink 40: the ink is the dark stroke, though the bright corner reaches further
        // beyond the paper.
        let img = GrayImage::from_fn(400, 300, |x, y| {
            Luma([if (195..198).contains(&x) && (80..220).contains(&y) {
                40
            } else if x + (300 - y) < 70 {
                190
            } else {
                80
            }])
        });
        let map = InkMap::from_image(&DynamicImage::ImageLuma8(img));
        assert!((80..220).all(|y| map.at(196, y) > 0.9));
        assert_eq!(map.at(5, 295), 0.0);
    }

    #[test]
    fn a_page_half_in_shadow_has_no_ink() {
        // Paper 230 lit on the left third, 120 in the shadow, a soft edge: no stroke anywhere.
        let img = GrayImage::from_fn(90, 60, |x, y| {
            let t = ((x as f32 - 30.0 - 0.2 * y as f32) / 4.0).clamp(0.0, 1.0);
            Luma([(230.0 - 110.0 * t + ((x * 7 + y * 3) % 5) as f32).round() as u8])
        });
        assert!(InkMap::from_image(&DynamicImage::ImageLuma8(img)).is_blank());
    }

    #[test]
    fn a_page_mostly_in_a_deep_shadow_is_light_paper_with_no_ink() {
        // Paper 80 in a shadow over four fifths of the picture (so its median is darker than
        // LIGHT_PAPER), lit to 170 along the bottom, a soft edge: the lit band is paper, not a
        // light stroke on dark paper.
        let img = GrayImage::from_fn(90, 60, |x, y| {
            let t = ((y as f32 - 48.0 + 0.2 * x as f32) / 3.0).clamp(0.0, 1.0);
            Luma([(80.0 + 90.0 * t + ((x * 7 + y * 3) % 5) as f32).round() as u8])
        });
        let luma: Vec<f32> = img.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
        assert!(percentile(&luma, 0.5) < LIGHT_PAPER);
        assert_eq!(dark_ink(&luma, 90, 60), Some(true));
        assert!(InkMap::from_image(&DynamicImage::ImageLuma8(img)).is_blank());
    }

    #[test]
    fn a_lit_corner_of_squared_paper_in_shadow_is_paper_not_light_ink() {
        // Squared paper (1-px lines every 10 px, 30% darker) at 110 in a shadow, lit to 215 in a
        // corner (4% of the picture): the lines cut the lit corner into squares, whose outlines
        // are mostly inside the picture, yet it is a patch that the frame cuts, and any ink is
        // dark.
        let img = GrayImage::from_fn(300, 200, |x, y| {
            let lit = if x + y > 430 { 215.0 } else { 110.0 };
            let line = x % 10 == 0 || y % 10 == 0;
            Luma([(lit * if line { 0.7 } else { 1.0 }) as u8])
        });
        let luma: Vec<f32> = img.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
        assert_eq!(dark_ink(&luma, 300, 200), Some(true));
    }

    #[test]
    fn faint_ink_alone_goes_and_beside_a_stroke_stays() {
        let mut map = InkMap::new(10, 3);
        map.ink[2] = 0.1; // alone
        map.ink[10 + 6] = 0.1; // beside the stroke at 7
        map.ink[10 + 7] = 1.0;
        map.ink[20 + 9] = 0.5; // alone, but stronger than the noise
        let mut noisy = map.clone();
        noisy.faint = 0.2;
        noisy.drop_faint_alone();
        assert_eq!(
            (noisy.ink[2], noisy.ink[16], noisy.ink[17], noisy.ink[29]),
            (0.0, 0.1, 1.0, 0.5)
        );
        // Where the paper has no noise, nothing is doubted.
        let before = map.clone();
        map.drop_faint_alone();
        assert_eq!(map, before);
    }

    #[test]
    fn otsu_splits_two_populations() {
        let mut values = vec![0.1f32; 100];
        values.extend(vec![0.9f32; 20]);
        let t = otsu_threshold(&values, 0.9);
        assert!(t > 0.1 && t < 0.9, "{t}");
    }
}
