//! From a decoded picture to an ink map: how strongly each pixel is pen rather than paper.
//!
//! People hand us dark ink on light paper (a scan, a photo, a drawing app), light ink on dark
//! (MNIST itself, a blackboard, a dark-mode canvas), or strokes on a transparent background. The
//! paper is whatever most of the picture is; transparent pixels are always paper. Contrast is
//! measured against the paper, the noise floor is estimated from how much the paper itself
//! varies, and the result is scaled so that the typical stroke pixel is 1 whatever the pen's
//! colour or the lighting.

use image::DynamicImage;

/// Ink strength per pixel, row-major, 0 (paper) to 1 (full stroke).
#[derive(Debug, Clone, PartialEq)]
pub struct InkMap {
    pub width: usize,
    pub height: usize,
    pub ink: Vec<f32>,
}

/// Strokes fainter than this against the paper (on a 0-1 luminance scale) are not ink: a blank
/// page with lighting gradients, JPEG noise or a faint texture has no digit on it.
const MIN_CONTRAST: f32 = 0.12;
/// Pixels this many noise standard deviations from the paper can still be noise.
const NOISE_SIGMAS: f32 = 3.5;

impl InkMap {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            ink: vec![0.0; width * height],
        }
    }

    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.ink[y * self.width + x]
    }

    /// True when no pixel carries ink.
    pub fn is_blank(&self) -> bool {
        self.ink.iter().all(|&v| v == 0.0)
    }

    /// Detects paper and ink in `image` (any colour type, any bit depth).
    pub fn from_image(image: &DynamicImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let pixels = image.to_rgba32f();
        let alpha: Vec<f32> = pixels.pixels().map(|p| p.0[3]).collect();
        let mut planes: Vec<Vec<f32>> = if image.color().has_color() {
            (0..3)
                .map(|c| pixels.pixels().map(|p| p.0[c]).collect())
                .collect()
        } else {
            vec![pixels.pixels().map(|p| p.0[0]).collect()]
        };
        let contrast = if image.color().has_alpha() {
            contrast_with_alpha(&mut planes, &alpha, width, height)
        } else {
            contrast_against_paper(&planes, width, height)
        };
        Self {
            width,
            height,
            ink: contrast
                .map(|c| scale_to_strokes(&c.0, c.1))
                .unwrap_or_else(|| vec![0.0; width * height]),
        }
    }
}

/// Contrast for images with an alpha channel. Transparent pixels are paper. When the opaque
/// pixels are all about one colour they are the strokes themselves (a drawing exported on a
/// transparent canvas) and the alpha is the ink; otherwise the opaque part holds paper and ink
/// of its own, and transparent pixels take that paper's colour.
fn contrast_with_alpha(
    planes: &mut [Vec<f32>],
    alpha: &[f32],
    width: usize,
    height: usize,
) -> Option<(Vec<f32>, f32)> {
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
        return Some((alpha.to_vec(), 0.0));
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
    contrast_against_paper(planes, width, height)
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

/// Ink is on whichever side of the median luminance reaches further (dark ink on light paper
/// reaches down, light ink on dark paper up); light ink is turned into dark so one rule serves
/// both. The paper's brightness is then estimated locally ([`paper_level`]), so a photo's uneven
/// lighting and shadows are not taken for ink, and each pixel's contrast is how much darker than
/// its paper it is, as a fraction of the paper's brightness: a stroke in a shadow keeps its
/// contrast. That is done for each colour channel and for the luminance, and the one where ink
/// stands out furthest above the paper's noise is used (blue ballpoint ink is darkest in red,
/// red ink in green, pencil in all alike, where luminance averages the noise down). Returns each
/// pixel's contrast and the paper's noise level (a robust standard deviation).
fn contrast_against_paper(
    planes: &[Vec<f32>],
    width: usize,
    height: usize,
) -> Option<(Vec<f32>, f32)> {
    let luma = luminance(planes);
    let dark_ink = dark_ink(&luma)?;
    let mut candidates: Vec<Vec<f32>> = vec![luma];
    if planes.len() == 3 {
        candidates.extend(planes.iter().cloned());
    }
    let mut best: Option<(f32, Vec<f32>, f32)> = None;
    for mut plane in candidates {
        if !dark_ink {
            plane.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
        let paper = paper_level(&plane, width, height);
        let mut darker: Vec<f32> = plane
            .iter()
            .zip(&paper)
            .map(|(v, p)| (p - v) / p.max(MIN_PAPER))
            .collect();
        // The paper estimate sits on the bright side of the paper's noise; centre it.
        let centre = percentile(&darker, 0.5);
        darker.iter_mut().for_each(|d| *d -= centre);
        let deviations: Vec<f32> = darker.iter().map(|d| d.abs()).collect();
        let noise = 1.4826 * percentile(&deviations, 0.5);
        let signal = percentile(&darker, SIGNAL_QUANTILE);
        let separation = signal / noise.max(1e-4);
        if best.as_ref().is_none_or(|b| separation > b.0) {
            best = Some((separation, darker, noise));
        }
    }
    best.map(|(_, darker, noise)| (darker.into_iter().map(|d| d.max(0.0)).collect(), noise))
}

/// Whether the ink is darker than the paper. First by the tails beyond the paper's levels:
/// the darkest and the brightest of the luminance histogram's peaks (each holding at least 5%
/// of the picture) are paper, or paper in a shadow, and thin ink is a tail reaching well below
/// the darkest or above the brightest. When neither tail clearly wins (bold ink is a peak of
/// its own), whether the luminance reaches further below its median than above it. The median
/// alone is fooled by a shadow over half the page, where the lit paper reaches up furthest.
/// `None` for an empty picture.
fn dark_ink(luma: &[f32]) -> Option<bool> {
    if luma.is_empty() {
        return None;
    }
    const BINS: usize = 64;
    let mut hist = [0usize; BINS];
    for &l in luma {
        hist[((l.clamp(0.0, 1.0) * (BINS - 1) as f32).round()) as usize] += 1;
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
        let level = |i: usize| i as f32 / (BINS - 1) as f32;
        let below = level(lowest) - percentile(luma, 0.002);
        let above = percentile(luma, 0.998) - level(highest);
        if below > 0.1 && below > 2.0 * above {
            return Some(true);
        }
        if above > 0.1 && above > 2.0 * below {
            return Some(false);
        }
    }
    let median = percentile(luma, 0.5);
    let (low, high) = (percentile(luma, 0.01), percentile(luma, 0.99));
    Some(median - low >= high - median)
}

/// Paper darker than this (0-1) is not divided by its own brightness any further: black
/// regions would turn their noise into ink.
const MIN_PAPER: f32 = 0.08;
/// How far up the contrast distribution the ink's level is read when choosing a channel: ink
/// covers at least this much of a picture (a thin pen line on a large page, 0.2%).
const SIGNAL_QUANTILE: f64 = 0.998;

/// The paper's brightness at every pixel of `plane` (dark ink on light paper), as a smooth
/// surface: the picture is averaged into a grid of cells at most 128 to the long side, the
/// grid is closed (a maximum then a minimum over squares two thirds of the picture across, which
/// removes every stroke narrower than that and keeps the edge of a shadow or a light gradient
/// where it is), and interpolated bilinearly back.
fn paper_level(plane: &[f32], width: usize, height: usize) -> Vec<f32> {
    let (grid, gw, gh, cell) = grid_means(plane, width, height, 128);
    // The grid is extended by copies of its border cells before closing: clipped windows
    // would let lit paper leak into a shadow, or the centre's light into a dark corner, wherever
    // the edge of the picture cuts the window short.
    let reach = gw.max(gh).div_ceil(3);
    let (pw, ph) = (gw + 2 * reach, gh + 2 * reach);
    let padded: Vec<f32> = (0..pw * ph)
        .map(|i| {
            let gx = (i % pw).saturating_sub(reach).min(gw - 1);
            let gy = (i / pw).saturating_sub(reach).min(gh - 1);
            grid[gy * gw + gx]
        })
        .collect();
    let closed = running(
        &running(&padded, pw, ph, reach, f32::max),
        pw,
        ph,
        reach,
        f32::min,
    );
    let grid: Vec<f32> = (0..gw * gh)
        .map(|i| closed[(i / gw + reach) * pw + i % gw + reach])
        .collect();
    upsample(&grid, gw, gh, cell, width, height)
}

/// `plane` averaged over square cells, about `cells` of them along the longer side: the grid,
/// its width and height, and the cell's side in pixels.
fn grid_means(
    plane: &[f32],
    width: usize,
    height: usize,
    cells: usize,
) -> (Vec<f32>, usize, usize, usize) {
    let cell = width.max(height).div_ceil(cells).max(1);
    let (gw, gh) = (width.div_ceil(cell), height.div_ceil(cell));
    let mut grid = vec![0.0f32; gw * gh];
    let mut count = vec![0u32; gw * gh];
    for y in 0..height {
        let row = (y / cell) * gw;
        for (x, &v) in plane[y * width..(y + 1) * width].iter().enumerate() {
            grid[row + x / cell] += v;
            count[row + x / cell] += 1;
        }
    }
    for (g, &n) in grid.iter_mut().zip(&count) {
        *g /= n as f32;
    }
    (grid, gw, gh, cell)
}

/// A grid of cells `cell` pixels across interpolated bilinearly between cell centres (clamped
/// at the borders) to `width` x `height` pixels.
fn upsample(
    grid: &[f32],
    gw: usize,
    gh: usize,
    cell: usize,
    width: usize,
    height: usize,
) -> Vec<f32> {
    let at = |gx: usize, gy: usize| grid[gy.min(gh - 1) * gw + gx.min(gw - 1)];
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let fy = ((y as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
        let (y0, ty) = (fy as usize, fy.fract());
        for x in 0..width {
            let fx = ((x as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
            let (x0, tx) = (fx as usize, fx.fract());
            let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1, y0) * tx;
            let bottom = at(x0, y0 + 1) * (1.0 - tx) + at(x0 + 1, y0 + 1) * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// `pick` (max or min) of `grid` over squares `2 * reach + 1` cells across, clipped at the
/// borders; separable, rows then columns.
fn running(grid: &[f32], w: usize, h: usize, reach: usize, pick: fn(f32, f32) -> f32) -> Vec<f32> {
    let mut rows = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let row = &grid[y * w + x.saturating_sub(reach)..y * w + (x + reach + 1).min(w)];
            rows[y * w + x] = row.iter().copied().reduce(pick).unwrap_or(0.0);
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = (y.saturating_sub(reach)..(y + reach + 1).min(h))
                .map(|yy| rows[yy * w + x])
                .reduce(pick)
                .unwrap_or(0.0);
        }
    }
    out
}

/// Turns raw contrast into 0-1 ink: zero up to the noise floor, 1 at the typical stroke level
/// (the median of the pixels Otsu's threshold calls ink among those above the noise), linear
/// between.
fn scale_to_strokes(contrast: &[f32], noise: f32) -> Vec<f32> {
    let max = contrast.iter().copied().fold(0.0f32, f32::max);
    if max < MIN_CONTRAST {
        return vec![0.0; contrast.len()];
    }
    // Otsu's split among the pixels above the noise only: a thin pen line is a fraction of a
    // percent of a photo, and among all pixels the split would fall inside the paper's noise.
    let candidates: Vec<f32> = contrast
        .iter()
        .copied()
        .filter(|&c| c > NOISE_SIGMAS * noise)
        .collect();
    if candidates.is_empty() {
        return vec![0.0; contrast.len()];
    }
    let threshold = otsu_threshold(&candidates, max);
    let stroke: Vec<f32> = candidates.into_iter().filter(|&c| c > threshold).collect();
    let stroke_level = percentile(&stroke, 0.5).max(threshold);
    let floor = (NOISE_SIGMAS * noise).max(0.12 * stroke_level);
    if stroke_level - floor < MIN_CONTRAST {
        return vec![0.0; contrast.len()];
    }
    let scale = 1.0 / (stroke_level - floor);
    contrast
        .iter()
        .map(|&c| ((c - floor) * scale).clamp(0.0, 1.0))
        .collect()
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
fn percentile(values: &[f32], q: f64) -> f32 {
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
    use image::{GrayImage, Luma, Rgba, RgbaImage};

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
        for img in [GrayImage::from_pixel(30, 30, Luma([255])), bar(200, 185)] {
            assert!(InkMap::from_image(&DynamicImage::ImageLuma8(img)).is_blank());
        }
        let clear = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
        assert!(InkMap::from_image(&DynamicImage::ImageRgba8(clear)).is_blank());
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

    #[test]
    fn otsu_splits_two_populations() {
        let mut values = vec![0.1f32; 100];
        values.extend(vec![0.9f32; 20]);
        let t = otsu_threshold(&values, 0.9);
        assert!(t > 0.1 && t < 0.9, "{t}");
    }
}
