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
        let luma_alpha = image.to_luma_alpha32f();
        let (luma, alpha): (Vec<f32>, Vec<f32>) =
            luma_alpha.pixels().map(|p| (p.0[0], p.0[1])).unzip();
        let contrast = if image.color().has_alpha() {
            contrast_with_alpha(&luma, &alpha, width, height)
        } else {
            contrast_against_paper(&luma, width, height)
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
    luma: &[f32],
    alpha: &[f32],
    width: usize,
    height: usize,
) -> Option<(Vec<f32>, f32)> {
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
    let paper = percentile(&opaque, 0.5);
    let flat: Vec<f32> = luma
        .iter()
        .zip(alpha)
        .map(|(&l, &a)| a * l + (1.0 - a) * paper)
        .collect();
    contrast_against_paper(&flat, width, height)
}

/// Ink is on whichever side of the median luminance reaches further (dark ink on light paper
/// reaches down, light ink on dark paper up). The paper is then estimated locally, so a photo's
/// uneven lighting is not taken for ink. Returns the contrast of every pixel towards the ink side
/// over the local paper, and the paper's noise level (a robust standard deviation).
fn contrast_against_paper(luma: &[f32], width: usize, height: usize) -> Option<(Vec<f32>, f32)> {
    let median_luma = median(luma.iter().copied())?;
    let (low, high) = (percentile(luma, 0.01), percentile(luma, 0.99));
    let dark_ink = median_luma - low >= high - median_luma;
    // "Inkness": grows towards the ink whatever the polarity.
    let inkness: Vec<f32> = luma
        .iter()
        .map(|&l| if dark_ink { 1.0 - l } else { l })
        .collect();
    let paper = paper_level(&inkness, width, height);
    let residual: Vec<f32> = inkness.iter().zip(&paper).map(|(v, p)| v - p).collect();
    let deviations: Vec<f32> = residual.iter().map(|r| r.abs()).collect();
    let noise = 1.4826 * percentile(&deviations, 0.5);
    Some((residual.iter().map(|r| r.max(0.0)).collect(), noise))
}

/// The paper's inkness at every pixel, as a smooth surface: the picture is cut into an 8x8 grid
/// of cells, each cell's paper is its 25th percentile (right while ink covers under three
/// quarters of it), each cell takes the median of its 3x3 neighbourhood (so a cell filled by a
/// thick stroke borrows from its neighbours), and the grid is interpolated bilinearly.
fn paper_level(inkness: &[f32], width: usize, height: usize) -> Vec<f32> {
    let cell = (width.max(height) / 8).max(4);
    let (gw, gh) = (width.div_ceil(cell), height.div_ceil(cell));
    let mut grid = vec![0.0f32; gw * gh];
    let mut values = Vec::with_capacity(cell * cell);
    for gy in 0..gh {
        for gx in 0..gw {
            values.clear();
            for y in gy * cell..((gy + 1) * cell).min(height) {
                values.extend_from_slice(
                    &inkness[y * width + gx * cell..y * width + ((gx + 1) * cell).min(width)],
                );
            }
            grid[gy * gw + gx] = percentile(&values, 0.25);
        }
    }
    let smoothed: Vec<f32> = (0..gw * gh)
        .map(|i| {
            let (gx, gy) = (i % gw, i / gw);
            let around: Vec<f32> = (gy.saturating_sub(1)..(gy + 2).min(gh))
                .flat_map(|y| (gx.saturating_sub(1)..(gx + 2).min(gw)).map(move |x| (x, y)))
                .map(|(x, y)| grid[y * gw + x])
                .collect();
            percentile(&around, 0.5)
        })
        .collect();
    // Bilinear between cell centres, clamped at the borders.
    let at = |gx: usize, gy: usize| smoothed[gy.min(gh - 1) * gw + gx.min(gw - 1)];
    let mut paper = Vec::with_capacity(width * height);
    for y in 0..height {
        let fy = ((y as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
        let (y0, ty) = (fy as usize, fy.fract());
        for x in 0..width {
            let fx = ((x as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
            let (x0, tx) = (fx as usize, fx.fract());
            let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1, y0) * tx;
            let bottom = at(x0, y0 + 1) * (1.0 - tx) + at(x0 + 1, y0 + 1) * tx;
            paper.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    paper
}

/// Turns raw contrast into 0-1 ink: zero up to the noise floor, 1 at the typical stroke level
/// (the median of the pixels Otsu's threshold calls ink), linear between.
fn scale_to_strokes(contrast: &[f32], noise: f32) -> Vec<f32> {
    let max = contrast.iter().copied().fold(0.0f32, f32::max);
    if max < MIN_CONTRAST {
        return vec![0.0; contrast.len()];
    }
    let threshold = otsu_threshold(contrast, max);
    let stroke: Vec<f32> = contrast
        .iter()
        .copied()
        .filter(|&c| c > threshold)
        .collect();
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

fn median(values: impl Iterator<Item = f32>) -> Option<f32> {
    let values: Vec<f32> = values.collect();
    (!values.is_empty()).then(|| percentile(&values, 0.5))
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
        assert_eq!(dark, light);
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
